"""The dispatch seam with a real Celery worker and Redis: a command created
by a service function is delivered by the worker through
the transport the gateway registered (console/jobs/dispatch.py) after the
transaction commits."""

import pytest

from console.audit.services import SYSTEM
from console.fleet import services as fleet
from console.jobs import services as jobs
from console.jobs.tasks import deliver_command
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_worker_runs_the_delivery_task_for_a_new_command(celery_worker, monkeypatch):
    _, secret = fleet.create_enrollment_token(SYSTEM, "t", max_uses=1)
    device = fleet.enroll_device(secret, hostname="pc-1", os="linux")
    queued = []
    original = deliver_command.delay
    monkeypatch.setattr(
        deliver_command, "delay", lambda cid: queued.append(original(cid)) or queued[-1]
    )
    command = jobs.request_backup(SYSTEM, device)  # autocommit: on_commit fires at once
    assert len(queued) == 1
    outcome = queued[0].get(timeout=60)
    assert isinstance(outcome, str) and outcome != "missing"
    wait_until(lambda: queued[0].successful(), 10, what="task success")
    command.refresh_from_db()
    assert command.device_id == device.pk
