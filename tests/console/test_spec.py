"""console/policies/spec.py: the console's dict-shaped names for the policy
contract. What the contract itself does (defaults, field errors, hash,
merge, known folders) is tested in tests/agent/test_policy_*.py."""

from console.policies import spec as specs


def test_default_spec_is_the_contracts_default_and_valid():
    from agent import policy

    spec, errors = specs.validate_spec(specs.default_spec())
    assert errors == {} and spec == policy.default_policy().to_dict()
    assert spec["excludes"] == specs.DEFAULT_EXCLUDES
    assert specs.spec_hash(spec) == policy.default_policy().canonical_hash()


def test_validate_spec_returns_errors_by_path():
    data = specs.default_spec()
    data["schedule"]["every_hours"] = 0
    assert specs.validate_spec(data) == (
        {},
        {"schedule.every_hours": ["Must be between 1 and 168."]},
    )


def test_merge_first_wins_and_excludes_accumulate():
    strict = specs.default_spec()
    strict["rpo_hours"] = 4
    strict["schedule"]["every_hours"] = 1
    loose = specs.default_spec()
    loose["excludes"] = ["*.iso", "~$*"]
    merged = specs.merge_specs([strict, loose])
    assert merged["rpo_hours"] == 4
    assert merged["excludes"][-1] == "*.iso"
    assert merged["excludes"].count("~$*") == 1
    assert specs.validate_spec(merged)[1] == {}
    assert specs.merge_specs([]) == {}


def test_diff_lists_changed_paths():
    a = specs.default_spec()
    b = specs.default_spec()
    b["schedule"]["every_hours"] = 2
    b["excludes"] = [*b["excludes"], "*.iso"]
    paths = {d["path"] for d in specs.diff_specs(a, b)}
    assert paths == {"schedule.every_hours", "excludes"}
