"""`pip install .` gives a working agent: the wheel built from pyproject.toml
requires every package of requirements/agent.in, at versions the pins in
requirements/agent.txt satisfy (the ones the suite runs), and installs the
``cairn-agent`` command."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import Parser

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.prod.stack import ROOT


def _names(path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(line)
    return out


def test_wheel_requires_the_agents_packages_at_the_pinned_versions(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = tmp_path.glob("cairn-*.whl")
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
        entry = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    requires = {
        canonicalize_name(Requirement(r).name): Requirement(r)
        for r in meta.get_all("Requires-Dist") or []
    }
    wanted = {
        canonicalize_name(Requirement(n).name) for n in _names(ROOT / "requirements" / "agent.in")
    }
    assert wanted - set(requires) == set(), f"pyproject lacks {sorted(wanted - set(requires))}"
    pins = {}
    for line in _names(ROOT / "requirements" / "agent.txt"):
        name, _, version = line.partition("==")
        pins[canonicalize_name(name)] = version
    for name, req in requires.items():
        assert name in pins, f"{name} is not pinned in requirements/agent.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert re.search(r"^cairn-agent = agent\.cli:main$", entry, re.M), entry
    # Nothing of Django: the agent never imports it.
    assert "django" not in requires
