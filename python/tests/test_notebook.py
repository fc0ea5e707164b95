"""Notebooks: nothing on stdout but the user's own output, rep's messages reach sys.stderr (which
Jupyter replaces with its own stream), listings show as HTML tables."""

from __future__ import annotations

import json
import os

from conftest import run_py


def test_messages_go_to_sys_stderr_and_never_to_stdout(tmp_path, env):
    project = tmp_path / "p"
    project.mkdir()
    # A file over the code snapshot's size limit makes rep say that it left it out.
    with open(project / "huge.bin", "wb") as f:
        f.truncate(51 * 1024 * 1024)
    code = """
    import io, json, sys, rep
    real = sys.stderr
    sys.stderr = captured = io.StringIO()  # what ipykernel does: a Python-level stream
    print("user output")
    e = rep.init(path=".", params={"a": 1})
    e.checkpoint(metrics={"loss": 1.0})
    e.stop()
    sys.stderr = real
    print(json.dumps({"stderr": captured.getvalue()}))
    """
    p = run_py(code, project, env)
    lines = p.stdout.splitlines()
    assert lines[0] == "user output" and len(lines) == 2
    said = json.loads(lines[1])["stderr"]
    assert "rep: left 1 large file(s) out of the code snapshot: huge.bin" in said
    assert p.stderr == ""


def test_listing_shows_as_a_table_with_the_params_that_differ(tmp_path, env):
    code = """
    import rep
    for lr in (0.1, 0.2):
        e = rep.init(path=".", params={"lr": lr, "batch": 32}, code=False, primary_metric=("loss", "minimize"))
        e.checkpoint(metrics={"loss": lr / 2})
        e.stop()
    html = rep.experiments.list()._repr_html_()
    print(html)
    """
    html = run_py(code, tmp_path, env).stdout
    assert "<th>lr</th>" in html and "<th>batch</th>" not in html
    assert "<th>loss (min)</th>" in html and "<td>0.05</td>" in html and "<td>0.1</td>" in html
    assert html.count("<tr>") == 3
    assert not os.path.exists(tmp_path / "huge.bin")
