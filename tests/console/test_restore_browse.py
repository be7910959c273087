"""Restore without the device (issue 11): a real backup to moto S3 by the
engine, the device revoked, then its files browsed, compared, searched and
downloaded through the API (a file, a byte range, a folder as a zip) and
compared byte for byte with the source; hostile names are refused; an Auditor
is refused; each download is audited."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from agent.engine.backup import run_backup
from agent.engine.repository import Repository
from agent.engine.snapshot import Snapshot, utcnow_iso
from agent.engine.tree import encode_name
from console.audit.models import AuditEvent
from console.audit.services import SYSTEM
from console.core.keys import org_key
from console.fleet import services as fleet
from console.restore import services
from console.storage import targets
from console.storage.targets import bootstrap_repository
from tests.agent.engine.test_restore_safety import store_tree


@pytest.fixture
def s3_settings(settings, s3_server, s3_bucket, tmp_path):
    settings.S3_ENDPOINT = s3_server.endpoint
    settings.S3_BUCKET = s3_bucket
    settings.S3_ACCESS_KEY = s3_server.access_key
    settings.S3_SECRET_KEY = s3_server.secret_key
    settings.CAIRN_ORG = "acme"
    settings.ORG_KEY_FILE = tmp_path / "keys" / "org.key"
    settings.VAR_DIR = tmp_path / "var"
    services.forget_cached()
    yield settings
    services.forget_cached()


def _device(hostname):
    group = fleet.create_group(SYSTEM, f"G {hostname}")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=5)
    dev = fleet.enroll_device(token, hostname=hostname, os="linux")
    bootstrap_repository(targets.target(), str(dev.pk), os.urandom(32))
    return dev


def _repo(dev) -> Repository:
    return Repository.open(targets.admin_store(targets.target(), str(dev.pk)), key=org_key())


def _files(src) -> dict[str, bytes]:
    """relative path -> bytes of every file under src"""
    return {str(p.relative_to(src)): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}


@pytest.fixture
def backed_up(db, s3_settings, tmp_path):
    """A device with two real snapshots of a folder, then revoked."""
    dev = _device("laptop-a")
    src = tmp_path / "home" / "ana"
    (src / "Documents" / "taxes").mkdir(parents=True)
    (src / "Documents" / "report.docx").write_bytes(os.urandom(300_000))
    (src / "Documents" / "taxes" / "2025.pdf").write_bytes(os.urandom(50_000))
    (src / "big.bin").write_bytes(os.urandom(6 * 1024 * 1024 + 123))  # several chunks
    (src / "empty.txt").write_bytes(b"")
    (src / "notes ü.txt").write_bytes(b"caf\xc3\xa9\n")
    first = run_backup(_repo(dev), [str(src)], hostname=dev.hostname, workers=2).snapshot_id
    (src / "Documents" / "report.docx").write_bytes(os.urandom(1000))
    (src / "Documents" / "new.txt").write_bytes(b"new\n")
    (src / "empty.txt").unlink()
    second = run_backup(_repo(dev), [str(src)], hostname=dev.hostname, workers=2).snapshot_id
    fleet.revoke_device(SYSTEM, dev, "stolen")
    dev.refresh_from_db()
    assert dev.revoked
    return dev, src, first, second


def _url(dev, snap, what, **params):
    from urllib.parse import urlencode

    return f"/api/v1/devices/{dev.pk}/snapshots/{snap}/{what}/?{urlencode(params)}"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_browse_a_revoked_device_folder_by_folder_with_paging(backed_up, api):
    dev, src, first, second = backed_up
    client = api("operator")
    r = client.get(_url(dev, "latest", "tree", path=str(src)))
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["snapshot"] == second and body["path"] == str(src)
    names = [e["name"] for e in body["entries"]]
    assert names == ["Documents", "big.bin", "notes ü.txt"]  # folders first
    docs = body["entries"][0]
    assert docs["type"] == "dir" and docs["children"] == 3
    big = body["entries"][1]
    assert big["type"] == "file" and big["size"] == 6 * 1024 * 1024 + 123
    assert big["mtime"].startswith("20")
    # paging: a cursor walks the folder, one entry a page
    seen, cursor = [], None
    while True:
        params = {"path": str(src), "limit": 1} | ({"cursor": cursor} if cursor else {})
        page = client.get(_url(dev, second[:10], "tree", **params)).json()
        seen += [e["name"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names
    # the older snapshot by unique prefix still has the file deleted since
    old = client.get(_url(dev, first[:8], "tree", path=str(src))).json()
    assert "empty.txt" in [e["name"] for e in old["entries"]]
    # bad input gets a clear error
    assert client.get(_url(dev, "latest", "tree", path="relative")).status_code == 400
    assert client.get(_url(dev, "latest", "tree", path="/a/../b")).status_code == 400
    assert client.get(_url(dev, "latest", "tree", path=str(src) + "/nope")).status_code == 404
    assert client.get(_url(dev, "latest", "tree", path=str(src), cursor="xx")).status_code == 400
    assert client.get(_url(dev, "zz", "tree", path="/")).status_code == 404
    assert client.get(_url(dev, "ffffffff", "tree", path="/")).status_code == 404
    assert client.get(_url(dev, "latest", "tree", path=str(src / "big.bin"))).status_code == 400
    # a device whose repository was never made has nothing to browse
    group = fleet.create_group(SYSTEM, "No repo")
    _, token = fleet.create_enrollment_token(SYSTEM, "t", group, max_uses=1)
    bare = fleet.enroll_device(token, hostname="never-backed-up", os="linux")
    r = client.get(_url(bare, "latest", "tree", path="/"))
    assert r.status_code == 404 and r.json()["detail"] == "This device has no backups in storage."
    # the on-disk cache: owner-only, and ciphertext (no file name in it)
    cache = services.cache_dir()
    kept = list(cache.rglob("*"))
    assert any(p.is_file() for p in kept)
    for p in [cache, *kept]:
        assert p.stat().st_mode & 0o077 == 0, p
        if p.is_file():
            assert b"notes" not in p.read_bytes() and b"big.bin" not in p.read_bytes()


def test_compare_two_snapshots_of_a_folder(backed_up, api):
    dev, src, first, second = backed_up
    r = api("admin").get(_url(dev, first, "compare", path=str(src), **{"with": second}))
    assert r.status_code == 200, r.content
    body = r.json()
    assert [d["path"] for d in body["added"]] == [f"{src}/Documents/new.txt"]
    assert [d["path"] for d in body["changed"]] == [f"{src}/Documents/report.docx"]
    assert [d["path"] for d in body["removed"]] == [f"{src}/empty.txt"]
    assert body["truncated"] is False


def test_download_a_file_a_range_and_a_folder_zip_byte_identical(backed_up, api):
    dev, src, first, second = backed_up
    client = api("operator")
    big = (src / "big.bin").read_bytes()
    r = client.get(_url(dev, "latest", "download", path=str(src / "big.bin")))
    assert r.status_code == 200 and r["Content-Length"] == str(len(big))
    assert r["Accept-Ranges"] == "bytes" and "big.bin" in r["Content-Disposition"]
    assert _body(r) == big
    # resume: a range across chunk boundaries, and an open-ended one
    start = 2 * 1024 * 1024 - 10
    r = client.get(
        _url(dev, "latest", "download", path=str(src / "big.bin")),
        HTTP_RANGE=f"bytes={start}-{start + 4 * 1024 * 1024}",
    )
    assert r.status_code == 206
    assert r["Content-Range"] == f"bytes {start}-{start + 4 * 1024 * 1024}/{len(big)}"
    assert _body(r) == big[start : start + 4 * 1024 * 1024 + 1]
    r = client.get(
        _url(dev, "latest", "download", path=str(src / "big.bin")), HTTP_RANGE="bytes=6291000-"
    )
    assert r.status_code == 206 and _body(r) == big[6291000:]
    r = client.get(
        _url(dev, "latest", "download", path=str(src / "big.bin")),
        HTTP_RANGE=f"bytes={len(big)}-",
    )
    assert r.status_code == 416 and r["Content-Range"] == f"bytes */{len(big)}"
    # a folder: a streamed zip whose files are the source's, byte for byte
    r = client.get(_url(dev, "latest", "download", path=str(src)))
    assert r.status_code == 200 and r["Content-Type"] == "application/zip"
    assert r.streaming
    with zipfile.ZipFile(io.BytesIO(_body(r))) as zf:
        assert zf.testzip() is None
        got = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    assert got == _files(src)
    # the older snapshot's zip has the deleted empty file and the old report
    r = client.get(_url(dev, first, "download", path=str(src / "Documents")))
    with zipfile.ZipFile(io.BytesIO(_body(r))) as zf:
        assert len(zf.read("report.docx")) == 300_000
    # audited with what was downloaded
    events = AuditEvent.objects.filter(action="device.download", target_id=str(dev.pk))
    kinds = sorted((e.after["kind"], e.after["path"]) for e in events)
    assert ("zip", str(src)) in kinds and ("file", str(src / "big.bin")) in kinds
    zip_event = next(e for e in events if e.after["path"] == str(src))
    assert zip_event.after["bytes"] == sum(map(len, _files(src).values()))
    assert zip_event.after["files"] == len(_files(src))
    assert zip_event.actor_name == "operator" and zip_event.via == "api"


def test_search_by_substring_and_glob_on_a_device_and_the_fleet(backed_up, api, tmp_path):
    dev, src, first, second = backed_up
    client = api("operator")
    r = client.get("/api/v1/files/search/", {"q": "REPORT", "device": str(dev.pk)})
    assert r.status_code == 200, r.content
    versions = r.json()["versions"]
    # two versions of report.docx (changed between the snapshots), newest first
    assert [(v["snapshot"], v["size"]) for v in versions] == [(second, 1000), (first, 300_000)]
    assert versions[0]["path"] == f"{src}/Documents/report.docx"
    r = client.get("/api/v1/files/search/", {"q": "*.pdf", "device": str(dev.pk)})
    assert [v["path"] for v in r.json()["versions"]] == [f"{src}/Documents/taxes/2025.pdf"]
    # across the fleet: an Admin only
    other = _device("laptop-b")
    osrc = tmp_path / "other"
    osrc.mkdir()
    (osrc / "report-b.txt").write_bytes(b"b")
    run_backup(_repo(other), [str(osrc)], hostname="laptop-b")
    assert client.get("/api/v1/files/search/", {"q": "report"}).status_code == 403
    r = api("admin").get("/api/v1/files/search/", {"q": "report*"})
    hosts = sorted({v["hostname"] for v in r.json()["versions"]})
    assert hosts == ["laptop-a", "laptop-b"]
    # bounded
    r = api("admin").get("/api/v1/files/search/", {"q": "*", "limit": 2})
    assert len(r.json()["versions"]) == 2 and r.json()["truncated"] is True
    assert (
        client.get("/api/v1/files/search/", {"q": "a/b", "device": str(dev.pk)}).status_code == 400
    )


def test_an_auditor_may_not_browse_search_or_download(backed_up, api):
    dev, src, first, second = backed_up
    client = api("auditor")
    assert client.get(_url(dev, "latest", "tree", path="/")).status_code == 403
    assert client.get(_url(dev, "latest", "download", path=str(src))).status_code == 403
    assert client.get("/api/v1/files/search/", {"q": "x", "device": str(dev.pk)}).status_code == 403
    assert not AuditEvent.objects.filter(action="device.download").exists()


def _entry(name: bytes, kind: str, **fields) -> dict:
    node = {"type": kind, "mode": 0o644 if kind == "file" else 0o755, **fields}
    encode_name(name, node)
    return node


def test_hostile_names_are_skipped_and_reported_in_browse_and_zip(db, s3_settings, tmp_path, api):
    dev = _device("compromised")
    repo = _repo(dev)
    src = tmp_path / "s"
    src.mkdir()
    (src / "good.txt").write_bytes(b"honest\n")
    run_backup(repo, [str(src)])
    good = next(n for _, n in repo.walk(repo.find_snapshot("latest").tree) if n.type == "file")
    content = {"size": good.size, "content": [c.hex() for c in good.content]}
    inner = store_tree(repo, [_entry(b"x", "file", **content)])
    root = [
        _entry(b"..", "dir", subtree=inner),
        _entry(b"../../etc/passwd", "file", **content),
        _entry(b"a\x00b", "file", **content),
        _entry(b"good.txt", "file", **content),
    ]
    snap = Snapshot(tree=store_tree(repo, root), paths=["/"], hostname="x", time=utcnow_iso())
    repo.save_snapshot(snap)
    services.forget_cached()
    client = api("admin")
    body = client.get(_url(dev, snap.id, "tree", path="/")).json()
    assert [e["name"] for e in body["entries"]] == ["good.txt"]
    assert len(body["skipped"]) == 3 and any("etc" in s for s in body["skipped"])
    assert client.get(_url(dev, snap.id, "tree", path="/..")).status_code == 400
    r = client.get(_url(dev, snap.id, "download", path="/"))
    with zipfile.ZipFile(io.BytesIO(_body(r))) as zf:
        names = zf.namelist()
        assert names == ["good.txt", "CAIRN-SKIPPED.txt"]
        assert zf.read("good.txt") == b"honest\n"
        assert "passwd" in zf.read("CAIRN-SKIPPED.txt").decode()
    assert all(".." not in n.split("/") and not n.startswith("/") for n in names)
