"""docs/security.md's "Tested attacks" table names the test behind every
row: each one must exist, so the table cannot promise a test that was
renamed or deleted. (A row's `…::name` means "in the file named before".)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF = re.compile(r"`((?:tests/[\w/]+\.py)|…)(?:::(\w+))?`")


def _table_refs() -> list[tuple[str, str | None]]:
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("## Tested attacks", 1)[1].split("\n## ", 1)[0]
    refs, last = [], None
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        for path, name in REF.findall(line.split("|")[-2]):
            last = last if path == "…" else path
            refs.append((last, name or None))
    return refs


def _test_names(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_row_of_the_attack_table_names_a_test_that_exists():
    refs = _table_refs()
    assert len(refs) >= 50
    missing = [
        f"{path}::{name}"
        for path, name in refs
        if not (ROOT / path).is_file() or (name and name not in _test_names(path))
    ]
    assert not missing, missing
