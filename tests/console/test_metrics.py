"""The console's /metrics: values equal to a crafted fleet's (computed here
independently, at a frozen instant), hostile hostnames neutralised, the broker's
queue length read from Redis, scrapes refused without the bearer token, and a
real Celery worker's task counters scraped over HTTP."""

from __future__ import annotations

import contextlib
import math
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import kombu
import pytest
import redis
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from console.fleet.models import Device
from console.jobs.models import JobKind, JobRun, JobState
from console.metrics import fleet as fleet_metrics
from tests.console.conftest import enroll
from tests.support import celery_worker_argv, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-test-token-0123456789"
NOW = timezone.now().replace(microsecond=0)


@pytest.fixture(autouse=True)
def frozen(monkeypatch, settings):
    settings.CAIRN_METRICS_TOKEN = TOKEN
    settings.CAIRN_METRICS_CACHE_SECONDS = 0
    monkeypatch.setattr(fleet_metrics.timezone, "now", lambda: NOW)
    fleet_metrics.collector.clear()
    yield
    fleet_metrics.collector.clear()


def scrape(client, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def by_name(found: dict, name: str) -> dict:
    return {labels: v for (n, labels), v in found.items() if n == name}


def test_values_match_a_crafted_fleet(client, small_fleet):
    d_ok, d_risk, d_never = small_fleet.devices
    (d_revoked,) = enroll(small_fleet.token_plaintext, 1, prefix="gone")
    hostile = 'evil"}\n# TYPE x counter\nx 1\x07' + "h" * 200
    (d_hostile,) = enroll(small_fleet.token_plaintext, 1, prefix="tmp")
    Device.objects.filter(pk=d_hostile.pk).update(hostname=hostile)
    hour = timedelta(hours=1)
    Device.objects.filter(pk=d_ok.pk).update(
        last_success_at=NOW - timedelta(seconds=600), protected_until=NOW + hour,
        at_risk_until=NOW + 3 * hour,
    )  # fmt: skip
    Device.objects.filter(pk=d_risk.pk).update(
        last_success_at=NOW - 30 * hour, protected_until=NOW - 6 * hour,
        at_risk_until=NOW + 42 * hour,
    )  # fmt: skip
    Device.objects.filter(pk=d_hostile.pk).update(
        last_success_at=NOW - 100 * hour, protected_until=NOW - 76 * hour,
        at_risk_until=NOW - 28 * hour,
    )  # fmt: skip
    Device.objects.filter(pk=d_revoked.pk).update(
        revoked=True, revoked_at=NOW, last_success_at=NOW - hour
    )
    # One of the devices runs the revision it targets.
    d_ok.refresh_from_db()
    Device.objects.filter(pk=d_ok.pk).update(applied_hash=d_ok.effective_hash)
    jobs = [
        ("backup", "succeeded", 1), ("backup", "succeeded", 2), ("backup", "failed", 3),
        ("verify", "running", 1), ("restore", "cancelled", 23),
        ("backup", "succeeded", 25), ("backup", "failed", 48),  # older than 24 h
    ]  # fmt: skip
    for kind, state, hours_ago in jobs:
        JobRun.objects.create(
            device=d_ok, kind=kind, state=state, started_at=NOW - hours_ago * hour
        )

    response = scrape(client)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response.content.decode())

    assert by_name(found, "cairn_devices") == {
        frozenset({("state", "protected")}): 1,
        frozenset({("state", "at_risk")}): 1,
        frozenset({("state", "unprotected")}): 2,  # never backed up, and the hostile one
        frozenset({("state", "revoked")}): 1,
    }
    ages = by_name(found, "cairn_device_last_good_backup_age_seconds")
    bounded = hostile.replace("\n", "?").replace("\x07", "?")[:63] + "…"
    assert ages == {
        frozenset({("device", str(d_ok.pk)), ("hostname", "pc-000")}): 600.0,
        frozenset({("device", str(d_risk.pk)), ("hostname", "pc-001")}): 30 * 3600.0,
        frozenset({("device", str(d_never.pk)), ("hostname", "pc-002")}): math.inf,
        frozenset({("device", str(d_hostile.pk)), ("hostname", bounded)}): 100 * 3600.0,
    }  # the revoked device has no series
    assert len(bounded) == fleet_metrics.LABEL_MAX
    assert "\nx 1" not in response.content.decode()  # the hostname cannot inject a sample

    jobs = {k: v for k, v in by_name(found, "cairn_jobs_last_24h").items() if v}
    assert jobs == {
        frozenset({("kind", "backup"), ("state", "succeeded")}): 2,
        frozenset({("kind", "backup"), ("state", "failed")}): 1,
        frozenset({("kind", "verify"), ("state", "running")}): 1,
        frozenset({("kind", "restore"), ("state", "cancelled")}): 1,
    }
    # every kind x state, zeros too
    assert len(by_name(found, "cairn_jobs_last_24h")) == len(JobKind) * len(JobState)

    rev = d_ok.effective_revision
    key = frozenset(
        {("policy_id", str(small_fleet.policy.pk)), ("policy", "Standard"),
         ("revision", str(rev.number))}
    )  # fmt: skip
    # Every device enrolled into Finance gets Standard; the revoked one is not targeted.
    assert by_name(found, "cairn_policy_rollout_targeted_devices") == {key: 4}
    assert by_name(found, "cairn_policy_rollout_acknowledged_devices") == {key: 1}


def test_queue_length_is_read_from_redis(client, db, settings, redis_url, redis_prefix):
    queue = f"{redis_prefix}metrics-queue"
    settings.CELERY_BROKER_URL = redis_url
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    r = redis.Redis.from_url(redis_url)
    keys = [queue, f"{queue}\x06\x166"]
    try:
        r.lpush(keys[0], "a", "b", "c")
        r.lpush(keys[1], "d", "e")  # a priority-6 message, kombu's own list
        found = samples(scrape(client).content.decode())
        assert by_name(found, "cairn_celery_queue_length") == {frozenset({("queue", queue)}): 5}
        assert by_name(found, "cairn_broker_up") == {frozenset(): 1}
        r.delete(*keys)
        fleet_metrics.collector.clear()
        found = samples(scrape(client).content.decode())
        assert by_name(found, "cairn_celery_queue_length") == {frozenset({("queue", queue)}): 0}
    finally:
        r.delete(*keys)
    # A broker that does not answer is said so, not reported as an empty queue.
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    fleet_metrics.collector.clear()
    found = samples(scrape(client).content.decode())
    assert by_name(found, "cairn_broker_up") == {frozenset(): 0}
    assert by_name(found, "cairn_celery_queue_length") == {}


def test_queue_length_of_the_embedded_broker(client, db, settings, tmp_path):
    """kombu's filesystem transport (make demo): messages put by kombu itself
    are counted for their queue only."""
    folder = tmp_path / "queue"
    folder.mkdir()
    # control_folder too: kombu's default is "control" in the working directory
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
    }
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    settings.CELERY_TASK_DEFAULT_QUEUE = "cairn"
    with kombu.Connection("filesystem://", transport_options=options) as conn:
        for queue, n in (("cairn", 4), ("other.cairn", 2), ("cairn-other", 1)):
            q = conn.SimpleQueue(queue)
            for i in range(n):
                q.put({"i": i})
            q.close()
    found = samples(scrape(client).content.decode())
    assert by_name(found, "cairn_celery_queue_length") == {frozenset({("queue", "cairn")}): 4}


def test_results_are_cached_for_the_configured_seconds(client, small_fleet, settings):
    settings.CAIRN_METRICS_CACHE_SECONDS = 60
    first = by_name(samples(scrape(client).content.decode()), "cairn_devices")
    Device.objects.filter(pk=small_fleet.devices[0].pk).update(revoked=True)
    cached = by_name(samples(scrape(client).content.decode()), "cairn_devices")
    assert cached == first
    fleet_metrics.collector.clear()
    fresh = by_name(samples(scrape(client).content.decode()), "cairn_devices")
    assert fresh[frozenset({("state", "revoked")})] == 1 != first[frozenset({("state", "revoked")})]


def test_scrapes_without_the_token_are_refused(client, ui, db, settings):
    for token in (None, "wrong", TOKEN + "x", ""):
        response = scrape(client, token)
        assert response.status_code == 401, token
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"cairn_" not in response.content
    # The API's token scheme, or a signed-in admin's session, is not a scrape token.
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    assert ui("admin").get("/metrics").status_code == 401
    assert scrape(client).status_code == 200
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_production_without_a_token_refuses_everyone(client, db, settings):
    settings.CAIRN_METRICS_TOKEN = ""
    settings.PRODUCTION = True
    response = scrape(client, "anything")
    assert response.status_code == 403
    assert b"CAIRN_METRICS_TOKEN" in response.content
    assert scrape(client, None).status_code == 403
    settings.PRODUCTION = False  # development with no token: open, for make demo
    assert scrape(client, None).status_code == 200


def _get(url: str, token: str | None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@contextlib.contextmanager
def _worker(service_env, tmp_path, pool: str, extra: dict):
    """A real Celery worker with ``pool`` and its exporter on a free port;
    yields (url, process, log file)."""
    queue = service_env["CELERY_QUEUE"] + f"-metrics-{pool}"
    port = free_port()
    env = {
        **service_env,
        "CAIRN_METRICS_TOKEN": TOKEN,
        "CAIRN_WORKER_METRICS_BIND": f"127.0.0.1:{port}",
        **extra,
    }
    argv = celery_worker_argv(queue, f"metrics-{pool}")
    argv[argv.index("threads")] = pool
    log = tmp_path / f"worker-{pool}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield queue, f"http://127.0.0.1:{port}/metrics", proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _count_tasks(url: str, queue: str, n: int) -> str:
    """Send ``n`` tasks to ``queue``, wait for them, and for the worker's
    exporter to count exactly ``n``; its exposition."""
    from console.celery import app

    results = [app.send_task("gateway.mark_offline", queue=queue) for _ in range(n)]
    for r in results:
        r.get(timeout=60, propagate=False)

    def counted():
        text = _get(url, TOKEN)[1]
        total = sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "cairn_worker_tasks_total"
            and s.labels.get("task") == "gateway.mark_offline"
        )
        return total == n and text

    return wait_until(counted, 30, 0.3, what=f"{n} tasks counted")


@pytest.fixture
def celery_app(service_env):
    from console.celery import app

    app.conf.broker_url = app.conf.result_backend = service_env["REDIS_URL"]
    return app


def test_a_prefork_worker_counts_tasks_across_its_children(service_env, tmp_path, celery_app):
    """A real worker (prefork, two children, multiprocess mode): tasks run
    in the children are added up by the exporter in the main process."""
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    with _worker(service_env, tmp_path, "prefork", extra) as (queue, url, proc, log):
        wait_until(lambda: proc.poll() is not None or _get(url, TOKEN)[0] == 200, 60, 0.2,
                   what="the worker's exporter")  # fmt: skip
        assert proc.poll() is None, log.read_text()
        assert _get(url, None)[0] == 401
        text = _count_tasks(url, queue, 6)
        assert "cairn_worker_task_duration_seconds_count" in text
        assert list((tmp_path / "prom").glob("*.db")), "the children wrote to the folder"


def test_a_threads_worker_counts_in_its_own_process(service_env, tmp_path, celery_app):
    with _worker(service_env, tmp_path, "threads", {}) as (queue, url, proc, log):
        wait_until(lambda: proc.poll() is not None or _get(url, TOKEN)[0] == 200, 60, 0.2,
                   what="the worker's exporter")  # fmt: skip
        assert proc.poll() is None, log.read_text()
        _count_tasks(url, queue, 3)


def test_a_prefork_worker_without_the_folder_says_so_rather_than_show_zeros(
    service_env, tmp_path, celery_app
):
    with _worker(service_env, tmp_path, "prefork", {}) as (queue, url, proc, log):
        wait_until(lambda: "PROMETHEUS_MULTIPROC_DIR" in log.read_text(errors="replace"),
                   60, 0.2, what="the worker's error")  # fmt: skip
        assert proc.poll() is None, "the worker itself keeps working"
        assert _get(url, TOKEN)[0] == 0  # nothing listens
