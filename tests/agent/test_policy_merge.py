"""Precedence merge: the first policy decides, excludes accumulate, and each
effective value says which policy it came from."""

import dataclasses

from agent import policy
from agent.policy.merge import leaf_paths, merge


def test_first_wins_and_excludes_accumulate():
    strict = dataclasses.replace(
        policy.default_policy(),
        rpo_hours=4,
        schedule=policy.Schedule(every_hours=1),
        excludes=("~$*", "*.tmp"),
    )
    loose = dataclasses.replace(policy.default_policy(), excludes=("*.iso", "~$*"))
    merged = merge([("Executives", strict), ("Standard", loose)])
    assert merged.policy.rpo_hours == 4 and merged.policy.schedule.every_hours == 1
    assert merged.policy.excludes == ("~$*", "*.tmp", "*.iso")
    assert policy.parse(merged.policy.to_dict()) == merged.policy  # itself a valid policy


def test_defined_in_names_the_policy_behind_each_value():
    a = dataclasses.replace(policy.default_policy(), excludes=("*.iso",))
    b = dataclasses.replace(policy.default_policy(), excludes=("*.iso", "node_modules"))
    merged = merge([("Engineering", a), ("Standard", b)])
    assert merged.defined_in["schedule.every_hours"] == "Engineering"
    assert merged.defined_in["limits.cpu_percent"] == "Engineering"
    assert merged.defined_in["schedule.window"] == "Engineering"
    assert merged.defined_in["excludes[*.iso]"] == "Engineering"
    assert merged.defined_in["excludes[node_modules]"] == "Standard"
    # every leaf of the policy is accounted for
    leaves = set(leaf_paths(merged.policy)) - {"excludes"}
    assert leaves <= set(merged.defined_in)
    assert "retention.daily" in leaves and "sources.windows" in leaves


def test_nothing_to_merge():
    assert merge([]) is None
