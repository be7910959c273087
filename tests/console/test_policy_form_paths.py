"""The policy form edits the policy contract by field path: every field of the
contract has a form field, every stored shape survives a round trip through
the form, and the contract's errors land on the field that edits them."""

import json
from pathlib import Path

import pytest

from agent import policy
from agent.policy.merge import leaf_paths
from console.dashboard.forms import ERROR_FIELD, FIELD_PATHS, PolicyForm

SHAPES = json.loads(
    (Path(__file__).parents[1] / "agent" / "fixtures" / "policy_shapes.json").read_text()
)


def test_every_field_of_the_contract_has_a_form_field():
    paths = set(leaf_paths(policy.default_policy()))
    assert paths == set(FIELD_PATHS.values())
    assert set(FIELD_PATHS) <= set(PolicyForm.base_fields)
    assert set(ERROR_FIELD.values()) <= set(PolicyForm.base_fields)


def _post(initial: dict) -> PolicyForm:
    data = {k: v for k, v in initial.items() if v is not None and v is not False}
    form = PolicyForm(data)
    assert form.is_valid(), form.errors
    return form


@pytest.mark.parametrize("name", sorted(n for n in SHAPES if not n.startswith("legacy:relative")))
def test_stored_shapes_round_trip_through_the_form(name):
    stored = SHAPES[name]["stored"]
    form = _post(PolicyForm.initial_from("P", "", stored))
    parsed = policy.parse(form.to_spec())
    # A revision stored before cpu_percent existed comes back with it written (0).
    assert parsed == policy.parse(stored)


def test_contract_errors_land_on_the_field_that_edits_them():
    initial = PolicyForm.initial_from("P", "", policy.default_policy())
    form = _post({**initial, "verify_sample_percent": "0", "daily": "-1", "cpu_percent": "x"})
    with pytest.raises(policy.PolicyError) as exc:
        policy.parse(form.to_spec())
    form.add_spec_errors(exc.value.errors)
    assert set(form.errors) == {"verify_sample_percent", "daily", "cpu_percent"}
