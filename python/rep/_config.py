"""Which repository to use, decided as the CLI decides it (src/config.ts).

First wins: the ``repository=`` argument, ``REP_REPOSITORY``, the ``repository`` key of the
``rep.yaml`` found upward from the working directory (relative paths are relative to its folder),
an existing ``.rep/`` found upward, and finally ``.rep/`` in the working directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from .errors import ConfigError

CONFIG_FILE = "rep.yaml"


@dataclass
class Resolved:
    """A repository URL and where it came from."""

    url: str
    #: Folder relative repository paths are resolved against.
    base: str
    #: ``argument``, ``env``, ``config``, ``found`` or ``default``.
    source: str
    #: Where rep.yaml is, or the working directory.
    project_dir: str
    config: Dict[str, Any] = field(default_factory=dict)
    config_path: Optional[str] = None


def resolve_repository(repository: Optional[str] = None, cwd: Optional[str] = None) -> Resolved:
    """Work out the repository from the argument, the environment and rep.yaml."""
    here = os.path.abspath(cwd or os.getcwd())
    config: Dict[str, Any] = {}
    config_path = None
    found = None
    d = here
    while True:
        candidate = os.path.join(d, CONFIG_FILE)
        if os.path.isfile(candidate):
            config_path = candidate
            with open(candidate, encoding="utf-8") as f:
                config = parse_config(f.read(), candidate)
            break
        if found is None and os.path.isfile(os.path.join(d, ".rep", "repository.json")):
            found = d
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    project = os.path.dirname(config_path) if config_path else (found or here)
    common = dict(project_dir=project, config=config, config_path=config_path)
    if repository:
        return Resolved(str(repository), here, "argument", **common)
    env = os.environ.get("REP_REPOSITORY")
    if env:
        return Resolved(env, here, "env", **common)
    if isinstance(config.get("repository"), str):
        return Resolved(config["repository"], project, "config", **common)
    if found:
        return Resolved(os.path.join(found, ".rep"), found, "found", **common)
    return Resolved(os.path.join(here, ".rep"), here, "default", **common)


def parse_config(text: str, path: str = CONFIG_FILE) -> Dict[str, Any]:
    """Parse a rep.yaml: PyYAML when it is installed, else the small subset rep.yaml uses."""
    try:
        import yaml  # type: ignore
    except ImportError:
        value: Any = _parse_simple_yaml(text, path)
    else:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            first = str(e).splitlines()[0] if str(e) else "invalid YAML"
            raise ConfigError(f"Cannot parse {path}: {first}", "Fix the YAML syntax") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"Invalid {path}: it must be a mapping of keys to values",
            "Example: repository: s3://bucket/prefix",
        )
    repo = value.get("repository")
    if repo is not None and (not isinstance(repo, str) or not repo.strip()):
        raise ConfigError(
            f'Invalid {path}: "repository" must be a URL string',
            "Example: repository: s3://bucket/prefix",
        )
    if isinstance(repo, str):
        value["repository"] = repo.strip()
    return value


_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)\s*:(?:\s+(.*)|\s*)$")


def _scalar(raw: str, path: str) -> Any:
    raw = raw.strip()
    if raw.startswith(("'", '"')):
        q = raw[0]
        end = raw.find(q, 1)
        if end < 0:
            raise ConfigError(f"Cannot parse {path}: unterminated quoted string", "Fix the YAML syntax")
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(f"Cannot parse {path}: text after a quoted string", "Fix the YAML syntax")
        return raw[1:end]
    raw = re.sub(r"\s+#.*$", "", raw)
    if raw in ("", "~", "null"):
        return None
    return raw


def _parse_simple_yaml(text: str, path: str) -> Dict[str, Any]:
    """Block mappings of scalars, one level of nesting, comments and quotes: what rep.yaml holds."""
    out: Dict[str, Any] = {}
    section: Optional[Dict[str, Any]] = None
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            continue
        indented = line[0] in " \t"
        m = _KEY.match(stripped)
        if not m:
            raise ConfigError(
                f"Cannot parse {path} line {n}: expected 'key: value'",
                "Install PyYAML for full YAML, or write rep.yaml as 'key: value' lines",
            )
        key, raw = m.group(1), m.group(2)
        if indented:
            if section is None:
                raise ConfigError(f"Cannot parse {path} line {n}: unexpected indentation", "Fix the YAML syntax")
            section[key] = _scalar(raw or "", path)
            continue
        if raw is None or raw.strip() == "" or raw.strip().startswith("#"):
            section = out[key] = {}
        else:
            section = None
            out[key] = _scalar(raw, path)
    return {k: (v if v != {} else None) for k, v in out.items()}
