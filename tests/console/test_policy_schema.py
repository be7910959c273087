"""The API's OpenAPI schema describes the policy spec field by field, generated
from the policy contract's dataclasses (console/policies/schema.py): every
field of the contract, with its type, bounds, enum, pattern, nullability and
default, and ``manage.py spectacular --fail-on-warn`` stays clean."""

import dataclasses
import typing

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

from agent import policy
from agent.policy.openfiles import OPEN_FILE_MODES

COMPONENTS = {
    policy.Policy: "PolicySpec",
    policy.Sources: "PolicySources",
    policy.Schedule: "PolicySchedule",
    policy.Window: "PolicyWindow",
    policy.Retention: "PolicyRetention",
    policy.Limits: "PolicyLimits",
    policy.Verification: "PolicyVerification",
}


@pytest.fixture(scope="module")
def schemas():
    return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


def _ref(prop: dict) -> str:
    return prop.get("$ref") or prop["allOf"][0]["$ref"]


def _inner(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, type(int | None)) else hint


@pytest.mark.parametrize("cls", list(COMPONENTS), ids=lambda c: c.__name__)
def test_every_contract_field_is_described(schemas, cls):
    for suffix in ("", "Request"):
        props = schemas[COMPONENTS[cls] + suffix]["properties"]
        hints = typing.get_type_hints(cls)
        assert set(props) == {f.name for f in dataclasses.fields(cls)}
        for f in dataclasses.fields(cls):
            prop, hint = props[f.name], _inner(hints[f.name])
            if dataclasses.is_dataclass(hint):
                assert _ref(prop).endswith(COMPONENTS[hint] + suffix), f.name
            elif hint is int:
                assert prop["type"] == "integer", f.name
                assert (prop["minimum"], prop["maximum"]) == (f.metadata["min"], f.metadata["max"])
                assert prop["default"] == f.default
            elif hint is bool:
                assert prop["type"] == "boolean" and prop["default"] == f.default, f.name
            elif typing.get_origin(hint) is tuple:
                assert prop["type"] == "array" and prop["items"]["type"] == "string", f.name
            elif "enum" in f.metadata:
                assert set(schemas[_ref(prop).split("/")[-1]]["enum"]) == set(f.metadata["enum"])
            else:
                assert prop["type"] == "string" and prop["pattern"] == f.metadata["pattern"]


def test_bounds_enums_and_nullability_are_the_contracts(schemas):
    spec = schemas["PolicySpecRequest"]["properties"]
    open_files = spec["open_files"]
    enum = schemas[_ref(open_files).split("/")[-1]]["enum"]
    assert set(enum) == set(OPEN_FILE_MODES)
    schedule = schemas["PolicyScheduleRequest"]["properties"]
    assert schedule["every_hours"]["nullable"] is True
    assert schedule["window"]["nullable"] is True
    assert set(schemas["PolicyWindowRequest"]["required"]) == {"start", "end"}
    limits = schemas["PolicyLimitsRequest"]["properties"]
    assert "nullable" not in limits["cpu_percent"]  # absent in old revisions, never null
    assert (limits["cpu_percent"]["minimum"], limits["cpu_percent"]["maximum"]) == (0, 100)
    # what OpenAPI cannot declare is said in the spec's description
    assert "every_hours or times, not both" in schemas["PolicySpecRequest"]["description"]


def test_policy_endpoints_reference_the_spec(schemas):
    assert _ref(schemas["PolicyRequest"]["properties"]["spec"]).endswith("PolicySpecRequest")
    assert _ref(schemas["Revision"]["properties"]["spec"]).endswith("PolicySpec")


def test_spectacular_has_no_warnings(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "PolicySpec:" in (tmp_path / "schema.yaml").read_text()
