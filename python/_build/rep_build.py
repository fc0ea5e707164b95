"""A minimal PEP 517 build backend for the rep package, with no build dependencies.

pip builds wheels through a backend; setuptools' needs ``wheel`` (absent on many offline machines,
and build isolation cannot fetch it without an index). This backend writes the wheel (and sdist)
with the standard library, so ``pip install ./python`` works offline, with or without
``--no-build-isolation``. It packages ``rep/`` as pure Python; metadata comes from pyproject.toml.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "rep"


def _project() -> Dict[str, object]:
    """The [project] table of pyproject.toml (tomllib when available, else a small reader)."""
    path = os.path.join(HERE, "pyproject.toml")
    with open(path, "rb") as f:
        data = f.read()
    try:
        import tomllib  # Python 3.11+

        return tomllib.loads(data.decode())["project"]
    except ImportError:
        pass
    return _mini_toml_project(data.decode())


def _mini_toml_project(text: str) -> Dict[str, object]:
    """Enough TOML for our own [project] table: strings, string lists, one level of sub-tables."""
    out: Dict[str, object] = {}
    table: Optional[str] = None
    sub: Dict[str, object] = out
    key_list: Optional[Tuple[Dict[str, object], str]] = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith('"') else raw.strip()
        if not line:
            continue
        if key_list is not None:
            target, k = key_list
            target[k] = list(target[k]) + re.findall(r'"([^"]*)"', line)  # type: ignore[arg-type]
            if "]" in line:
                key_list = None
            continue
        m = re.match(r"^\[([^\]]+)\]$", line)
        if m:
            table = m.group(1).strip()
            if table == "project":
                sub = out
            elif table.startswith("project."):
                sub = {}
                out[table[len("project.") :]] = sub
            else:
                sub = {}
            continue
        if table is None or not (table == "project" or table.startswith("project.")):
            continue
        m = re.match(r'^("?[A-Za-z0-9_.-]+"?)\s*=\s*(.*)$', line)
        if not m:
            continue
        k, v = m.group(1).strip('"'), m.group(2).strip()
        if v.startswith("["):
            sub[k] = re.findall(r'"([^"]*)"', v)
            if "]" not in v:
                key_list = (sub, k)
        elif v.startswith("{"):
            sub[k] = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', v))
        else:
            sub[k] = v.strip('"')
    return out


def _dist_name(p: Dict[str, object]) -> str:
    return re.sub(r"[-_.]+", "_", str(p["name"])).lower()


def _metadata(p: Dict[str, object]) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}"]
    if p.get("description"):
        lines.append(f"Summary: {p['description']}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append(f"License: {lic['text']}")
    for dep in p.get("dependencies") or []:  # type: ignore[union-attr]
        lines.append(f"Requires-Dist: {dep}")
    for extra, deps in (p.get("optional-dependencies") or {}).items():  # type: ignore[union-attr]
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            lines.append(f'Requires-Dist: {dep}; extra == "{extra}"')
    body = ""
    readme = p.get("readme")
    if isinstance(readme, str) and os.path.isfile(os.path.join(HERE, readme)):
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(HERE, readme), encoding="utf-8") as f:
            body = "\n" + f.read()
    return "\n".join(lines) + "\n" + body


def _package_files() -> List[str]:
    out = []
    root = os.path.join(HERE, PACKAGE)
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for name in sorted(files):
            if name.endswith((".py", ".typed")):
                out.append(os.path.relpath(os.path.join(d, name), HERE).replace(os.sep, "/"))
    return out


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, editable: bool) -> str:
    p = _project()
    dist = _dist_name(p)
    version = str(p["version"])
    info = f"{dist}-{version}.dist-info"
    name = f"{dist}-{version}-py3-none-any.whl"
    entries: List[Tuple[str, bytes]] = []
    if editable:
        entries.append((f"__editable__.{dist}.pth", (HERE + "\n").encode()))
    else:
        for rel in _package_files():
            with open(os.path.join(HERE, rel), "rb") as f:
                entries.append((rel, f.read()))
    entries.append((f"{info}/METADATA", _metadata(p).encode()))
    entries.append(
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: rep_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    )
    entries.append((f"{info}/top_level.txt", f"{PACKAGE}\n".encode()))
    record = [_record_line(n, d) for n, d in entries] + [f"{info}/RECORD,,"]
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    os.makedirs(wheel_directory, exist_ok=True)
    path = os.path.join(wheel_directory, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries:
            zi = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, d)
    return name


# ---- PEP 517 / 660 hooks ------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001
    return []


def get_requires_for_build_sdist(config_settings=None):  # noqa: ANN001
    return []


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):  # noqa: ANN001
    p = _project()
    info = f"{_dist_name(p)}-{p['version']}.dist-info"
    d = os.path.join(metadata_directory, info)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(p))
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001
    return _write_wheel(wheel_directory, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001
    return _write_wheel(wheel_directory, editable=True)


def build_sdist(sdist_directory, config_settings=None):  # noqa: ANN001
    p = _project()
    base = f"{_dist_name(p)}-{p['version']}"
    files = ["pyproject.toml", "README.md", "_build/rep_build.py", *_package_files()]
    os.makedirs(sdist_directory, exist_ok=True)
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        for rel in files:
            full = os.path.join(HERE, rel)
            if os.path.isfile(full):
                t.add(full, arcname=f"{base}/{rel}")
        pkg_info = _metadata(p).encode()
        ti = tarfile.TarInfo(f"{base}/PKG-INFO")
        ti.size = len(pkg_info)
        t.addfile(ti, io.BytesIO(pkg_info))
    return name
