"""Self-service restore (issue 11) with real processes and real OS users:
the agent daemon (root, holding the repository key) serves its local socket
and loopback web page; alice (a real account, ``runuser``) lists and restores
her own files with ``cairn-agent files`` and through the web page, is refused
bob's and root's files and folders she does not own, gets files she owns,
and nothing is written outside her home. Her restores wait in the agent's
outbox while the gateway is unreachable and reach the console's audit log
when the agent reconnects."""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import urllib.parse
from pathlib import Path

import pytest

from agent.daemon.home import AgentHome
from agent.daemon.repo import open_repository
from agent.daemon.state import State
from agent.engine.backup import run_backup
from agent.engine.store import open_store
from agent.rpc import agent_pb2 as pb
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.fleet.services import create_enrollment_token
from tests.gateway.harness import ROOT, Agent, enroll_agent, wait_for
from tests.support import free_port

pytestmark = pytest.mark.slow


def _user_python() -> str | None:
    """An interpreter an unprivileged user can run with the venv's packages
    (the venv's own may live under /root): same version, on the system."""
    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.access(cand, os.X_OK):
            continue
        out = subprocess.run(
            [cand, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if out.stdout.strip() == str(tuple(sys.version_info[:2])):
            return cand
    return None


PY = _user_python()
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid")
    or os.geteuid() != 0
    or not shutil.which("useradd")
    or not shutil.which("runuser")
    or PY is None
    or not sys.platform.startswith("linux"),
    reason="needs root, useradd/runuser and a system Python of the same version (Linux)",
)


def _tree(root: Path) -> dict:
    """Every path under root with its size and owner (links not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p)] = (st.st_size if not p.is_dir() else 0, st.st_uid)
    return out


@pytest.fixture
def people():
    """Two real OS accounts with homes under a fresh folder, removed after."""
    base = Path(tempfile.mkdtemp(prefix="cairn-ss-", dir="/tmp"))
    base.chmod(0o755)
    (base / "home").mkdir(mode=0o755)
    tag = secrets.token_hex(3)
    users = {}
    try:
        for who in ("alice", "bob"):
            name = f"css{tag}{who[0]}"
            home = base / "home" / who
            subprocess.run(
                ["useradd", "-M", "-d", str(home), "-s", "/usr/sbin/nologin", name], check=True
            )
            users[who] = name
            home.mkdir(mode=0o700)
            shutil.chown(home, name, name)
        yield base, users
    finally:
        for name in users.values():
            subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _as_user(name: str, cwd: Path, sock: Path, *args: str) -> subprocess.CompletedProcess:
    site = sysconfig.get_paths()["purelib"]
    return subprocess.run(
        [
            "runuser",
            "-u",
            name,
            "--",
            "env",
            f"PYTHONPATH={ROOT}:{site}",
            "PYTHONDONTWRITEBYTECODE=1",
            f"CAIRN_AGENT_SOCKET={sock}",
            PY,
            "-m",
            "agent",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _http(port: int, method: str, path: str, *, cookie: str = "", body: str = "", host=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if cookie:
        headers["Cookie"] = cookie
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


@needs_root
def test_person_at_the_pc_restores_own_files_only_audited_after_reconnect(
    gateway, people, tmp_path
):
    base, users = people
    alice, bob = users["alice"], users["bob"]
    alice_home, bob_home = base / "home" / "alice", base / "home" / "bob"
    uid = {n: int(subprocess.check_output(["id", "-u", n])) for n in (alice, bob)}

    # Files of alice, bob and root on the PC, backed up with the device's key.
    (alice_home / "Documents" / "sub").mkdir(parents=True)
    (alice_home / "Documents" / "report.txt").write_text("alice's report\n" * 100)
    (alice_home / "Documents" / "sub" / "data.bin").write_bytes(os.urandom(150_000))
    (bob_home / "secret.txt").write_text("bob only\n")
    (base / "rootdata").mkdir(mode=0o700)
    (base / "rootdata" / "key.txt").write_text("root only\n")
    for p in alice_home.rglob("*"):
        shutil.chown(p, alice, alice)
    shutil.chown(bob_home / "secret.txt", bob, bob)

    _, token = create_enrollment_token(SYSTEM, "self-service", max_uses=1)
    home_dir = tmp_path / "agent"
    device_id = enroll_agent(home_dir, gateway, token)
    home = AgentHome(home_dir)
    identity = home.load_identity()
    repo = open_repository(open_store(identity.repository_url), home.repository_key())
    snap = run_backup(repo, [str(base / "home"), str(base / "rootdata")]).snapshot
    short = snap.id[:8]

    (base / "run").mkdir(mode=0o755)
    sock = base / "run" / "agent.sock"
    res = _as_user(alice, alice_home, sock, "files", "ls")
    assert res.returncode == 1 and "agent is not running" in res.stderr, res.stderr
    # First run: the gateway is unreachable (the PC is away from the office).
    env = {"CAIRN_AGENT_SOCKET": str(sock), "CAIRN_AGENT_WEB_PORT": str(free_port())}
    agent = Agent(
        home_dir,
        tmp_path / "agent.log",
        {**env, "CAIRN_AGENT_GATEWAY": f"127.0.0.1:{free_port()}"},
    ).start()
    try:
        wait_for(sock.exists, 30, "the agent's local socket")
        others_before = _tree(base / "home" / "bob") | _tree(base / "rootdata")

        # alice sees only her own folders.
        res = _as_user(alice, alice_home, sock, "files", "ls", "--json")
        assert res.returncode == 0, res.stderr
        snaps = json.loads(res.stdout)
        assert [s["paths"] for s in snaps] == [[str(alice_home)]]
        res = _as_user(alice, alice_home, sock, "files", "ls", short, f"{alice_home}/Documents")
        assert res.returncode == 0 and "report.txt" in res.stdout and "sub/" in res.stdout
        res = _as_user(alice, alice_home, sock, "files", "ls", "latest", str(bob_home))
        assert res.returncode == 1 and "is not yours" in res.stderr, res.stderr
        assert "secret.txt" not in res.stdout

        # She restores her file: into a new folder in her home, owned by her.
        res = _as_user(
            alice,
            alice_home,
            sock,
            "files",
            "restore",
            short,
            f"{alice_home}/Documents/report.txt",
            "--json",
        )
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        restored = Path(out["restored"])
        assert restored.read_text() == "alice's report\n" * 100
        assert Path(out["target"]).parent == alice_home
        for p in [Path(out["target"]), *Path(out["target"]).rglob("*")]:
            assert p.lstat().st_uid == uid[alice], p
        # A folder, into a folder she owns, with the rich table output.
        (alice_home / "back").mkdir()
        shutil.chown(alice_home / "back", alice, alice)
        res = _as_user(
            alice,
            alice_home,
            sock,
            "files",
            "restore",
            "latest",
            f"{alice_home}/Documents",
            "--target",
            str(alice_home / "back"),
        )
        assert res.returncode == 0 and "restored" in res.stdout, res.stderr
        got = next((alice_home / "back").glob("cairn-restore-*"))
        copy = got / str(alice_home).lstrip("/") / "Documents" / "sub" / "data.bin"
        assert copy.read_bytes() == (alice_home / "Documents" / "sub" / "data.bin").read_bytes()
        assert copy.stat().st_uid == uid[alice]

        # Refused: bob's file, root's file, a target she does not own, a
        # target through a symbolic link, a path with '..'.
        os.symlink(bob_home, alice_home / "to-bob")
        refusals = [
            (["restore", "latest", str(bob_home / "secret.txt")], "is not yours"),
            (["restore", "latest", str(base / "rootdata" / "key.txt")], "is not yours"),
            (
                ["restore", "latest", f"{alice_home}/Documents", "--target", str(bob_home)],
                "not a folder you own",
            ),
            (
                ["restore", "latest", f"{alice_home}/Documents", "--target", str(base / "run")],
                "not a folder you own",
            ),
            (
                [
                    "restore",
                    "latest",
                    f"{alice_home}/Documents",
                    "--target",
                    str(alice_home / "to-bob"),
                ],
                "symbolic link",
            ),
            (["restore", "latest", f"{alice_home}/../bob/secret.txt"], "'..'"),
            (["restore", "latest", f"{alice_home}/not-there.txt"], "is not in snapshot"),
        ]
        for args, why in refusals:
            res = _as_user(alice, alice_home, sock, "files", *args)
            assert res.returncode == 1 and why in res.stderr, (args, res.stderr)
        assert _tree(base / "home" / "bob") | _tree(base / "rootdata") == others_before
        assert not list(base.glob("cairn-restore-*")) and not list((base / "run").glob("c*"))
        assert len(list(alice_home.glob("cairn-restore-*"))) == 1  # refusals leave nothing

        # root (the admin at the PC) may see everything.
        res = subprocess.run(
            [sys.executable, "-m", "agent", "files", "ls", "latest", str(base / "rootdata")],
            env={**os.environ, "CAIRN_AGENT_SOCKET": str(sock)},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert res.returncode == 0 and "key.txt" in res.stdout, res.stderr

        # The web page: a one-time link from the socket, then a session cookie.
        res = _as_user(alice, alice_home, sock, "files", "web", "--json")
        assert res.returncode == 0, res.stderr
        url = urllib.parse.urlsplit(json.loads(res.stdout)["url"])
        assert url.hostname == "127.0.0.1"
        port = url.port
        assert _http(port, "GET", "/")[0] == 403
        assert _http(port, "GET", f"/login?{url.query}", host=f"evil.example:{port}")[0] == 403
        status, headers, _ = _http(port, "GET", f"/login?{url.query}")
        assert status == 303
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        assert _http(port, "GET", f"/login?{url.query}")[0] == 403  # used once
        status, _, page = _http(port, "GET", "/", cookie=cookie)
        assert status == 200 and short in page and str(bob_home) not in page
        q = urllib.parse.urlencode({"snapshot": snap.id, "path": f"{alice_home}/Documents"})
        status, _, page = _http(port, "GET", f"/browse?{q}", cookie=cookie)
        assert status == 200 and "report.txt" in page and "<script" not in page
        q = urllib.parse.urlencode({"snapshot": snap.id, "path": str(bob_home)})
        assert _http(port, "GET", f"/browse?{q}", cookie=cookie)[0] == 403
        csrf = re.search(r"name='csrf' value='([^']+)'", page) or re.search(
            r"name='csrf' value='([^']+)'",
            _http(
                port,
                "GET",
                "/browse?"
                + urllib.parse.urlencode({"snapshot": snap.id, "path": f"{alice_home}/Documents"}),
                cookie=cookie,
            )[2],
        )
        form = {"snapshot": snap.id, "path": f"{alice_home}/Documents/report.txt"}
        body = urllib.parse.urlencode(form)
        assert _http(port, "POST", "/restore", cookie=cookie, body=body)[0] == 403  # no CSRF
        assert _http(port, "POST", "/restore", body=body + "&csrf=" + csrf.group(1))[0] == 403
        bob_form = urllib.parse.urlencode(
            {"snapshot": snap.id, "path": str(bob_home / "secret.txt"), "csrf": csrf.group(1)}
        )
        assert _http(port, "POST", "/restore", cookie=cookie, body=bob_form)[0] == 403
        status, _, page = _http(
            port, "POST", "/restore", cookie=cookie, body=body + "&csrf=" + csrf.group(1)
        )
        assert status == 200 and "restored to" in page, page
        web_copy = Path(re.search(r"restored to <code>([^<]+)</code>", page).group(1))
        assert web_copy.read_text() == "alice's report\n" * 100
        assert web_copy.stat().st_uid == uid[alice]
        assert _tree(base / "home" / "bob") | _tree(base / "rootdata") == others_before

        # Offline: the restores wait in the outbox; nothing at the console yet.
        wait_for(
            lambda: len(_self_restores(home_dir)) == 11,
            15,
            "the self-service reports in the outbox",
        )
        assert not AuditEvent.objects.filter(action="device.self_restore").exists()
    finally:
        agent.stop()
    outbox = _self_restores(home_dir)
    assert {r.os_user for r in outbox} <= {alice, "root"}
    assert sorted(r.state for r in outbox) == ["refused"] * 8 + ["succeeded"] * 3

    # Reconnected: the console's audit log shows who restored what.
    agent = Agent(home_dir, tmp_path / "agent2.log", env).start()
    try:
        wait_for(
            lambda: AuditEvent.objects.filter(action="device.self_restore").count() == 11,
            60,
            "the self-service restores in the audit log",
        )
        wait_for(lambda: not _self_restores(home_dir), 30, "the outbox to empty")
    finally:
        agent.stop()
    events = AuditEvent.objects.filter(action="device.self_restore", target_id=device_id)
    assert events.count() == 11
    ok = events.filter(after__state="succeeded")
    assert ok.count() == 3
    assert {e.actor_name for e in events} == {f"{alice} (on the PC)"}
    assert all(e.after["uid"] == uid[alice] for e in events)
    assert {p for e in ok for p in e.after["paths"]} == {
        f"{alice_home}/Documents/report.txt",
        f"{alice_home}/Documents",
    }
    refused = events.filter(after__state="refused")
    assert any(str(bob_home / "secret.txt") in e.after["paths"] for e in refused)


def _self_restores(home_dir: Path) -> list:
    state = State(home_dir / "state.sqlite3")
    try:
        out = []
        for _key, payload in state.outbox_pending():
            r = pb.Report.FromString(payload)
            if r.WhichOneof("body") == "self_restore":
                out.append(r.self_restore)
        return out
    finally:
        state.close()
