"""The reading API: repositories, experiments and checkpoints."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _format as fmt
from ._catalog import Catalog, View
from ._checkout import CheckoutResult, checkout as _checkout
from ._config import resolve_repository
from ._files import CheckpointFile, cache_root_for
from ._storage import Store, open_store
from ._table import ExperimentList, MetricHistory
from .errors import CorruptObjectError, NotFoundError, UsageError


@dataclass(frozen=True)
class FileInfo:
    """A file stored in a checkpoint."""

    path: str
    size: int
    #: Content id (docs/format.md): equal content, equal id.
    hash: str
    mode: int


class Repository:
    """The experiments and checkpoints stored at one URL.

    ``url`` is a local path, ``file://``, ``s3://bucket/prefix`` or ``gs://bucket/prefix``; without
    it the repository is found as the CLI finds it (``REP_REPOSITORY``, ``rep.yaml``, ``.rep/``).
    """

    def __init__(self, url: Optional[str] = None, *, cache: bool = True):
        resolved = resolve_repository(url)
        self._store: Store = open_store(resolved.url, resolved.base)
        self._catalog = Catalog(self._store, cache=cache)
        self._trees: Dict[str, List[fmt.FileEntry]] = {}
        self._lock = threading.Lock()
        self._cache_root = cache_root_for(self._store) if cache else None
        #: Experiments in this repository.
        self.experiments = Experiments(self)
        #: Checkpoints in this repository.
        self.checkpoints = Checkpoints(self)

    @property
    def url(self) -> str:
        """The repository URL."""
        return self._store.url

    @property
    def stats(self) -> Dict[str, int]:
        """Requests sent to the storage and bytes received, so far."""
        return dict(self._store.stats)

    def __repr__(self) -> str:
        return f"<rep.Repository {self.url}>"

    # ---- internals used by experiments and checkpoints ---------------------------------------

    def _tree(self, sha: str) -> List[fmt.FileEntry]:
        with self._lock:
            hit = self._trees.get(sha)
        if hit is not None:
            return hit
        key = fmt.tree_key(sha)
        try:
            data = self._store.get(key)
        except NotFoundError:
            raise CorruptObjectError(
                f"Missing object {key}: a record refers to a file list that is not in the repository",
                "Run `rep verify` to list what is damaged",
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise CorruptObjectError(
                f"Corrupt object {key}: its content hashes to {actual[:12]}…",
                "Run `rep verify` to list what is damaged",
            )
        files = fmt.parse_tree(fmt.parse_json(data, key), key)
        with self._lock:
            self._trees[sha] = files
        return files

    def _views(self) -> List[View]:
        return self._catalog.views()

    def _missing_repository(self) -> NotFoundError:
        return NotFoundError(
            f"No rep repository at {self.url}: nothing has been recorded there",
            "Point at the repository with repository=..., REP_REPOSITORY or rep.yaml's "
            "`repository:`, or record an experiment first",
        )


class Experiments:
    """``repository.experiments``: list and get experiments."""

    def __init__(self, repo: Repository):
        self._repo = repo

    def list(self, filter: Optional[Callable[["Experiment"], bool]] = None) -> ExperimentList:
        """Every experiment, newest first; ``filter`` keeps those for which it returns true."""
        out = [Experiment(self._repo, v) for v in self._repo._views()]
        if filter is not None:
            out = [e for e in out if filter(e)]
        return ExperimentList(out)

    def get(self, id: str) -> "Experiment":
        """The experiment with this id, unambiguous id prefix or name."""
        repo = self._repo
        views = repo._views()
        if not views and repo._catalog.check_format() is None:
            raise repo._missing_repository()
        kind, view, ck = repo._catalog.resolve(id, views)
        if kind != "experiment":
            raise NotFoundError(
                f'"{id}" is a checkpoint id, not an experiment id',
                "Use rep.checkpoints.get() for checkpoint ids (or checkpoint.experiment)",
            )
        return Experiment(repo, view)


class Checkpoints:
    """``repository.checkpoints``: get a checkpoint by id."""

    def __init__(self, repo: Repository):
        self._repo = repo

    def get(self, id: str) -> "Checkpoint":
        """The checkpoint with this id or unambiguous id prefix."""
        repo = self._repo
        views = repo._views()
        if not views and repo._catalog.check_format() is None:
            raise repo._missing_repository()
        kind, view, ck = repo._catalog.resolve(id, views)
        if kind != "checkpoint" or ck is None:
            raise NotFoundError(
                f'"{id}" is an experiment id, not a checkpoint id',
                "Use rep.experiments.get() for experiment ids (then .best() or .latest())",
            )
        exp = Experiment(repo, view)
        return next(c for c in exp.checkpoints if c.id == ck["id"])


def _time(v: Optional[str]) -> Optional[datetime]:
    return fmt.parse_time(v) if v else None


class Experiment:
    """One experiment: params, provenance, status and checkpoints.

    Returned by ``rep.experiments.get()``/``list()`` (to read) and by ``rep.init()`` (to record:
    ``checkpoint()`` and ``stop()``).
    """

    def __init__(self, repo: Optional[Repository], view: Optional[View], recording: Any = None):
        self._repo = repo
        self._view = view
        self._recording = recording
        self._full: Optional[Dict[str, Any]] = None
        if view is not None:
            self._record = view.record
            self._checkpoints = [Checkpoint(self, c) for c in view.checkpoints]
        else:
            self._record = recording.record
            # A resume: the experiment's checkpoints from before this attempt.
            self._checkpoints = [Checkpoint(self, c) for c in getattr(recording, "earlier", [])]

    # ---- fields ------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def short_id(self) -> str:
        return self.id[: fmt.SHORT_ID]

    @property
    def name(self) -> Optional[str]:
        return self._record.get("name")

    @property
    def created(self) -> datetime:
        return _time(self._record["created"])  # type: ignore[return-value]

    @property
    def params(self) -> Dict[str, Any]:
        return dict(self._record["params"])

    @property
    def command(self) -> List[str]:
        return list(self._record["command"])

    @property
    def host(self) -> str:
        return self._record["host"]

    @property
    def user(self) -> str:
        return self._record["user"]

    @property
    def path(self) -> str:
        """The project folder it was recorded in."""
        return self._record["cwd"]

    @property
    def git(self) -> Optional[Dict[str, Any]]:
        return self._record["git"]

    @property
    def tags(self) -> List[str]:
        return list(self._view.tags if self._view else self._record["tags"])

    @property
    def note(self) -> Optional[str]:
        return self._view.note if self._view else self._record["note"]

    @property
    def primary_metric(self) -> Optional[Tuple[str, str]]:
        """``(name, "minimize" | "maximize")`` or None."""
        pm = self._record["primary_metric"]
        return (pm["name"], pm["goal"]) if pm else None

    @property
    def record(self) -> Dict[str, Any]:
        """The stored experiment record."""
        return self._record

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed``, ``stopped`` or ``crashed``."""
        if self._recording is not None and not self._recording.stopped:
            return "running"
        if self._view is None:
            return self._recording.final_status or "running"
        return self._view.status

    @property
    def attempt(self) -> int:
        """The attempt this process records (1 unless ``init(resume=...)`` resumed it), else the newest."""
        if self._recording is not None:
            return int(getattr(self._recording, "attempt", 1))
        return int(getattr(self._view, "attempts", 1) or 1) if self._view is not None else 1

    @property
    def resumed_from(self) -> Optional["Checkpoint"]:
        """The checkpoint whose files ``init(resume=...)`` put back, or None."""
        rec = getattr(self._recording, "resumed_from", None) if self._recording is not None else None
        if not rec:
            return None
        return next((c for c in self._checkpoints if c.id == rec["id"]), None) or Checkpoint(self, rec)

    def is_running(self) -> bool:
        return self.status == "running"

    @property
    def exit_code(self) -> Optional[int]:
        st = self._view.status_record if self._view else None
        return st["exit_code"] if st else None

    @property
    def finished(self) -> Optional[datetime]:
        st = self._view.status_record if self._view else None
        return _time(st["finished"]) if st else None

    @property
    def duration(self) -> Optional[float]:
        """Seconds from start to end, None while running."""
        end = self.finished
        return (end - self.created).total_seconds() if end else None

    @property
    def provenance(self) -> Dict[str, Any]:
        """Python version and packages, GPU, CPU, platform, environment (secrets redacted), git diff."""
        return self._full_record().get("provenance") or {}

    def _full_record(self) -> Dict[str, Any]:
        if self._view is None or not self._view.partial:
            return self._record
        if self._full is None:
            self._full = self._repository()._catalog.full_record(self.id)
        return self._full

    def _repository(self) -> Repository:
        if self._repo is None:
            raise UsageError("This experiment has no repository to read from")
        return self._repo

    # ---- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoints(self) -> List["Checkpoint"]:
        """Its checkpoints, oldest first."""
        return list(self._checkpoints)

    def best(self) -> Optional["Checkpoint"]:
        """The best checkpoint by the primary metric (missing and NaN values are ignored), or None."""
        best = fmt.best_checkpoint([c._record for c in self._checkpoints], self._record["primary_metric"])
        return next((c for c in self._checkpoints if c._record is best), None)

    def latest(self) -> Optional["Checkpoint"]:
        """The most recent checkpoint, or None."""
        return self._checkpoints[-1] if self._checkpoints else None

    def history(self) -> MetricHistory:
        """Metrics per checkpoint, in order: rows of step, checkpoint id, time and metrics.

        ``.to_pandas()`` gives a DataFrame (when pandas is installed), ``.plot(metric)`` a chart
        (matplotlib), and each row is a plain dict.
        """
        rows = []
        for c in self._checkpoints:
            rows.append({"step": c.step, "checkpoint": c.id, "created": c.created, **c.metrics})
        return MetricHistory(rows, self.short_id)

    def plot(self, metric: Optional[str] = None, **kwargs: Any) -> Any:
        """Plot a metric over steps (matplotlib); the primary metric by default."""
        name = metric or (self.primary_metric[0] if self.primary_metric else None)
        if name is None:
            raise UsageError("Which metric? This experiment has no primary metric", "Pass plot(metric='loss')")
        return self.history().plot(name, **kwargs)

    def path_prefix(self) -> str:
        """Format 1 `rep run` checkpoints stored paths relative to the output folder; present them under it."""
        if self._record["format"] >= 2:
            return ""
        prov = self._record.get("provenance") or {}
        if "output" not in prov:
            prov = self._full_record().get("provenance") or {}
        out = prov.get("output")
        if isinstance(out, str) and out not in ("", "."):
            out = out.strip("/")
            return out + "/" if out and ".." not in out.split("/") else ""
        return ""

    def checkout(self, directory: str, force: bool = False, paths: Optional[Sequence[str]] = None) -> CheckoutResult:
        """Write the code snapshot and the best (else latest) checkpoint's files into ``directory``."""
        repo = self._repository()
        files: List[fmt.FileEntry] = []
        code = self._record.get("code")
        if code:
            files = list(repo._tree(code["tree"]))
        ck = self.best() or self.latest()
        if ck is not None:
            over = ck._entries()
            names = {f.path for f in over}
            files = [f for f in files if f.path not in names] + over
        return _checkout(repo._store, files, directory, force, paths)

    def refresh(self) -> "Experiment":
        """This experiment as the repository holds it now."""
        return self._repository().experiments.get(self.id)

    # ---- recording ---------------------------------------------------------------------------

    def checkpoint(
        self,
        path: Any = None,
        step: Optional[int] = None,
        metrics: Optional[Dict[str, Any]] = None,
        primary_metric: Optional[Tuple[str, str]] = None,
        **kwargs: Any,
    ) -> "Checkpoint":
        """Record a checkpoint: the files at ``path`` (a file or folder, or a list, relative to the
        project folder given to ``init``), plus metrics. Returns it, with its id.

        The files are read before this returns (training may overwrite them right after); they are
        uploaded in the background.
        """
        if kwargs:
            raise UsageError(
                f"checkpoint() got unexpected arguments: {', '.join(sorted(kwargs))}",
                "It takes path, step, metrics and primary_metric",
            )
        rec = self._writer()
        record = rec.checkpoint(path=path, step=step, metrics=metrics, primary_metric=primary_metric)
        ck = Checkpoint(self, record)
        self._checkpoints.append(ck)
        return ck

    def stop(self, status: str = "succeeded") -> None:
        """End the experiment and wait for its uploads (bounded; see docs/python.md)."""
        self._writer().stop(status)

    def _writer(self) -> Any:
        if self._recording is None or self._recording.stopped:
            raise UsageError(
                f"Experiment {self.short_id} is not being recorded by this process",
                "Only an experiment returned by rep.init() can take checkpoints, and only until stop()",
            )
        return self._recording

    def __repr__(self) -> str:
        name = f" {self.name}" if self.name else ""
        return f"<rep.Experiment {self.short_id}{name} {self.status}, {len(self._checkpoints)} checkpoint(s)>"

    def _repr_html_(self) -> str:
        return ExperimentList([self])._repr_html_()


class Checkpoint:
    """One checkpoint: the files and metrics of an experiment at one step."""

    def __init__(self, experiment: Experiment, record: Dict[str, Any]):
        self.experiment = experiment
        self._record = record

    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def short_id(self) -> str:
        return self.id[: fmt.SHORT_ID]

    @property
    def step(self) -> Optional[int]:
        return self._record["step"]

    @property
    def metrics(self) -> Dict[str, Any]:
        return dict(self._record["metrics"])

    @property
    def created(self) -> datetime:
        return _time(self._record["created"])  # type: ignore[return-value]

    @property
    def primary_metric(self) -> Optional[Tuple[str, str]]:
        pm = self._record["primary_metric"] or self.experiment._record["primary_metric"]
        return (pm["name"], pm["goal"]) if pm else None

    @property
    def torn(self) -> List[str]:
        """Files whose version for this step could not be stored (left out)."""
        return list(self._record["torn"])

    @property
    def warnings(self) -> List[str]:
        return list(self._record["warnings"])

    @property
    def record(self) -> Dict[str, Any]:
        """The stored checkpoint record."""
        return self._record

    def _repo(self) -> Repository:
        repo = self.experiment._repo
        if repo is None:
            raise UsageError("This checkpoint has no repository to read from")
        return repo

    def _entries(self) -> List[fmt.FileEntry]:
        ref = self._record["files"]
        if not ref:
            return []
        files = self._repo()._tree(ref["tree"])
        prefix = self.experiment.path_prefix()
        if not prefix:
            return list(files)
        return [fmt.FileEntry(prefix + f.path, f.size, f.hash, f.mode, f.chunks) for f in files]

    def files(self) -> List[FileInfo]:
        """The files stored in this checkpoint."""
        return [FileInfo(f.path, f.size, f.hash, f.mode) for f in self._entries()]

    def open(self, path: str, cache: bool = True) -> CheckpointFile:
        """One file of this checkpoint as a read-only, seekable binary file.

        Only the chunks that reads touch are fetched, each checked against its hash; for remote
        repositories they are kept in a local cache, so opening the file again fetches nothing
        (``cache=False`` keeps them in memory only). Use it straight in ``torch.load``.
        """
        clean = os.path.normpath(path).replace(os.sep, "/") if path else path
        clean = clean[2:] if clean.startswith("./") else clean
        entries = self._entries()
        entry = next((f for f in entries if f.path == clean), None)
        if entry is None:
            # A format 1 path as stored (below the output folder).
            prefix = self.experiment.path_prefix()
            entry = next((f for f in entries if prefix and f.path == prefix + clean), None)
        if entry is None:
            names = ", ".join(f.path for f in entries[:10]) or "none"
            raise NotFoundError(
                f'No file "{path}" in checkpoint {self.short_id} (its files: {names})',
                "List them with checkpoint.files() or `rep show ID`",
            )
        repo = self._repo()
        return CheckpointFile(repo._store, entry, repo._cache_root if cache else None)

    def checkout(self, directory: str, force: bool = False, paths: Optional[Sequence[str]] = None) -> CheckoutResult:
        """Write this checkpoint's files into ``directory``."""
        return _checkout(self._repo()._store, self._entries(), directory, force, paths)

    def __repr__(self) -> str:
        step = f" step {self.step}" if self.step is not None else ""
        return f"<rep.Checkpoint {self.short_id}{step} of {self.experiment.short_id} {self.metrics}>"
