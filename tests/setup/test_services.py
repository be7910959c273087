"""The harness gives tests the real services: Redis, a Celery worker, S3, the database."""

import io

import pytest
from django.db import connection

from console.core.tasks import ping


def test_s3_server_speaks_real_http_through_minio(s3_server, s3_bucket):
    client = s3_server.client()
    client.put_object(s3_bucket, "a/b.txt", io.BytesIO(b"hello"), 5)
    assert client.get_object(s3_bucket, "a/b.txt").read() == b"hello"
    assert [o.object_name for o in client.list_objects(s3_bucket, prefix="a/")] == ["a/b.txt"]


def test_redis_answers(redis_url):
    import redis

    assert redis.Redis.from_url(redis_url).ping() is True


def test_celery_worker_consumes_from_redis(celery_worker):
    result = ping.delay("round-trip")
    assert result.get(timeout=30) == "round-trip"


@pytest.mark.django_db
def test_database_is_the_configured_one():
    import os

    expected = (
        "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    )
    assert connection.vendor == expected


def test_embedded_broker_needs_no_server(tmp_path):
    """Without REDIS_URL, a worker and a client meet on the filesystem broker."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env["CAIRN_VAR_DIR"] = str(tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "console", "worker", "-P", "solo", "-l", "WARNING"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from console.core.tasks import ping;"
                "print(ping.delay('via-files').get(timeout=60))",
            ],
            cwd=root,
            env={**env, "DJANGO_SETTINGS_MODULE": "console.settings"},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.strip().splitlines()[-1] == "via-files"
        assert (tmp_path / "celery" / "queue").is_dir()
    finally:
        worker.terminate()
        worker.wait(30)
