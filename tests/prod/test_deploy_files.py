"""The deployment files agree with each other and are complete: the compose
file's Cairn commands are the systemd units' (the ones `make prod-check`
runs), every variable the compose file needs is explained in .env.example,
images are pinned, every long-running service has a health check, the image
runs as a non-root user with its state directory owned by it, and the
Dockerfile's collectstatic writes whitenoise's manifest."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.prod import stack


@pytest.mark.parametrize("service", stack.CAIRN_SERVICES)
def test_compose_and_systemd_run_the_same_command(service):
    assert stack.compose_command(service) == stack.unit_command(service)


def test_units_start_after_init_and_init_runs_before_every_cairn_service():
    services = stack.compose()["services"]
    for name in stack.CAIRN_SERVICES[1:]:
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"}
        }, name
        unit = (stack.UNITS / f"cairn-{name}.service").read_text()
        assert "Requires=cairn-init.service" in unit and "cairn-init.service" in unit, name
    assert "Type=oneshot" in (stack.UNITS / "cairn-init.service").read_text()


def test_every_compose_variable_is_in_env_example_with_an_explanation():
    documented = stack.env_example()
    text = stack.ENV_EXAMPLE.read_text()
    missing = stack.referenced_variables() - set(documented)
    assert not missing, f"compose uses variables .env.example does not set: {sorted(missing)}"
    for name in documented:
        before = text[: text.index(f"\n{name}=")].rstrip().splitlines()[-1]
        assert before.startswith("#") or before.split("=")[0].isupper(), name
    # No secret value ships in the example.
    for secret in ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert documented[secret] == "", secret


def test_images_are_pinned_and_services_have_health_checks():
    services = stack.compose()["services"]
    for name, spec in services.items():
        if "image" in spec and "build" not in spec:
            image = spec["image"]
            tag = image.rpartition(":")[2]
            assert ":" in image and tag not in ("latest", "") and re.search(r"\d", tag), image
            assert not re.fullmatch(r"\d+", tag), f"{image}: a major version only is not a pin"
        if name != "init":
            assert "healthcheck" in spec, f"{name} has no health check"
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--requirepass" in redis_cmd
    assert "${REDIS_PASSWORD" in services["redis"]["environment"]["REDIS_PASSWORD"]
    assert stack.compose()["x-cairn"]["environment"]["REDIS_URL"].startswith("redis://:${REDIS_")
    # Agents outside the compose network: the gateway's two ports are published.
    assert [p.split(":")[-1] for p in services["gateway"]["ports"]] == ["7443", "7444"]


def test_image_runs_as_a_user_owning_its_state():
    docker = (stack.DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", docker, re.M)
    assert users and users[-1] not in ("root", "0", "nobody")
    assert f"-o {users[-1]} -g {users[-1]}" in docker and "/var/lib/cairn" in docker
    assert "/var/lib/cairn" in str(stack.compose()["volumes"]) or "cairnstate" in str(
        stack.compose()["x-cairn"]["volumes"]
    )
    ignored = (stack.ROOT / ".dockerignore").read_text().split()
    for must in (".venv", "var", ".git", ".env"):
        assert must in ignored, must


def test_image_can_dump_the_compose_database_for_the_console_backup():
    """backup_console runs pg_dump in the image: its major version must be the
    server's (pg_dump refuses a newer server). The base image is Debian
    bookworm, whose postgresql-client is 15."""
    docker = (stack.DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:[^\n]*-bookworm$", docker, re.M)
    assert re.search(r"apt-get install [^\n]*postgresql-client", docker)
    image = stack.compose()["services"]["postgres"]["image"]
    assert re.fullmatch(r"postgres:15\.\d+-bookworm", image), image


def test_dockerfile_collectstatic_writes_whitenoise_manifest(tmp_path):
    """The image's RUN line, as written, with the static root moved here."""
    docker = (stack.DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    (run,) = [ln for ln in docker.splitlines() if "collectstatic" in ln]
    cmd = run.removeprefix("RUN ").replace("/app/static", str(tmp_path / "static"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "S3_"))}
    env.update(CAIRN_STATIC_ROOT=str(tmp_path / "static"), PATH=f"{stack.BIN}:{env['PATH']}")
    res = subprocess.run(
        ["sh", "-c", cmd], cwd=stack.ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    assert '"cairn/cairn.css"' in manifest
