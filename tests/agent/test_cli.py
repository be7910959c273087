"""The CLI as real subprocesses: the admin's commands, errors, exit codes,
permissions as an unprivileged user, SIGKILL mid-backup, and S3."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.agent.conftest import FAST_KDF, PASSPHRASE, cli_env, make_repo, run_cli
from tests.agent.helpers import read, restored, snapshot_of_disk


def sample(root):
    (root / "Documents").mkdir(parents=True)
    (root / "Documents" / "report.txt").write_bytes(b"quarterly numbers\n" * 500)
    (root / "Documents" / "photo.jpg").write_bytes(os.urandom(120_000))
    with open(os.path.join(os.fsencode(root), b"caf\xe9\nname"), "wb") as f:
        f.write(b"latin-1 name with a newline")
    os.symlink("Documents/report.txt", root / "shortcut")


def test_cli_full_flow(tmp_path):
    repo, src, out = tmp_path / "repo", tmp_path / "home" / "ana", tmp_path / "restore"
    sample(src)
    init = run_cli("init", "--repo", repo, "--json", check=0)
    assert len(json.loads(init.stdout)["repository_id"]) == 64

    b1 = json.loads(run_cli("backup", "--repo", repo, "--json", "--tag", "t1", src, check=0).stdout)
    for key in ("snapshot_id", "files_new", "files_changed", "files_unchanged", "bytes_read"):
        assert key in b1
    assert b1["files_new"] == 3 and b1["bytes_added"] > 0 and b1["duration"] >= 0
    b2 = json.loads(run_cli("backup", "--repo", repo, "--json", src, check=0).stdout)
    assert b2["parent"] == b1["snapshot_id"]

    snaps = json.loads(run_cli("snapshots", "--repo", repo, "--json", check=0).stdout)
    assert [s["id"] for s in snaps] == [b1["snapshot_id"], b2["snapshot_id"]]
    assert snaps[0]["tags"] == ["t1"] and snaps[0]["paths"] == [str(src)]
    text = run_cli("snapshots", "--repo", repo, check=0).stdout.decode()
    assert b1["snapshot_id"][:8] in text

    listing = json.loads(
        run_cli("ls", "--repo", repo, "--json", b1["snapshot_id"][:8], src, check=0).stdout
    )
    paths = {n["path"] for n in listing["nodes"]}
    assert f"{src}/Documents/report.txt" in paths
    odd = [n for n in listing["nodes"] if "path_b64" in n]
    assert len(odd) == 1
    import base64

    assert base64.b64decode(odd[0]["path_b64"]).endswith(b"caf\xe9\nname")
    plain = run_cli("ls", "--repo", repo, "latest", check=0).stdout.decode()
    assert "caf\\xe9\\nname" in plain  # one entry, one line
    long = run_cli("ls", "--repo", repo, "-l", "latest", f"{src}/shortcut", check=0).stdout
    assert b"-> Documents/report.txt" in long

    res = json.loads(
        run_cli("restore", "--repo", repo, "latest", "--target", out, "--json", check=0).stdout
    )
    assert res["errors"] == [] and res["stats"]["files"] == 3
    assert snapshot_of_disk(restored(out, src)) == snapshot_of_disk(src)
    # restoring again does not overwrite: warnings, exit 0
    again = run_cli("restore", "--repo", repo, "latest", "--target", out, check=0)
    assert b"not overwritten" in again.stderr

    only = tmp_path / "only"
    run_cli("restore", "--repo", repo, "latest", "--target", only, "--include", "*.txt", check=0)
    assert os.listdir(restored(only, src / "Documents")) == [b"report.txt"]

    chk = json.loads(run_cli("check", "--repo", repo, "--read-data", "--json", check=0).stdout)
    assert chk["ok"] and chk["snapshots"] == 2


def test_cli_quiet_without_terminal(tmp_path):
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    run_cli("init", "--repo", repo, check=0)
    proc = run_cli("backup", "--repo", repo, src, check=0)
    assert proc.stderr == b""  # no progress bar, no noise
    assert proc.stdout.startswith(b"snapshot ")


def test_cli_errors_are_one_line(tmp_path):
    repo = tmp_path / "repo"
    make_repo(repo)

    def one_line(proc, fragment):
        err = proc.stderr.decode()
        assert proc.returncode == 1, err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert fragment in err, err

    one_line(
        run_cli("snapshots", "--repo", repo, env=cli_env(CAIRN_PASSWORD="wrong")),
        "wrong passphrase",
    )
    one_line(run_cli("snapshots", "--repo", tmp_path / "nothing"), "no Cairn repository")
    one_line(run_cli("init", "--repo", repo), "already exists")
    one_line(run_cli("ls", "--repo", repo, "latest"), "no snapshots")
    one_line(run_cli("ls", "--repo", repo, "abcdef12"), "no snapshot matches")
    env = cli_env()
    del env["CAIRN_PASSWORD"]
    one_line(run_cli("snapshots", "--repo", repo, env=env, stdin=subprocess.DEVNULL), "no key")
    # unknown format version
    config = json.loads((repo / "config").read_bytes())
    (repo / "config").write_text(json.dumps({**config, "version": 7}))
    one_line(run_cli("snapshots", "--repo", repo), "version 7 is not supported")
    debug = run_cli("snapshots", "--repo", repo, "--debug")
    assert b"Traceback" in debug.stderr and debug.returncode == 1
    assert run_cli("frobnicate").returncode == 2


def test_cli_ambiguous_prefix_and_latest(tmp_path):
    from agent.engine.backup import run_backup

    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    api_repo = make_repo(repo)  # snapshots through the API: fast; the CLI resolves them
    ids = []
    for i in range(12):
        (src / "f").write_bytes(b"%d" % i)
        ids.append(run_backup(api_repo, [str(src)]).snapshot_id)
    first_chars = [i[0] for i in ids]
    dup = next((c for c in first_chars if first_chars.count(c) > 1), None)
    if dup:
        proc = run_cli("ls", "--repo", repo, dup)
        assert proc.returncode == 1 and b"ambiguous" in proc.stderr
    listing = json.loads(run_cli("ls", "--repo", repo, "--json", "latest", check=0).stdout)
    assert listing["snapshot"]["id"] == ids[-1]
    unique = ids[0][:12]
    listing = json.loads(run_cli("ls", "--repo", repo, "--json", unique, check=0).stdout)
    assert listing["snapshot"]["id"] == ids[0]


def test_cli_org_key_file_and_password_file(tmp_path):
    key = os.urandom(32)
    keyfile = tmp_path / "org.key"
    keyfile.write_text(key.hex() + "\n")
    pwfile = tmp_path / "pw"
    pwfile.write_text("from a file\n")
    repo = tmp_path / "repo"
    env = cli_env(CAIRN_KEY_FILE=str(keyfile), CAIRN_PASSWORD_FILE=str(pwfile))
    del env["CAIRN_PASSWORD"]
    run_cli("init", "--repo", repo, env=env, check=0)
    only_key = cli_env(CAIRN_KEY_FILE=str(keyfile))
    del only_key["CAIRN_PASSWORD"]
    run_cli("snapshots", "--repo", repo, env=only_key, check=0)
    only_pw = cli_env(CAIRN_PASSWORD_FILE=str(pwfile))
    del only_pw["CAIRN_PASSWORD"]
    run_cli("snapshots", "--repo", repo, env=only_pw, check=0)
    keyfile.write_bytes(os.urandom(32))
    proc = run_cli("snapshots", "--repo", repo, env=only_key)
    assert proc.returncode == 1 and b"wrong organisation key" in proc.stderr


def _without_dac_override() -> list[str]:
    """Command prefix under which file permissions apply to this user: root
    normally bypasses them, so drop CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH
    (setpriv, util-linux) for the child process."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop DAC override")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_cli_permission_denied_files_and_dirs(tmp_path):
    prefix = _without_dac_override()
    src = tmp_path / "src"
    (src / "closed").mkdir(parents=True)
    (src / "open.txt").write_text("open")
    (src / "secret.txt").write_text("secret")
    (src / "closed" / "inside").write_text("x")
    os.chmod(src / "secret.txt", 0o000)
    os.chmod(src / "closed", 0o000)
    repo = tmp_path / "repo"
    try:
        run_cli("init", "--repo", repo, check=0)
        run = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-m",
                "agent",
                "backup",
                "--repo",
                str(repo),
                "--json",
                str(src),
            ],
            env=cli_env(),
            capture_output=True,
            timeout=60,
        )
    finally:
        os.chmod(src / "closed", 0o755)
        os.chmod(src / "secret.txt", 0o644)
    assert run.returncode == 3, run.stderr  # saved, with warnings
    doc = json.loads(run.stdout)
    kinds = {(w["kind"], os.path.basename(w["path"])) for w in doc["warnings"]}
    assert kinds == {("permission-denied", "secret.txt"), ("unreadable-dir", "closed")}
    assert doc["files_new"] == 1
    listing = json.loads(run_cli("ls", "--repo", repo, "--json", "latest", check=0).stdout)
    names = {os.path.basename(n["path"]) for n in listing["nodes"]}
    assert "open.txt" in names and "closed" in names and "secret.txt" not in names


def test_sigkill_during_backup_leaves_repository_usable(tmp_path):
    repo_path = tmp_path / "repo"
    # 1 MiB packs: many packs and intermediate index objects to interrupt
    from agent.engine.chunker import ChunkerParams

    make_repo(
        repo_path,
        chunker=ChunkerParams(64 * 1024, 256 * 1024, 1024 * 1024, seed=11),
        pack_size=1024 * 1024,
        kdf=FAST_KDF,
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "first.txt").write_bytes(b"the first snapshot\n")
    first = json.loads(run_cli("backup", "--repo", repo_path, "--json", src, check=0).stdout)
    for i in range(4):
        (src / f"big{i}.bin").write_bytes(os.urandom(24 * 1024 * 1024))
    for i in range(500):
        (src / f"small{i}.txt").write_bytes(b"%d\n" % i * 50)

    def stored(prefix):
        return sum(len(files) for _, _, files in os.walk(repo_path / prefix))

    # Kill at different moments: while starting, after a few packs, and after
    # an intermediate index object (written every 64 packs) but before the end.
    kills = [("start", 0), ("packs", 5), ("index", 70)]
    for _what, packs in kills:
        before = stored("data")
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "backup", "--repo", str(repo_path), str(src)],
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while stored("data") - before < packs and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert proc.poll() is None, "backup finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert stored("snapshots") == 1
    assert stored("index") >= 2  # an index object of a killed run survived
    chk = run_cli("check", "--repo", repo_path, "--read-data", "--json")
    assert chk.returncode == 0, chk.stdout + chk.stderr
    final = json.loads(run_cli("backup", "--repo", repo_path, "--json", src, check=0).stdout)
    assert final["stats"]["total_files"] == 505
    assert final["stats"]["bytes_added"] < 90 * 1024 * 1024  # reused what killed runs stored
    out = tmp_path / "out"
    run_cli("restore", "--repo", repo_path, first["snapshot_id"], "--target", out, check=0)
    assert read(restored(out, src / "first.txt")) == b"the first snapshot\n"
    out2 = tmp_path / "out2"
    run_cli("restore", "--repo", repo_path, "latest", "--target", out2, check=0)
    assert snapshot_of_disk(restored(out2, src)) == snapshot_of_disk(src)
    run_cli("check", "--repo", repo_path, "--read-data", check=0)


def test_cli_s3_repository(tmp_path, s3_server, s3_bucket):
    env = cli_env(
        CAIRN_S3_ENDPOINT=s3_server.endpoint,
        AWS_ACCESS_KEY_ID=s3_server.access_key,
        AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
        CAIRN_CACHE_DIR=str(tmp_path / "cache"),
    )
    url = f"s3://{s3_bucket}/org-1/device-1"
    src, out = tmp_path / "home", tmp_path / "out"
    sample(src)
    (src / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    run_cli("init", "--repo", url, env=env, check=0)
    b1 = json.loads(run_cli("backup", "--repo", url, "--json", src, env=env, check=0).stdout)
    b2 = json.loads(run_cli("backup", "--repo", url, "--json", src, env=env, check=0).stdout)
    assert b2["bytes_added"] < 10_000 and b2["parent"] == b1["snapshot_id"]
    assert list((tmp_path / "cache").rglob("index/*"))  # remote index kept locally
    run_cli("restore", "--repo", url, "latest", "--target", out, env=env, check=0)
    assert snapshot_of_disk(restored(out, src)) == snapshot_of_disk(src)
    chk = json.loads(run_cli("check", "--repo", url, "--read-data", "--json", env=env).stdout)
    assert chk["ok"], chk
    keys = [o.object_name for o in s3_server.client().list_objects(s3_bucket, recursive=True)]
    assert all(k.startswith("org-1/device-1/") for k in keys)
    assert "org-1/device-1/config" in keys
    bad = run_cli("snapshots", "--repo", "s3://no-such-bucket-here/x", env=env)
    assert bad.returncode == 1 and b"Traceback" not in bad.stderr
    assert bad.stderr.count(b"\n") == 1


def test_passphrase_constant_is_used():
    assert PASSPHRASE  # the CLI env and the API fixtures share one passphrase
