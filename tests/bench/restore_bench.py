"""Restore-without-the-device benchmark (issue 11): ``python -m tests.bench.restore_bench``.

1. **Browse.** A repository whose snapshot holds 200,000 files (200 folders
   of 1,000) is written synthetically with the engine's pack writer (a real
   backup of 200,000 files is too slow here; the trees are the ones a backup
   writes: zstd-compressed, encrypted, in tree packs). It times the console's
   path (console/restore/services.py ``folder_page``): open the repository,
   resolve ``latest``, list the first page of ``/`` and of a 1,000-file
   folder, three times: cold (empty cache), in a new process with the on-disk
   cache warm ("second open"), and with the repository already open.
2. **Download.** A folder of ``--gib`` GiB (5 files; random data, each file
   its 128 MiB block repeated, so the repository stays small) is backed up
   with the engine and with restic; then a separate serving process (a WSGI
   server streaming ``prepare_download``'s zip through Django's
   StreamingHttpResponse) sends the folder as a zip to an HTTP client that
   counts the bytes, and its peak RSS (VmHWM) is read; ``restic dump`` of the
   same folder (a tar to a pipe) is timed next to it.

Storage is a local directory (no network in either measure). Needs restic
(``make bench-tools``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("CAIRN_VAR_DIR", tempfile.mkdtemp(prefix="cairn-restore-bench-var-"))

import django  # noqa: E402

django.setup()

from agent.engine import compress  # noqa: E402
from agent.engine.backup import run_backup  # noqa: E402
from agent.engine.pack import TREE, PackWriter, pack_key  # noqa: E402
from agent.engine.repository import Repository  # noqa: E402
from agent.engine.snapshot import Snapshot, utcnow_iso  # noqa: E402
from agent.engine.store import open_store  # noqa: E402
from agent.engine.tree import encode_name, encode_tree  # noqa: E402

KEY = bytes(range(32))


class TreeWriter:
    """Trees into tree packs, as the backup writes them."""

    def __init__(self, repo: Repository):
        self.repo = repo
        self.done = []
        self.writer = PackWriter(repo.cipher, 4 * 1024 * 1024, 8 * 1024 * 1024, self.done.append, 1)
        self.compressor = compress.thread_compressor()
        self.packs = {}

    def tree(self, nodes: list[dict]) -> str:
        data = encode_tree(nodes)
        blob_id = self.repo.blob_id(data)
        method, payload = self.compressor.compress(data)
        self.writer.add(blob_id, TREE, method, len(data), payload)
        self._drain()
        return blob_id.hex()

    def _drain(self):
        while self.done:
            pack = self.done.pop()
            self.repo.store.put(pack_key(pack.id), bytes(pack.data))
            self.repo.index.add_pack(pack.id, pack.entries)
            self.packs[pack.id] = pack.entries
            pack.release()

    def finish(self):
        self.writer.flush()
        self._drain()
        self.repo.save_index(self.packs)


def node(name: str, kind: str, **fields) -> dict:
    out = {"type": kind, "mode": 0o644 if kind == "file" else 0o755, **fields}
    encode_name(name.encode(), out)
    return out


def build_tree_repo(root: Path, folders: int, per_folder: int) -> Path:
    repo_dir = root / "tree-repo"
    repo = Repository.init(open_store(repo_dir.as_uri()), org_key=KEY)
    src = root / "one"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(4096))
    run_backup(repo, [str(src)])
    repo = Repository.open(open_store(repo_dir.as_uri()), key=KEY)
    content = next(n for _, n in repo.walk(repo.find_snapshot("latest").tree) if n.type == "file")
    w = TreeWriter(repo)
    dirs = []
    t = time.time_ns()
    for d in range(folders):
        files = [
            node(
                f"document-{d:03d}-{i:04d}.docx",
                "file",
                size=4096 + i,
                mtime_ns=t - i * 10**9,
                content=[c.hex() for c in content.content],
            )
            for i in range(per_folder)
        ]
        dirs.append(node(f"folder-{d:03d}", "dir", subtree=w.tree(files), mtime_ns=t))
    home = w.tree(dirs)
    users = w.tree([node("ana", "dir", subtree=home, mtime_ns=t)])
    root_tree = w.tree([node("home", "dir", subtree=users, mtime_ns=t)])
    w.finish()
    Repository.open(open_store(repo_dir.as_uri()), key=KEY).save_snapshot(
        Snapshot(tree=root_tree, paths=["/home/ana"], hostname="bench", time=utcnow_iso())
    )
    return repo_dir


BROWSE_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from tests.bench.restore_bench import open_and_list
print(json.dumps(open_and_list(sys.argv[1], sys.argv[2])))
"""


def open_and_list(repo_dir: str, cache: str) -> dict:
    from console.restore import services

    t0 = time.perf_counter()
    repo = services.open_cached(open_store(Path(repo_dir).as_uri()), KEY, Path(cache))
    t_open = time.perf_counter()
    top = services.folder_page(repo, "latest", "/home/ana")
    t_top = time.perf_counter()
    folder = services.folder_page(
        repo, "latest", f"/home/ana/{top.entries[len(top.entries) // 2]['name']}"
    )
    t_folder = time.perf_counter()
    again = services.folder_page(repo, "latest", f"/home/ana/{top.entries[-1]['name']}")
    t_again = time.perf_counter()
    assert top.total > 0 and folder.total > 0 and again.entries
    return {
        "open_s": round(t_open - t0, 3),
        "first_screen_s": round(t_top - t0, 3),
        "folder_s": round(t_folder - t_top, 3),
        "open_repo_next_folder_s": round(t_again - t_folder, 3),
        "entries_top": top.total,
        "entries_folder": folder.total,
    }


def bench_browse(root: Path, folders: int, per_folder: int) -> dict:
    t0 = time.perf_counter()
    repo_dir = build_tree_repo(root, folders, per_folder)
    built = time.perf_counter() - t0
    cache = root / "cache"
    out = {"files": folders * per_folder, "build_s": round(built, 1)}
    for label in ("first_open", "second_open"):
        r = subprocess.run(
            [sys.executable, "-c", BROWSE_CHILD, str(repo_dir), str(cache)],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise SystemExit(r.stderr)
        out[label] = json.loads(r.stdout.strip().splitlines()[-1])
    cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    tree_packs = sum(p.stat().st_size for p in (cache.rglob("trees/*")) if p.is_file())
    modes = {oct(p.stat().st_mode & 0o777) for p in cache.rglob("*")}
    out.update(cache_bytes=cache_bytes, cache_tree_pack_bytes=tree_packs, cache_modes=sorted(modes))
    return out


# --- download ---------------------------------------------------------------------------
SERVE_CHILD = """
import sys
from tests.bench.restore_bench import serve
serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
"""


def serve(repo_dir: str, port: int, path: str) -> None:
    """A WSGI server streaming the folder's zip through Django's response."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from console.restore import services
    from console.restore.responses import streaming_response

    repo = Repository.open(open_store(Path(repo_dir).as_uri()), key=KEY)

    def app(environ, start_response):
        response = streaming_response(services.prepare_download(repo, "latest", path))
        start_response("200 OK", list(response.items()))
        return response.streaming_content

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", port, app, handler_class=Quiet)
    print("ready", flush=True)
    server.handle_request()


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_folder(folder: Path, gib: float, files: int = 5) -> int:
    folder.mkdir(parents=True)
    per_file = int(gib * 1024**3) // files
    block = 128 * 1024 * 1024
    total = 0
    for i in range(files):
        data = os.urandom(block)
        with open(folder / f"disk-image-{i}.bin", "wb") as f:
            left = per_file
            while left > 0:
                n = min(left, block)
                f.write(data[:n])
                left -= n
        total += per_file
    return total


def bench_download(root: Path, gib: float) -> dict:
    folder = root / "data" / "big"
    total = make_folder(folder, gib)
    repo_dir = root / "dl-repo"
    Repository.init(open_store(repo_dir.as_uri()), org_key=KEY)
    t0 = time.perf_counter()
    run_backup(Repository.open(open_store(repo_dir.as_uri()), key=KEY), [str(folder)])
    backup_s = time.perf_counter() - t0
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", SERVE_CHILD, str(repo_dir), str(port), str(folder)],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline().strip() == b"ready"
        idle = _hwm(child.pid)
        t0 = time.perf_counter()
        got = 0
        peak = idle
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=600) as r:
            while chunk := r.read(1 << 20):
                got += len(chunk)
                if got % (256 << 20) < (1 << 20):
                    peak = max(peak, _hwm(child.pid))
        serve_s = time.perf_counter() - t0
        peak = max(peak, _hwm(child.pid))
    finally:
        child.wait(timeout=60)
    out = {
        "folder_bytes": total,
        "engine_backup_s": round(backup_s, 1),
        "zip_bytes": got,
        "cairn_zip_s": round(serve_s, 1),
        "cairn_zip_MBps": round(got / serve_s / 1e6, 1),
        "serving_rss_before_MiB": round(idle / 2**20, 1),
        "serving_peak_rss_MiB": round(peak / 2**20, 1),
    }
    restic = shutil.which("restic")
    if restic:
        env = dict(os.environ, RESTIC_REPOSITORY=str(root / "restic"), RESTIC_PASSWORD="bench")
        subprocess.run([restic, "init", "-q"], env=env, check=True)
        subprocess.run([restic, "backup", "-q", str(folder)], env=env, check=True)
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [restic, "dump", "latest", str(folder)], env=env, stdout=subprocess.PIPE
        )
        n = 0
        while chunk := p.stdout.read(1 << 20):
            n += len(chunk)
        p.wait()
        dump_s = time.perf_counter() - t0
        out.update(
            restic_dump_bytes=n,
            restic_dump_s=round(dump_s, 1),
            restic_dump_MBps=round(n / dump_s / 1e6, 1),
        )
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folders", type=int, default=200)
    ap.add_argument("--per-folder", type=int, default=1000)
    ap.add_argument("--gib", type=float, default=5.0, help="size of the downloaded folder")
    ap.add_argument("--skip-download", action="store_true")
    ap.add_argument("--skip-browse", action="store_true")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cairn-restore-bench-"))
    try:
        result = {}
        if not args.skip_browse:
            result["browse"] = bench_browse(root, args.folders, args.per_folder)
            print(json.dumps(result["browse"], indent=1), flush=True)
        if not args.skip_download:
            result["download"] = bench_download(root, args.gib)
            print(json.dumps(result["download"], indent=1), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
