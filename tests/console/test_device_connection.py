"""What the agent reports about itself (online, state, why it is paused)
reaches the device page through the gateway's batched writes."""

import datetime as dt

from django.utils import timezone

from console.gateway.services import connections


def test_pause_reason_and_agent_state_show_on_the_device_page(ui, small_fleet):
    device = small_fleet.devices[0]
    c = ui("auditor")
    html = c.get(f"/devices/{device.pk}/").content.decode()
    assert "Connection" not in html  # never connected: nothing to claim

    next_at = timezone.now() + dt.timedelta(hours=2)
    connections.flush(
        opened={str(device.pk): ("gw-test", timezone.now())},
        seen={
            str(device.pk): {
                "changed": True,
                "state": "paused",
                "pause_reason": "on_battery",
                "next_backup_at": next_at,
                "outbox_size": 3,
            }
        },
    )
    html = c.get(f"/devices/{device.pk}/").content.decode()
    assert "Online" in html
    assert 'data-testid="pause-reason"' in html and "on battery" in html
    assert "Unsent reports" in html and ">3<" in html

    connections.mark_offline(now=timezone.now() + dt.timedelta(hours=1))
    assert "Offline" in c.get(f"/devices/{device.pk}/").content.decode()


def test_the_api_reports_the_same_connection_facts(api, small_fleet):
    device = small_fleet.devices[0]
    c = api("auditor")
    assert c.get(f"/api/v1/devices/{device.pk}/").json()["connection"] is None

    connections.flush(
        opened={str(device.pk): ("gw-test", timezone.now())},
        seen={
            str(device.pk): {"changed": True, "state": "paused", "pause_reason": "metered_network"}
        },
    )
    conn = c.get(f"/api/v1/devices/{device.pk}/").json()["connection"]
    assert conn["online"] is True
    assert conn["agent_state"] == "paused" and conn["pause_reason"] == "metered_network"


def test_the_offline_backup_lease_shows_on_the_device_page_and_in_the_api(ui, api, small_fleet):
    from console.fleet.models import Device

    device = small_fleet.devices[0]
    page = ui("auditor")
    assert 'data-testid="offline-lease"' not in page.get(f"/devices/{device.pk}/").content.decode()
    until = timezone.now() + dt.timedelta(days=7)
    Device.objects.filter(pk=device.pk).update(
        spool_lease_issued_at=timezone.now(), spool_lease_expires_at=until
    )
    html = page.get(f"/devices/{device.pk}/").content.decode()
    assert 'data-testid="offline-lease"' in html and "possible until" in html
    body = api("auditor").get(f"/api/v1/devices/{device.pk}/").json()
    assert body["spool_lease_expires_at"].startswith(until.strftime("%Y-%m-%d"))

    Device.objects.filter(pk=device.pk).update(spool_lease_expires_at=timezone.now())
    assert "lease expired" in page.get(f"/devices/{device.pk}/").content.decode()
