"""The enrollment page names the address PCs enroll at and the console CA's
fingerprint they pin, and the command for a new token carries both
(issue 12)."""

from __future__ import annotations

import html

from console.core import pki


def test_enrollment_page_shows_the_real_address_and_ca_fingerprint(
    ui, small_fleet, settings, monkeypatch, tmp_path
):
    settings.PKI_DIR = tmp_path / "pki"
    settings.GATEWAY_BIND = "0.0.0.0:7443"
    settings.GATEWAY_PUBLIC_ADDRESS = "backup.example.org:7443"
    monkeypatch.setenv("CAIRN_GATEWAY_ENROLL_BIND", "0.0.0.0:7444")
    monkeypatch.delenv("CAIRN_GATEWAY_ENROLL_ADDRESS", raising=False)
    c = ui("admin")
    # no CA yet: said, not invented
    page = c.get("/enrollment/").content.decode()
    assert "the console CA does not exist yet" in page
    ca = pki.ensure_ca(settings.PKI_DIR, create=True)
    page = c.get("/enrollment/").content.decode()
    assert "<code>backup.example.org:7444</code>" in page and ca.fingerprint in page
    r = c.post(
        "/enrollment/",
        {"name": "Sales", "group": small_fleet.group.pk, "expires_in_hours": 24, "max_uses": 5},
    )
    text = html.unescape(r.content.decode())
    secret = text.split('id="new-token">')[1].split("<")[0]
    command = text.split('id="enroll-command">')[1].split("</code>")[0]
    assert command == (
        f"cairn-agent enroll --server backup.example.org:7444 --token {secret} "
        f"--ca-fingerprint {ca.fingerprint}"
    )
    # a published enrollment port other than the listener's
    monkeypatch.setenv("CAIRN_GATEWAY_ENROLL_ADDRESS", "enroll.example.org:443")
    assert "<code>enroll.example.org:443</code>" in c.get("/enrollment/").content.decode()
    # the auditor reads the page too (token.view), with the same facts
    assert ca.fingerprint in ui("auditor").get("/enrollment/").content.decode()
