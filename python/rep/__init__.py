"""rep: version control for machine learning, from Python.

Record a training run::

    import torch, rep
    experiment = rep.init(path=".", params={"lr": 0.01})
    for epoch in range(num_epochs):
        torch.save(model.state_dict(), "model.pth")
        experiment.checkpoint(path="model.pth", metrics={"loss": loss},
                              primary_metric=("loss", "minimize"))
    experiment.stop()

and load its weights anywhere (reading needs only Python)::

    checkpoint = rep.experiments.get("e510303").best()
    model.load_state_dict(torch.load(checkpoint.open("model.pth")))

Recording goes through the ``rep`` executable (``REP_BIN``, else ``rep`` on PATH). The repository is
found as the CLI finds it: ``repository=``, ``REP_REPOSITORY``, ``rep.yaml``, else ``.rep/``.
See docs/python.md.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from ._api import Checkpoint, Checkpoints, Experiment, Experiments, FileInfo, Repository
from ._checkout import CheckoutResult
from ._files import CheckpointFile
from ._table import ExperimentList, MetricHistory
from .errors import (
    AmbiguousIdError,
    BusyError,
    ConfigError,
    ConflictError,
    CorruptObjectError,
    ExecutableNotFoundError,
    FormatVersionError,
    NotFoundError,
    RecorderError,
    RepError,
    StorageError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "init",
    "experiments",
    "checkpoints",
    "Repository",
    "Experiment",
    "Checkpoint",
    "CheckpointFile",
    "CheckoutResult",
    "ExperimentList",
    "MetricHistory",
    "BusyError",
    "FileInfo",
    "RepError",
    "UsageError",
    "ConfigError",
    "NotFoundError",
    "AmbiguousIdError",
    "CorruptObjectError",
    "FormatVersionError",
    "StorageError",
    "ConflictError",
    "ExecutableNotFoundError",
    "RecorderError",
]

_repos: Dict[Tuple[Optional[str], str], Repository] = {}
_repos_lock = threading.Lock()


def _repository(url: Optional[str] = None) -> Repository:
    """The repository for ``url`` (or the configured one), opened once per process and folder."""
    key = (url, os.getcwd())
    with _repos_lock:
        repo = _repos.get(key)
        if repo is None:
            repo = _repos[key] = Repository(url)
        return repo


def init(
    path: str = ".",
    params: Optional[Dict[str, Any]] = None,
    repository: Optional[str] = None,
    primary_metric: Optional[Tuple[str, str]] = None,
    *,
    code: bool = True,
    exclude: Optional[Sequence[str]] = None,
    tags: Optional[Sequence[str]] = None,
    note: Optional[str] = None,
    name: Optional[str] = None,
    resume: Union[bool, str] = False,
    rerun: bool = False,
    keep_best: Optional[int] = None,
    keep_last: Optional[int] = None,
) -> Experiment:
    """Start recording an experiment of the project in ``path``.

    ``path`` is the project folder: its code is snapshotted (unless ``code=False``; ``exclude``
    and ``.repignore`` leave files out) and checkpoint paths are relative to it. ``params`` are the
    hyperparameters. ``primary_metric`` is ``(name, "minimize" | "maximize")``; it can also be given
    per checkpoint. Inside a command started by ``rep run``, this joins that experiment instead.

    The experiment stops at interpreter exit if ``stop()`` was not called (``failed`` after an
    uncaught exception); a process killed outright leaves it ``crashed``, with every checkpoint it
    made uploaded.

    ``name`` gives the experiment a name, unique in the repository. ``resume=True`` continues the
    experiment called ``name`` if it exists and has not succeeded (a requeued job can always run the
    same line): its latest checkpoint's files are put back where they were, and the experiment is
    returned with its earlier checkpoints, recording a new attempt (``experiment.attempt``,
    ``experiment.resumed_from``). ``resume="<id>"`` continues from that experiment or checkpoint.
    An experiment that already succeeded is returned finished (``status == "succeeded"``, nothing
    recorded) unless ``rerun=True``. ``keep_best=N, keep_last=M`` remove checkpoints outside the N
    best by the primary metric and the M latest as they fall out (``rep gc`` reclaims their data).
    """
    from . import _recorder

    rec = _recorder.start(
        path,
        params,
        repository,
        primary_metric,
        code,
        list(exclude) if exclude else None,
        list(tags) if tags else None,
        note,
        name,
        resume,
        rerun,
        keep_best,
        keep_last,
    )
    try:
        repo: Optional[Repository] = Repository(rec.repository)
    except RepError:
        repo = None
    return Experiment(repo, None, rec)


class _Default:
    """Module-level ``experiments`` / ``checkpoints`` on the configured repository."""

    def __init__(self, attr: str):
        self._attr = attr

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(_repository(), self._attr), name)

    def __repr__(self) -> str:
        return f"<rep.{self._attr} of the configured repository>"


class _DefaultExperiments(_Default):
    def list(self, filter: Optional[Callable[[Experiment], bool]] = None) -> ExperimentList:
        """Every experiment of the configured repository, newest first, optionally filtered."""
        return _repository().experiments.list(filter=filter)

    def get(self, id: str) -> Experiment:
        """The experiment with this id, unambiguous id prefix or name."""
        return _repository().experiments.get(id)


class _DefaultCheckpoints(_Default):
    def get(self, id: str) -> Checkpoint:
        """The checkpoint with this id or unambiguous id prefix."""
        return _repository().checkpoints.get(id)


#: Experiments of the configured repository (``rep.Repository(url).experiments`` for another).
experiments = _DefaultExperiments("experiments")
#: Checkpoints of the configured repository.
checkpoints = _DefaultCheckpoints("checkpoints")
