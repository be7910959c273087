""" "Defined in": the device page and the API say which policy and group each
value of a device's effective policy comes from (console/policies/origin.py)."""

from __future__ import annotations

import pytest

from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.policies import origin
from console.policies import services as policies
from console.policies import spec as specs

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_policies(small_fleet):
    """A device in Finance (Standard, precedence 100) and Engineering
    (Executives, precedence 10: it wins, and adds the exclude *.iso)."""
    device = small_fleet.devices[0]
    strict = specs.default_spec()
    strict["schedule"]["every_hours"] = 1
    strict["excludes"] = ["*.iso"]
    execs = policies.create_policy(SYSTEM, "Executives", strict)
    fleet.set_device_groups(SYSTEM, device, [small_fleet.group, small_fleet.other_group])
    policies.assign_policy(SYSTEM, execs, small_fleet.other_group, 10)
    device.refresh_from_db()
    return device, execs, small_fleet


def test_each_value_names_the_assignment_it_comes_from(two_policies):
    device, execs, f = two_policies
    items = {
        i.setting: i
        for i in origin.effective_settings(policies.effective_policy_for_device(device))
    }
    winner = origin.Origin(execs.pk, "Executives", f.other_group.pk, "Engineering", 10)
    standard = origin.Origin(f.policy.pk, "Standard", f.group.pk, "Finance", 100)
    assert items["schedule.every_hours"].value == 1
    assert items["schedule.every_hours"].origin == winner
    assert items["retention.daily"].origin == winner
    assert items["excludes[*.iso]"].origin == winner
    # an exclude only the lower-precedence policy lists still applies, from it
    assert items["excludes[~$*]"].value == "~$*"
    assert items["excludes[~$*]"].origin == standard


def test_the_device_page_shows_where_each_setting_comes_from(two_policies, ui):
    device, execs, f = two_policies
    r = ui("auditor").get(f"/devices/{device.pk}/")
    assert r.status_code == 200
    rows = r.context["settings_origin"]
    schedule = next(row for row in rows if row.section == "Schedule")
    assert ("every hours", "1") in schedule.values and schedule.origin.policy_name == "Executives"
    excludes = [row for row in rows if row.section == "Excludes"]
    assert [(row.origin.policy_name, row.values[0][1]) for row in excludes] == [
        ("Executives", "*.iso"),
        ("Standard", "~$*"),
    ]
    # the winner is named once for its run of rows (Sources ... its excludes)
    assert [row.span for row in rows] == [8, 0, 0, 0, 0, 0, 0, 0, 1]
    html = r.content.decode()
    assert 'id="effective-settings"' in html
    assert (
        f'<a href="/policies/{execs.pk}/">Executives</a> <span class="muted">via '
        f'<a href="/groups/{f.other_group.pk}/">Engineering</a>, precedence 10</span>'
    ) in html
    assert (
        f'<a href="/policies/{f.policy.pk}/">Standard</a> <span class="muted">via '
        f'<a href="/groups/{f.group.pk}/">Finance</a>, precedence 100</span>'
    ) in html


def test_a_device_without_a_policy_shows_no_settings(small_fleet, ui):
    device = small_fleet.devices[0]
    fleet.set_device_groups(SYSTEM, device, [small_fleet.other_group])
    r = ui("auditor").get(f"/devices/{device.pk}/")
    assert r.context["settings_origin"] == []
    assert 'id="effective-settings"' not in r.content.decode()


def test_the_api_device_detail_has_defined_in(two_policies, api):
    device, execs, f = two_policies
    detail = api("auditor").get(f"/api/v1/devices/{device.pk}/").json()
    by_setting = {d["setting"]: d for d in detail["defined_in"]}
    assert by_setting["schedule.every_hours"] == {
        "setting": "schedule.every_hours",
        "value": 1,
        "policy": execs.pk,
        "policy_name": "Executives",
        "group": f.other_group.pk,
        "group_name": "Engineering",
        "precedence": 10,
    }
    assert by_setting["excludes[~$*]"]["policy"] == f.policy.pk
    assert (
        by_setting["sources.windows"]["value"] == execs.current_revision.spec["sources"]["windows"]
    )


def test_the_schema_documents_defined_in(api):
    schema = api("auditor").get("/api/schema/", {"format": "json"}).json()
    detail = schema["components"]["schemas"]["DeviceDetail"]["properties"]["defined_in"]
    assert detail["type"] == "array" and detail["readOnly"] is True
    item = schema["components"]["schemas"]["DefinedIn"]
    assert set(item["required"]) == {
        "setting",
        "value",
        "policy",
        "policy_name",
        "group",
        "group_name",
        "precedence",
    }
