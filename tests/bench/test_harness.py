"""The benchmark harness itself (not the benchmark): a tiny end-to-end run, the
data set's reproducibility, and the docs section it owns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bench import engine_bench
from tests.bench.dataset import apply_day_of_changes, generate, parse_size

pytestmark = pytest.mark.slow


def test_parse_size():
    assert parse_size("64M") == 64 * 2**20
    assert parse_size("1.5G") == int(1.5 * 2**30)
    assert parse_size("512MiB") == 512 * 2**20
    with pytest.raises(ValueError):
        parse_size("lots")


def test_data_set_and_changes_are_reproducible(tmp_path):
    trees = []
    for name in ("a", "b"):
        ds = generate(tmp_path / name, parse_size("6M"), seed=3, log=lambda *_: None)
        apply_day_of_changes(ds, log=lambda *_: None)
        trees.append(engine_bench.manifest(tmp_path / name))
    assert trees[0] == trees[1]
    names = {p.decode("utf-8", "surrogateescape") for p in trees[0]}
    assert any("\n" in n for n in names) and any("\udce9" in n for n in names)
    assert any(n.endswith(".pst") for n in names) and any(n.endswith(".docx") for n in names)


def test_docs_section_replaced_in_place(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nintro\n\n## Console\n\nconsole numbers\n")
    engine_bench.write_docs(doc, f"{engine_bench.START}\none\n{engine_bench.END}")
    engine_bench.write_docs(doc, f"{engine_bench.START}\ntwo\n{engine_bench.END}")
    text = doc.read_text()
    assert "two" in text and "one" not in text
    assert "console numbers" in text and text.count(engine_bench.START) == 1


def test_tiny_side_by_side_run(tmp_path):
    tools = ["cairn"] + (["restic"] if shutil.which("restic") else [])
    doc = tmp_path / "performance.md"
    rc = engine_bench.main(
        [
            "--size",
            "4M",
            "--tools",
            ",".join(tools),
            "--workdir",
            str(tmp_path / "work"),
            "--docs",
            str(doc),
            "--timeout",
            "120",
        ]
    )
    text = doc.read_text()
    assert rc == 0, text
    assert "Initial backup throughput" in text and "Peak RSS" in text
    for tool in tools:
        assert f"{tool}: identical" in text  # every restore verified byte for byte
    assert "not available" not in text.split("**Tools:**")[1].split("\n")[0]
    assert not any(p.name in ("data", "repos") for p in Path(tmp_path / "work").iterdir())


def test_unavailable_cairn_is_reported_not_fatal(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_bench.Cairn, "available", lambda self: "CLI missing (test)")
    doc = tmp_path / "performance.md"
    engine_bench.main(
        ["--size", "2M", "--tools", "cairn", "--workdir", str(tmp_path / "w"), "--docs", str(doc)]
    )
    assert "CLI missing (test)" in doc.read_text()


def test_a_failing_tool_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_bench.Cairn, "command", "{python} -c 'import sys; sys.exit(3)'")
    doc = tmp_path / "performance.md"
    rc = engine_bench.main(
        ["--size", "2M", "--tools", "cairn", "--workdir", str(tmp_path / "w"), "--docs", str(doc)]
    )
    assert rc == 1
    assert "init failed (exit 3)" in doc.read_text()
