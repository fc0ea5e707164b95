"""Reading files by range: a seekable file object that fetches only the chunks it needs, checks
each, caches them locally, and works with safetensors-style reads, numpy and zipfile."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tracemalloc
import zipfile

import pytest

import rep
from conftest import run_py
from craft import Craft

MAX_CHUNK = 256 * 1024


def record_file(project, env, name: str, data: bytes) -> str:
    project.mkdir(exist_ok=True)
    (project / name).write_bytes(data)
    code = f"""
    import rep
    e = rep.init(path=".", code=False)
    e.checkpoint(path={name!r}, metrics={{"loss": 0.1}})
    e.stop()
    print(e.id)
    """
    return run_py(code, project, env).stdout.strip()


def safetensors(tensors):
    """A safetensors file: u64 header length, JSON header with data_offsets, then the data."""
    header = {}
    data = b""
    for name, raw in tensors:
        header[name] = {"dtype": "U8", "shape": [len(raw)], "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def test_a_safetensors_style_read_fetches_only_the_header_and_one_tensor(tmp_path, s3):
    tensors = [("a", os.urandom(3 << 20)), ("b", os.urandom(1 << 20)), ("c", os.urandom(4 << 20))]
    blob = safetensors(tensors)
    eid = record_file(tmp_path / "p", s3, "model.safetensors", blob)
    os.environ["REP_CACHE_DIR"] = str(tmp_path / "cold")
    repo = rep.Repository()
    ck = repo.experiments.get(eid).latest()
    f = ck.open("model.safetensors")
    assert f.seekable() and f.readable() and not f.writable()
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    start, end = header["b"]["data_offsets"]
    f.seek(8 + n + start)
    got = f.read(end - start)
    assert got == tensors[1][1]
    assert f.tell() == 8 + n + end
    # The header's chunk plus the chunks overlapping tensor b: at most one chunk more on each side.
    assert f.fetched <= (end - start) + 3 * MAX_CHUNK, f.fetched
    assert f.fetched < len(blob) / 4
    # Reading past the end, seeking from the end.
    assert f.seek(-4, io.SEEK_END) == len(blob) - 4 and f.read(100) == blob[-4:] and f.read() == b""
    f.close()
    with pytest.raises(ValueError):
        f.read(1)


def test_opening_twice_fetches_once_and_a_damaged_cache_is_refetched(tmp_path, s3):
    data = os.urandom(5 << 20)
    eid = record_file(tmp_path / "p", s3, "w.bin", data)
    os.environ["REP_CACHE_DIR"] = str(tmp_path / "cold")
    repo = rep.Repository()
    ck = repo.experiments.get(eid).latest()
    with ck.open("w.bin") as f:
        assert f.read() == data
        assert len(data) <= f.fetched <= len(data)
    before = repo.stats["bytes"]
    with ck.open("w.bin") as f:
        assert f.read() == data
        assert f.fetched == 0
    assert repo.stats["bytes"] == before
    # Another process, same machine: the cache is shared.
    code = f"""
    import rep
    f = rep.experiments.get({eid!r}).latest().open("w.bin")
    assert f.read() == open({str(tmp_path / "p" / "w.bin")!r}, "rb").read()
    print(f.fetched)
    """
    assert run_py(code, tmp_path, {**s3, "REP_CACHE_DIR": str(tmp_path / "cold")}).stdout.strip() == "0"
    # Damage the cached copy: the bad chunk is noticed by its hash and fetched again.
    (cached,) = [os.path.join(d, n) for d, _, fs in os.walk(tmp_path / "cold") for n in fs if n.endswith(".data")]
    with open(cached, "r+b") as c:
        c.seek(1000)
        c.write(b"\0" * 10 if data[1000:1010] != b"\0" * 10 else b"\1" * 10)
    with ck.open("w.bin") as f:
        assert f.read() == data
        assert 0 < f.fetched <= MAX_CHUNK


def test_numpy_and_zipfile_read_through_the_file_object(tmp_path, env):
    np = pytest.importorskip("numpy")
    project = tmp_path / "p"
    project.mkdir()
    arr = np.arange(300_000, dtype=np.float32).reshape(1000, 300)
    np.save(project / "a.npy", arr)
    np.savez(project / "b.npz", x=arr, y=arr * 2)
    with zipfile.ZipFile(project / "c.zip", "w") as z:
        z.writestr("inner.txt", "hello " * 100_000)
    code = """
    import rep
    e = rep.init(path=".", code=False)
    e.checkpoint(path=["a.npy", "b.npz", "c.zip"])
    e.stop()
    """
    run_py(code, project, env)
    ck = rep.Repository(str(project / ".rep")).experiments.list()[0].latest()
    assert np.array_equal(np.load(ck.open("a.npy")), arr)
    with np.load(ck.open("b.npz")) as z:
        assert np.array_equal(z["y"], arr * 2)
    with zipfile.ZipFile(ck.open("c.zip")) as z:
        assert z.read("inner.txt") == b"hello " * 100_000
    with pytest.raises(rep.NotFoundError) as e:
        ck.open("nope.npy")
    assert "a.npy" in e.value.message and "checkpoint.files()" in e.value.hint
    assert [f.path for f in ck.files()] == ["a.npy", "b.npz", "c.zip"]


def test_a_damaged_pack_is_an_error_naming_the_pack_and_file(tmp_path):
    c = Craft(str(tmp_path / "repo"))
    eid = c.experiment()
    c.checkpoint(eid, 0, {"loss": 1}, {"model.pth": os.urandom(350_000)})
    c.status(eid)
    pack = tmp_path / "repo" / "packs" / c.last_pack
    raw = bytearray(pack.read_bytes())
    raw[200_000] ^= 0xFF
    pack.write_bytes(bytes(raw))
    f = rep.Repository(str(tmp_path / "repo")).experiments.get(eid).latest().open("model.pth")
    assert len(f.read(100_000)) == 100_000  # the first chunk is fine
    with pytest.raises(rep.CorruptObjectError) as e:
        f.read()
    assert f"packs/{c.last_pack}" in e.value.message and "model.pth" in e.value.message
    assert "rep verify" in e.value.hint
    pack.unlink()
    with pytest.raises(rep.CorruptObjectError, match="Missing object packs/"):
        rep.Repository(str(tmp_path / "repo")).experiments.get(eid).latest().open("model.pth").read()


def test_memory_stays_bounded_for_a_large_file(tmp_path):
    c = Craft(str(tmp_path / "repo"))
    eid = c.experiment()
    size = 160 << 20
    block = os.urandom(1 << 20)
    data = block * 160
    c.checkpoint(eid, 0, {}, {"big.bin": data}, created=None)
    del data
    c.status(eid)
    f = rep.Repository(str(tmp_path / "repo")).experiments.get(eid).latest().open("big.bin")
    buf = bytearray(1 << 20)
    h = hashlib.sha256()
    tracemalloc.start()
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert h.hexdigest() == hashlib.sha256(block * 160).hexdigest()
    assert f.tell() == size
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_cached_files_unused_for_30_days_are_swept(tmp_path):
    from rep._files import UNUSED_SECONDS, sweep

    root = tmp_path / "files"
    (root / "ab").mkdir(parents=True)
    for name, age in (("old", UNUSED_SECONDS + 60), ("new", 60)):
        for ext in (".data", ".have"):
            p = root / "ab" / (name + ext)
            p.write_bytes(b"x")
            t = os.path.getmtime(p) - age
            os.utime(p, (t, t))
    sweep(str(root))
    assert sorted(os.listdir(root / "ab")) == ["new.data", "new.have"]
