"""Recording through the `rep` executable, over its line protocol (docs/protocol.md).

``rep.init()`` starts ``rep record`` as a child process (``REP_BIN``, else ``rep`` on PATH) and
talks JSON lines over its stdin/stdout; chunking, packing and uploading happen there, in the same
recorder ``rep run`` uses. Under ``rep run`` (``REP_CONTROL`` set) it connects to the running
``rep run`` instead, and checkpoints become explicit checkpoints of that experiment.

What Keepsake's daemon taught:

- Exit never hangs: every wait is bounded. ``stop()`` waits for uploads while they make progress
  (``REP_STOP_TIMEOUT`` seconds without progress ends the wait, default 120); Ctrl-C stops waiting.
  Either way the child keeps uploading in the background in its own session, and a killed child's
  uploads are finished by the next ``rep`` command (``rep push``).
- Output reaches notebooks: the child's messages (protocol events and its stderr) are written to
  ``sys.stderr`` of this process, which Jupyter shows; nothing is printed on stdout.
- A process that dies without ``stop()`` (exception: status ``failed``; SIGKILL or ``os._exit``:
  the child sees its stdin close and ends the experiment as ``crashed``) still has every checkpoint
  it made uploaded, because the child finishes its uploads before it exits.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import ExecutableNotFoundError, RecorderError, RepError, UsageError, from_wire

#: Seconds ``stop()`` waits while uploads make no progress.
DEFAULT_STOP_TIMEOUT = 120.0
#: Seconds to wait for ``init`` (provenance, code snapshot) and for each checkpoint to be read.
REQUEST_TIMEOUT = 600.0

INSTALL_HINT = (
    "Install the rep executable and put it on your PATH (from a rep checkout: `deno task compile` "
    "builds ./rep), or set REP_BIN to its path. Reading experiments needs no executable."
)


def _say(text: str) -> None:
    """Messages for the user go to sys.stderr (which notebooks show), never stdout."""
    try:
        err = sys.stderr
        if err is None:
            return
        err.write(text if text.endswith("\n") else text + "\n")
        err.flush()
    except Exception:  # noqa: BLE001 - a closed stderr must not break training
        pass


def find_rep() -> List[str]:
    """The command that runs rep: ``REP_BIN`` (a path, or a command line), else ``rep`` on PATH."""
    env = os.environ.get("REP_BIN")
    if env:
        if os.path.exists(env):
            if not os.access(env, os.X_OK):
                raise ExecutableNotFoundError(f"REP_BIN={env} is not executable", f"chmod +x {env}, or fix REP_BIN")
            return [env]
        parts = shlex.split(env)
        if parts and shutil.which(parts[0]):
            return parts
        raise ExecutableNotFoundError(f"REP_BIN={env} does not exist", INSTALL_HINT)
    found = shutil.which("rep")
    if not found:
        raise ExecutableNotFoundError("Cannot record: the rep executable is not installed (no `rep` on PATH)", INSTALL_HINT)
    return [found]


# ---- values -----------------------------------------------------------------------------------


def scalar(v: Any, what: str) -> Any:
    """A JSON scalar for a metric or param: numpy/torch scalars unwrapped, NaN and inf as None."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    item = getattr(v, "item", None)
    if callable(item):
        try:
            return scalar(item(), what)
        except (ValueError, RuntimeError, TypeError):
            pass
    raise UsageError(
        f"{what} is a {type(v).__name__}, not a number, string, boolean or None",
        "Pass plain values, e.g. float(loss) for a tensor",
    )


def flatten(d: Optional[Dict[str, Any]], what: str) -> Dict[str, Any]:
    """Scalars by name; nested dicts become dotted names, lists and tuples JSON text."""
    out: Dict[str, Any] = {}
    if d is None:
        return out
    if not isinstance(d, dict):
        raise UsageError(f"{what} must be a dict, not {type(d).__name__}", f"Example: {what}={{'lr': 0.01}}")

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)):
            out[prefix] = json.dumps([scalar(x, f"{what}[{prefix!r}]") for x in v])
        else:
            out[prefix] = scalar(v, f"{what}[{prefix!r}]")

    for k, v in d.items():
        walk(str(k), v)
    return out


def primary_metric(pm: Any) -> Optional[Dict[str, str]]:
    if pm is None:
        return None
    if isinstance(pm, dict):
        name, goal = pm.get("name"), pm.get("goal")
    elif isinstance(pm, (tuple, list)) and len(pm) == 2:
        name, goal = pm
    else:
        name, goal = None, None
    goal = {"min": "minimize", "max": "maximize"}.get(goal, goal)  # type: ignore[arg-type]
    if not isinstance(name, str) or not name or goal not in ("minimize", "maximize"):
        raise UsageError(
            f"Invalid primary_metric {pm!r}: expected (name, 'minimize' or 'maximize')",
            'Example: primary_metric=("loss", "minimize")',
        )
    return {"name": name, "goal": goal}


def python_info() -> Dict[str, Any]:
    """This interpreter: version, executable and installed distributions (``name==version``)."""
    info: Dict[str, Any] = {
        "interpreter": os.path.basename(sys.executable or "python"),
        "executable": sys.executable,
        "version": ".".join(map(str, sys.version_info[:3])),
        "implementation": sys.implementation.name,
        "packages": None,
    }
    try:
        from importlib import metadata

        pkgs = set()
        for d in metadata.distributions():
            name = d.metadata["Name"] if d.metadata else None
            if name:
                pkgs.add(f"{name}=={d.version}")
        info["packages"] = sorted(pkgs, key=str.lower)
    except Exception:  # noqa: BLE001
        pass
    return info


# ---- the channel ------------------------------------------------------------------------------


class Channel:
    """Requests and replies over a pair of byte streams; events go to ``on_event``."""

    def __init__(self, rfile: Any, wfile: Any, describe: str):
        self._r = rfile
        self._w = wfile
        self.describe = describe
        self._next = 0
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._replies: Dict[int, Dict[str, Any]] = {}
        self._closed = False
        self._progress: Optional[Callable[[Dict[str, Any]], None]] = None
        self.last_activity = time.monotonic()
        self._last_state: Any = None
        threading.Thread(target=self._read, name="rep-recorder", daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self._r:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    _say(line)  # not protocol: show it rather than lose it
                    continue
                with self._cv:
                    if msg.get("event") == "progress":
                        # Progress counts as activity only when something was uploaded.
                        state = (msg.get("items"), msg.get("bytes"))
                        if state != self._last_state:
                            self._last_state = state
                            self.last_activity = time.monotonic()
                    else:
                        self.last_activity = time.monotonic()
                    if "event" in msg:
                        if msg["event"] == "message":
                            _say(str(msg.get("text", "")))
                        elif msg["event"] == "progress" and self._progress:
                            self._progress(msg)
                    elif isinstance(msg.get("id"), int):
                        self._replies[msg["id"]] = msg
                    self._cv.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def request(
        self,
        op: str,
        fields: Dict[str, Any],
        timeout: Optional[float] = REQUEST_TIMEOUT,
        stall: Optional[float] = None,
        on_progress: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> Dict[str, Any]:
        """Send a request and wait for its reply.

        ``timeout`` bounds the whole wait; ``stall`` bounds the time without any message from rep
        (progress events count). Raises the error rep sent, or RecorderError.
        """
        with self._lock:
            self._next += 1
            rid = self._next
            line = json.dumps({"id": rid, "op": op, **fields}, allow_nan=False) + "\n"
            with self._cv:
                if self._closed:
                    raise self._gone()
                self._progress = on_progress
                self.last_activity = time.monotonic()
            try:
                self._w.write(line.encode("utf-8"))
                self._w.flush()
            except (OSError, ValueError):
                raise self._gone() from None
            start = time.monotonic()
            with self._cv:
                try:
                    while rid not in self._replies:
                        if self._closed:
                            raise self._gone()
                        now = time.monotonic()
                        if timeout is not None and now - start > timeout:
                            raise TimeoutError(op)
                        if stall is not None and now - self.last_activity > stall:
                            raise TimeoutError(op)
                        self._cv.wait(0.25)
                finally:
                    self._progress = None
                reply = self._replies.pop(rid)
        if not reply.get("ok"):
            raise from_wire(reply.get("error") or {})
        return reply

    def _gone(self) -> RecorderError:
        return RecorderError(
            f"The rep process recording this experiment ({self.describe}) has exited",
            "See the messages above for why; checkpoints it already took are uploaded or queued for `rep push`",
        )

    def close(self) -> None:
        try:
            self._w.close()
        except (OSError, ValueError):
            pass


def _forward(stream: Any) -> None:
    """Copy the child's stderr to ours, line by line."""
    try:
        for raw in stream:
            _say(raw.decode("utf-8", "replace").rstrip("\n"))
    except (OSError, ValueError):
        pass


def spawn(project: str, repository: Optional[str]) -> Tuple[Channel, subprocess.Popen]:
    cmd = find_rep() + ["record"]
    if repository:
        cmd += ["--repository", str(repository)]
    env = dict(os.environ)
    env.setdefault("NO_COLOR", "1")
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=project,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            # Its own session: Ctrl-C in a terminal reaches only this process, and the child lives
            # on after it to finish uploading.
            start_new_session=True,
        )
    except OSError as e:
        raise ExecutableNotFoundError(f"Cannot start {cmd[0]}: {e.strerror or e}", INSTALL_HINT) from None
    threading.Thread(target=_forward, args=(proc.stderr,), name="rep-stderr", daemon=True).start()
    return Channel(proc.stdout, proc.stdin, f"{os.path.basename(cmd[0])} record, pid {proc.pid}"), proc


def connect(path: str) -> Channel:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise RecorderError(
            f"Cannot reach the rep run recording this command (REP_CONTROL={path}): {e.strerror or e}",
            "Is `rep run` still running? Unset REP_CONTROL and REP_EXPERIMENT_ID to record separately",
        ) from None
    return Channel(s.makefile("rb"), s.makefile("wb"), f"rep run, {path}")


# ---- recordings -------------------------------------------------------------------------------

_active: List["Recording"] = []
_active_lock = threading.Lock()
_exit_status: Dict[str, Any] = {"status": None}


class Recording:
    """An experiment this process records (behind the Experiment that ``init()`` returns)."""

    def __init__(self, channel: Channel, proc: Optional[subprocess.Popen], reply: Dict[str, Any], base: str):
        self._channel = channel
        self._proc = proc
        self.record: Dict[str, Any] = reply["experiment"]
        self.repository: str = reply["repository"]
        #: Where rep stores paths relative to (rep run's folder when attached).
        self.project: str = reply["project"]
        #: What relative checkpoint paths are relative to: init()'s path.
        self.base = base
        self.attached: bool = bool(reply.get("attached"))
        #: The attempt recorded: 1, or n >= 2 when init(resume=...) resumed the experiment.
        self.attempt: int = int(reply.get("attempt") or 1)
        #: The checkpoint a resume put back (its record), or None.
        self.resumed_from: Optional[Dict[str, Any]] = reply.get("resumed_from")
        #: The experiment's checkpoints from before this attempt, oldest first.
        self.earlier: List[Dict[str, Any]] = list(reply.get("checkpoints") or [])
        #: init(resume=True) found the experiment already succeeded: nothing is recorded.
        self.succeeded: bool = bool(reply.get("succeeded"))
        self.stopped = False
        self.final_status: Optional[str] = None
        self.pid = os.getpid()
        self._lock = threading.Lock()

    def checkpoint(self, path: Any, step: Optional[int], metrics: Any, primary_metric: Any) -> Dict[str, Any]:
        if path is None:
            paths: List[str] = []
        elif isinstance(path, (str, os.PathLike)):
            paths = [os.fspath(path)]
        elif isinstance(path, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in path):
            paths = [os.fspath(p) for p in path]
        else:
            raise UsageError(f"path must be a file or folder path (or a list of them), not {path!r}")
        # Relative to the project folder, whatever the working directory is now.
        if self.base != self.project:
            paths = [p if os.path.isabs(p) else os.path.join(self.base, p) for p in paths]
        if step is not None and (isinstance(step, bool) or not isinstance(scalar(step, "step"), int) or step < 0):
            raise UsageError(f"step must be a non-negative integer, not {step!r}")
        fields = {
            "paths": paths,
            "step": None if step is None else int(scalar(step, "step")),
            "metrics": flatten(metrics, "metrics"),
            "primary_metric": primary_metric_arg(primary_metric),
        }
        with self._lock:
            self._check()
            try:
                return self._channel.request("checkpoint", fields)["checkpoint"]
            except TimeoutError:
                raise RecorderError(
                    f"rep did not answer a checkpoint within {REQUEST_TIMEOUT:.0f} s", "See the messages above"
                ) from None

    def _check(self) -> None:
        if self.stopped:
            raise UsageError("This experiment was stopped", "Start a new one with rep.init()")
        if self.pid != os.getpid():
            raise UsageError(
                "This experiment is recorded by the parent process; a forked child cannot checkpoint it",
                "Call checkpoint() in the process that called rep.init()",
            )

    def stop(self, status: str = "succeeded", at_exit: bool = False) -> None:
        if status not in ("succeeded", "failed", "stopped"):
            raise UsageError(f"Invalid status {status!r}", "Use succeeded, failed or stopped")
        with self._lock:
            if self.stopped:
                return
            if self.pid != os.getpid():
                return  # a forked child: the parent owns the experiment
            self.stopped = True
            self.final_status = status
        with _active_lock:
            if self in _active:
                _active.remove(self)
        stall = _stop_timeout()
        shown = [0.0]

        def progress(msg: Dict[str, Any]) -> None:
            now = time.monotonic()
            if msg.get("items") and now - shown[0] > 10:
                shown[0] = now
                mib = (msg.get("bytes") or 0) / 1048576
                err = f" (storage: {msg['error']})" if msg.get("error") else ""
                _say(f"rep: uploading {msg['items']} object(s), {mib:.1f} MiB{err}…")

        try:
            self._channel.request(
                "stop", {"status": status, "exit_code": None}, timeout=None, stall=stall, on_progress=progress
            )
        except TimeoutError:
            self._left_behind(f"no upload progress for {stall:.0f} s")
        except KeyboardInterrupt:
            self._left_behind("interrupted")
            if not at_exit:
                raise
        except RepError as e:
            _say(f"rep: could not stop experiment {self.record['id'][:7]}: {e}")
        finally:
            self._channel.close()
            self._reap()

    def _left_behind(self, why: str) -> None:
        pid = f" (pid {self._proc.pid})" if self._proc else ""
        _say(
            f"rep: stopped waiting for uploads ({why}); rep{pid} keeps uploading in the background, "
            "and `rep push` finishes them if it is stopped"
        )

    def _reap(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # still uploading in its own session; never hang here


def _count(v: Any, what: str) -> Optional[int]:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise UsageError(f"{what} must be a whole number of checkpoints (0 or more), not {v!r}")
    return v


def primary_metric_arg(pm: Any) -> Optional[Dict[str, str]]:
    return primary_metric(pm)


def _stop_timeout() -> float:
    try:
        return float(os.environ.get("REP_STOP_TIMEOUT", DEFAULT_STOP_TIMEOUT))
    except ValueError:
        return DEFAULT_STOP_TIMEOUT


def start(
    project: str,
    params: Any,
    repository: Optional[str],
    primary_metric_: Any,
    code: bool,
    exclude: Optional[List[str]],
    tags: Optional[List[str]],
    note: Optional[str],
    name: Optional[str] = None,
    resume: Any = False,
    rerun: bool = False,
    keep_best: Optional[int] = None,
    keep_last: Optional[int] = None,
) -> Recording:
    project = os.path.abspath(project)
    if not os.path.isdir(project):
        raise UsageError(f"Cannot record in {project}: it is not a folder", "Pass an existing folder as init(path=...)")
    fields = {
        "project": project,
        "params": flatten(params, "params"),
        "primary_metric": primary_metric(primary_metric_),
        "code": bool(code),
        "exclude": [os.fspath(x) for x in exclude or []],
        "command": [os.path.basename(sys.executable or "python"), *sys.argv],
        "python": python_info(),
        "tags": list(tags or []),
        "note": note,
        "name": name,
        "resume": resume if isinstance(resume, str) else bool(resume),
        "rerun": bool(rerun),
        "keep_best": _count(keep_best, "keep_best"),
        "keep_last": _count(keep_last, "keep_last"),
    }
    control = os.environ.get("REP_CONTROL")
    under_run = os.environ.get("REP_EXPERIMENT_ID")
    proc = None
    if control:
        channel = connect(control)
    elif under_run:
        raise RecorderError(
            "This command runs under a `rep run` that does not accept checkpoints from rep.init() "
            f"(REP_EXPERIMENT_ID={under_run} is set, REP_CONTROL is not)",
            "Upgrade rep, or let rep run checkpoint the output folder from metrics lines, or unset "
            "REP_EXPERIMENT_ID to record a separate experiment",
        )
    else:
        channel, proc = spawn(project, repository)
    try:
        reply = channel.request("init", fields)
    except TimeoutError:
        channel.close()
        raise RecorderError(f"rep did not start the experiment within {REQUEST_TIMEOUT:.0f} s") from None
    except BaseException:
        channel.close()
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    rec = Recording(channel, proc, reply, project)
    with _active_lock:
        _active.append(rec)
    _install_hooks()
    if rec.succeeded:
        rec.stop("succeeded")  # nothing to record: let rep record exit
    return rec


# ---- interpreter exit -------------------------------------------------------------------------

_hooks_installed = False


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(tp: Any, value: Any, tb: Any) -> None:
        _exit_status["status"] = "stopped" if issubclass(tp, KeyboardInterrupt) else "failed"
        previous(tp, value, tb)

    sys.excepthook = excepthook
    atexit.register(_at_exit)


def _at_exit() -> None:
    """Stop what is still recording: failed after an uncaught exception, else succeeded."""
    with _active_lock:
        todo = [r for r in _active if r.pid == os.getpid()]
    status = _exit_status["status"] or "succeeded"
    for rec in todo:
        try:
            rec.stop(status, at_exit=True)
        except BaseException:  # noqa: BLE001 - never fail or hang the exit
            pass
