"""Tables for notebooks and pandas: experiment lists and metric histories.

Nothing here needs pandas or matplotlib; they are imported only when asked for.
"""

from __future__ import annotations

import html
import math
from typing import Any, Dict, List, Optional

from .errors import UsageError


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.6g}"
    if v is None:
        return ""
    return str(v)


def _html_table(headers: List[str], rows: List[List[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="rep-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class ExperimentList(list):
    """A list of experiments that shows as a table in notebooks (``_repr_html_``).

    Only params that differ between the experiments are shown, as ``rep ls`` does.
    """

    def _columns(self) -> List[str]:
        keys: List[str] = []
        for e in self:
            for k in e.params:
                if k not in keys:
                    keys.append(k)
        if len(self) <= 1:
            return keys
        return [k for k in keys if len({repr(e.params.get(k)) for e in self}) > 1]

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per experiment: id, name, created, status, params, best and latest checkpoints."""
        out = []
        for e in self:
            best = e.best()
            latest = e.latest()
            pm = e.primary_metric
            out.append(
                {
                    "id": e.id,
                    "name": e.name,
                    "created": e.created,
                    "status": e.status,
                    "params": e.params,
                    "checkpoints": len(e.checkpoints),
                    "best": best.id if best else None,
                    "best_step": best.step if best else None,
                    "best_metric": best.metrics.get(pm[0]) if best and pm else None,
                    "latest": latest.id if latest else None,
                    "latest_step": latest.step if latest else None,
                    "latest_metrics": latest.metrics if latest else {},
                }
            )
        return out

    def to_pandas(self) -> Any:
        """A pandas DataFrame with one row per experiment (params as ``param.<name>`` columns)."""
        pd = _pandas()
        flat = []
        for r in self.rows():
            row = {k: v for k, v in r.items() if k not in ("params", "latest_metrics")}
            row.update({f"param.{k}": v for k, v in r["params"].items()})
            row.update({f"latest.{k}": v for k, v in r["latest_metrics"].items()})
            flat.append(row)
        return pd.DataFrame(flat)

    def _repr_html_(self) -> str:
        params = self._columns()
        pm = next((e.primary_metric for e in self if e.primary_metric), None)
        headers = ["id", "name", "created", "status", *params, "checkpoints", "best"]
        if pm:
            headers.append(f"{pm[0]} ({pm[1][:3]})")
        headers.append("latest")
        rows = []
        for e in self:
            best = e.best()
            latest = e.latest()
            row = [e.short_id, e.name, e.created.strftime("%Y-%m-%d %H:%M:%S"), e.status]
            row += [e.params.get(k) for k in params]
            row += [len(e.checkpoints), f"{best.short_id} (step {best.step})" if best else ""]
            if pm:
                row.append(best.metrics.get(pm[0]) if best else None)
            row.append(f"{latest.short_id} (step {latest.step})" if latest else "")
            rows.append(row)
        return _html_table(headers, rows)

    def __repr__(self) -> str:
        return f"ExperimentList({list.__repr__(self)})"


class MetricHistory(list):
    """Metrics per checkpoint of one experiment: a list of dicts (step, checkpoint, created, metrics…)."""

    def __init__(self, rows: List[Dict[str, Any]], label: str = ""):
        super().__init__(rows)
        self.label = label

    def metrics(self) -> List[str]:
        names: List[str] = []
        for r in self:
            for k in r:
                if k not in ("step", "checkpoint", "created") and k not in names:
                    names.append(k)
        return names

    def series(self, metric: str) -> List[Any]:
        """(step, value) pairs of one metric, skipping checkpoints without it."""
        return [(r["step"], r[metric]) for r in self if metric in r]

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per checkpoint."""
        return _pandas().DataFrame(list(self))

    def plot(self, metric: str, ax: Optional[Any] = None, **kwargs: Any) -> Any:
        """Plot one metric over steps with matplotlib; returns the axes."""
        try:
            import matplotlib.pyplot as plt  # type: ignore
        except ImportError:
            raise UsageError("Plotting needs matplotlib, which is not installed", "pip install matplotlib") from None
        pts = [(s, v) for s, v in self.series(metric) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if ax is None:
            _, ax = plt.subplots()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=kwargs.pop("label", self.label or metric), **kwargs)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        return ax

    def _repr_html_(self) -> str:
        names = self.metrics()
        rows = [[r["step"], r["checkpoint"][:7], *[r.get(m) for m in names]] for r in self]
        return _html_table(["step", "checkpoint", *names], rows)


def _pandas() -> Any:
    try:
        import pandas as pd  # type: ignore
    except ImportError:
        raise UsageError("This needs pandas, which is not installed", "pip install pandas") from None
    return pd
