"""Gateway processes for the tests of this folder: one on the embedded
local store, one on moto's S3 server (repositories under ``acme/``)."""

from __future__ import annotations

import contextlib

import pytest

from tests.gateway.harness import Gateway


@contextlib.contextmanager
def _running(env: dict, log):
    gw = Gateway(env, log).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gateway(service_env, tmp_path):
    env = {
        **service_env,
        "CAIRN_HEARTBEAT_FLUSH_SECONDS": "0.5",
        "CAIRN_GATEWAY_SWEEP_SECONDS": "1",
    }
    with _running(env, tmp_path / "gateway.log") as gw:
        yield gw


@pytest.fixture
def s3_gateway(service_env, s3_server, s3_bucket, tmp_path):
    env = {
        **service_env,
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_BUCKET": s3_bucket,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "CAIRN_ORG": "acme",
    }
    with _running(env, tmp_path / "gateway.log") as gw:
        yield gw
