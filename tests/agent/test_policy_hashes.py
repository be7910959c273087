"""Every policy shape stored so far loads, and hashes as it did when stored.

The shapes (tests/agent/fixtures/policy_shapes.json) are what the console's
validate_spec stored before the typed contract existed: the default, the demo
policies, the shapes the tests create, inputs that normalise (form and API
spellings), an effective (merged) policy, revisions stored before
``limits.cpu_percent`` existed and one stored before relative sources were
refused. The hashes below were computed by that code (console/policies/
spec.py: spec_hash, at 390ed4e) before agent/policy was written; they are
revision hashes agents acknowledge, so they must never change.
"""

import json
from pathlib import Path

import pytest

from agent import policy
from agent.policy.merge import merge

SHAPES = json.loads((Path(__file__).parent / "fixtures" / "policy_shapes.json").read_text())

HASHES = {
    "default": "805703ca53261dab1726b4ef76006281d9453846607fe0e5d97743c523ed687b",
    "demo:Engineering — source trees": "cb8a11e667b9ef521f020e4c6daf6e1515eb7815e36c3121d8cc1347d0f6b602",
    "demo:Executives — hourly": "8b183fa4a96ddfa259bd882399ca728e5d23d6e2bccf688d6d3331fe8993edb5",
    "demo:Field staff — metered links": "ed04a89e3e1893391d48ada0cc47becbcb2f280f110dce453dacab4e1875d830",
    "demo:Legal hold": "f5375fe7edf3efb1000d727af1062944ca633d7277a2761ae971f59eb3853d76",
    "demo:Standard workstation": "805703ca53261dab1726b4ef76006281d9453846607fe0e5d97743c523ed687b",
    "legacy:before cpu_percent (96c4f38..2afba2f)": "d70fe7fe0125480e5f06858c25489fb36ae95457795d869323ec8fb6368f93e9",
    "legacy:field staff before cpu_percent": "c0e1e56e8febfc5fa5ab22da0694558bc571f870392a1333b2603d780b8572dd",
    "legacy:relative source before 81bb553": "e3af1ae06843be07cd43a7f30737fa383a66b27fa4578e4a60bd505f1e58a952",
    "loose": "7e68f4bbcf462f3f475d10a05c4405d4e4349d34efe2b79e22d3dfda39cf6d10",
    "merged:strict+default": "9448f5e8ab67428c1cd5adc292d2ef1514f3e307f2c72092a5823b4864680245",
    "minimal": "805703ca53261dab1726b4ef76006281d9453846607fe0e5d97743c523ed687b",
    "tests:cpu30": "9c7a8b992129833bceeb56d2856a1552c0090c5e6289027bae5417227ee446f0",
    "tests:keep_one": "a4da0c31295b6548ebbc25ca5f2343357200bc824596d86199cba8615d3a08bb",
    "tests:strict": "fd4706bb9d9d1d115cfd655ef81565cdf7f26bdff25717aac77a967b2ab8e20f",
    "tests:windows_paths": "cfa5ac2d599b39b03dc3009df8b6a6707f48043645eefa2bba5e8142c0d492f0",
}


def test_every_shape_has_a_recorded_hash():
    assert set(SHAPES) == set(HASHES)


@pytest.mark.parametrize("name", sorted(HASHES))
def test_stored_shape_loads_unchanged_with_its_hash(name):
    stored = SHAPES[name]["stored"]
    loaded = policy.load(stored)
    assert loaded.to_dict() == stored
    assert loaded.canonical_hash() == HASHES[name]


@pytest.mark.parametrize("name", sorted(n for n in HASHES if "input" in SHAPES[n]))
def test_admin_input_normalises_to_the_stored_shape(name):
    parsed = policy.parse(SHAPES[name]["input"])
    assert parsed.to_dict() == SHAPES[name]["stored"]
    assert parsed.canonical_hash() == HASHES[name]


def test_merged_effective_policy_hashes_as_before():
    entry = SHAPES["merged:strict+default"]
    layers = [(n, policy.load(SHAPES[n]["stored"])) for n in entry["layers"]]
    assert merge(layers).policy.canonical_hash() == HASHES["merged:strict+default"]


def test_a_revision_stored_before_cpu_percent_means_no_ceiling():
    loaded = policy.load(SHAPES["legacy:before cpu_percent (96c4f38..2afba2f)"]["stored"])
    assert loaded.limits.cpu_percent is None and loaded.limits.cpu_ceiling == 0
    # ... while an admin's input without it gets the default written in.
    parsed = policy.parse(SHAPES["legacy:before cpu_percent (96c4f38..2afba2f)"]["stored"])
    assert parsed.limits.cpu_percent == 0
    assert parsed.canonical_hash() == HASHES["default"]


def test_a_stored_relative_source_loads_but_is_refused_as_new_input():
    stored = SHAPES["legacy:relative source before 81bb553"]["stored"]
    assert policy.load(stored).sources.linux == ("Documents", "{Desktop}")
    with pytest.raises(policy.PolicyError) as exc:
        policy.parse(stored)
    assert "is not an absolute path on linux" in exc.value.errors["sources.linux"][0]
