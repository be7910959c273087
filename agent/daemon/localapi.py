"""The daemon's local API for the person at the PC (self-service restore).

* A Unix domain socket (``CAIRN_AGENT_SOCKET``, default
  ``/run/cairn-agent/agent.sock`` for the system agent, else
  ``<home>/agent.sock``), writable by every local user: each connection is
  identified by the kernel's peer credentials (``SO_PEERCRED`` on Linux,
  ``LOCAL_PEERCRED`` / getpeereid on macOS), never by anything the client
  says. One JSON request per line, one JSON answer per line::

      {"op": "snapshots"}
      {"op": "ls", "snapshot": "latest", "path": "/home/ana/Documents"}
      {"op": "restore", "snapshot": "ab12cd34", "path": "/home/ana/x", "target": "/home/ana"}
      {"op": "web"}  -> {"ok": true, "url": "http://127.0.0.1:PORT/login?token=…"}

  Answers: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. What
  each user may do is decided in ``agent/daemon/selfservice.py``. Windows
  (a named pipe whose client token names the user) plugs in behind
  :func:`peer_uid`; it is not built yet.
* A small web page on 127.0.0.1 (``CAIRN_AGENT_WEB_PORT``, default a random
  port), started on the first ``web`` request: the one-time token handed out
  over the socket is exchanged for a session cookie (HttpOnly,
  SameSite=Strict) bound to that OS user; forms carry a per-session CSRF
  token; the Host header must name the loopback address (no DNS rebinding);
  no external assets.

Every self-service restore is recorded in the outbox as a report (``SelfRestore``:
OS user, uid, paths, target, result) and so reaches the
console when the agent is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import http.server
import json
import logging
import os
import secrets
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

from agent.daemon import selfservice, wire
from agent.daemon.selfservice import Peer, Refused
from agent.rpc import agent_pb2 as pb

log = logging.getLogger("cairn.agent")

#: longest request line accepted on the socket
MAX_REQUEST = 16 * 1024
#: a one-time web token is valid this long; a session this long
TOKEN_SECONDS = 120
SESSION_SECONDS = 8 * 3600
#: the system agent's socket (its home, /var/lib/cairn-agent, is private)
SYSTEM_SOCKET = Path("/run/cairn-agent/agent.sock")


def default_socket_path(home_path: Path) -> Path:
    env = os.environ.get("CAIRN_AGENT_SOCKET")
    if env:
        return Path(env)
    if Path(home_path) == Path("/var/lib/cairn-agent"):  # the system agent
        return SYSTEM_SOCKET
    return Path(home_path) / "agent.sock"


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket."""
    if sys.platform.startswith("linux"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid
    if sys.platform == "darwin":  # LOCAL_PEERCRED: struct xucred {u_int version; uid_t uid; ...}
        sol_local, local_peercred = 0, 0x001
        data = sock.getsockopt(sol_local, local_peercred, 76)
        return struct.unpack_from("=II", data)[1]
    raise OSError("peer credentials are not supported on this platform")


class LocalApi:
    """Serves the socket and the web page for one ``Daemon``."""

    def __init__(self, daemon, socket_path: Path | None = None):
        self.daemon = daemon
        self.socket_path = socket_path or default_socket_path(daemon.home.path)
        self._server: asyncio.AbstractServer | None = None
        self._web: WebPage | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # -- the socket ------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not hasattr(asyncio, "start_unix_server"):  # Windows: a named pipe, later
            log.info("self-service restore: no local socket on this platform yet")
            return
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(path))
        # Anyone may connect: who they are comes from the kernel (peer_uid).
        os.chmod(path, 0o666)
        log.info("local API on %s", path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
        if self._web is not None:
            self._web.shutdown()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                uid = peer_uid(writer.get_extra_info("socket"))
                peer = Peer.from_uid(uid)
                line = await asyncio.wait_for(reader.readline(), 30)
                if len(line) > MAX_REQUEST:
                    raise Refused("request too long")
                try:
                    req = json.loads(line)
                except ValueError:
                    raise Refused("the request is not JSON") from None
                if not isinstance(req, dict):
                    raise Refused("the request is not a JSON object")
                answer = await asyncio.to_thread(self.handle, peer, req)
                answer = {"ok": True, **answer}
            except Refused as exc:
                answer = {"ok": False, "error": str(exc)}
            except Exception as exc:
                log.exception("local API request failed")
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    # -- requests (in a worker thread) -----------------------------------------------
    def handle(self, peer: Peer, req: dict) -> dict:
        op = req.get("op")
        if op == "whoami":
            return {"user": peer.name, "uid": peer.uid, "home": peer.home}
        if op == "web":
            return {"url": self.web_page().login_url(peer)}
        if op == "snapshots":
            return {"snapshots": self._with_repo(lambda r: selfservice.list_snapshots(r, peer))}
        if op == "ls":
            return self._with_repo(
                lambda r: selfservice.list_dir(r, peer, req.get("snapshot"), req.get("path"))
            )
        if op == "restore":
            return self.restore(peer, req.get("snapshot"), req.get("path"), req.get("target"))
        raise Refused(f"unknown request {str(op)[:40]!r}")

    def _with_repo(self, fn):
        repo = self.daemon._open_repo()
        try:
            return fn(repo)
        finally:
            with contextlib.suppress(Exception):
                repo.store.close()

    def restore(self, peer: Peer, snapshot, path, target) -> dict:
        started = time.time()
        try:
            result = self._with_repo(lambda r: selfservice.restore(r, peer, snapshot, path, target))
        except Refused as exc:
            self._record(peer, snapshot, path, target, started, "refused", str(exc), {})
            raise
        except Exception as exc:
            self._record(peer, snapshot, path, target, started, "failed", str(exc), {})
            raise
        self._record(
            peer,
            result["snapshot"],
            path,
            result["target"],
            started,
            result["state"],
            "; ".join(result["errors"]),
            result,
        )
        return result

    def _record(self, peer, snapshot, path, target, started, state, error, result) -> None:
        """The restore, as a report in the outbox (delivered when connected)."""
        event_id = str(uuid.uuid4())
        report = pb.SelfRestore(
            os_user=peer.name,
            uid=peer.uid,
            snapshot_id=str(snapshot or "")[:64],
            paths=[str(path)[:1024]] if path else [],
            target=str(target or "")[:1024],
            state=state,
            error=error[:1000],
            files=int(result.get("files", 0)),
            bytes=int(result.get("bytes", 0)),
            at=wire.timestamp(started),
        )
        key = f"self-restore:{event_id}"
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self.daemon.report, key, pb.Report(self_restore=report))
        else:
            self.daemon.report(key, pb.Report(self_restore=report))
        log.info("self-service restore by %s (uid %d): %s %s", peer.name, peer.uid, path, state)

    # -- the web page ----------------------------------------------------------------
    def web_page(self) -> WebPage:
        with self._lock:
            if self._web is None:
                port = int(os.environ.get("CAIRN_AGENT_WEB_PORT") or 0)
                self._web = WebPage(self, port)
            return self._web


class WebPage:
    """The loopback web page: sessions per OS user from one-time tokens."""

    def __init__(self, api: LocalApi, port: int = 0):
        self.api = api
        self.tokens: dict[str, tuple[Peer, float]] = {}
        self.sessions: dict[str, tuple[Peer, str, float]] = {}  # id -> peer, csrf, expiry
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"page": self})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        log.info("self-service page on http://127.0.0.1:%d/", self.port)

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def login_url(self, peer: Peer) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            now = time.time()
            self.tokens = {k: v for k, v in self.tokens.items() if v[1] > now}
            self.tokens[token] = (peer, now + TOKEN_SECONDS)
        return f"http://127.0.0.1:{self.port}/login?token={token}"

    def redeem(self, token: str) -> str | None:
        with self.lock:
            entry = self.tokens.pop(token, None)  # one time only
            if entry is None or entry[1] < time.time():
                return None
            sid = secrets.token_urlsafe(32)
            self.sessions[sid] = (
                entry[0],
                secrets.token_urlsafe(24),
                time.time() + SESSION_SECONDS,
            )
            return sid

    def session(self, sid: str | None) -> tuple[Peer, str] | None:
        if not sid:
            return None
        with self.lock:
            entry = self.sessions.get(sid)
            if entry is None or entry[2] < time.time():
                self.sessions.pop(sid, None)
                return None
            return entry[0], entry[1]


_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}"
    "tr:nth-child(even){background:#f3f3f3}.err{color:#a00}.ok{color:#070}"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    page: WebPage
    server_version = "cairn-agent"
    sys_version = ""

    def log_message(self, fmt, *args):  # into the agent's log, not stderr
        log.debug("web: " + fmt, *args)

    # -- plumbing --------------------------------------------------------------------
    def _send(self, status: int, body: str, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _page(self, title: str, body: str, status: int = 200) -> None:
        self._send(
            status,
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>",
        )

    def _host_ok(self) -> bool:
        host = self.headers.get("Host", "")
        return host in (f"127.0.0.1:{self.page.port}", f"localhost:{self.page.port}")

    def _cookie(self) -> str | None:
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == "cairn_session":
                return v
        return None

    def _auth(self):
        if not self._host_ok():
            self._page("Refused", "<p class='err'>Wrong Host header.</p>", 403)
            return None
        s = self.page.session(self._cookie())
        if s is None:
            self._page(
                "Sign in",
                "<p class='err'>Not signed in. Run <code>cairn-agent files web</code> "
                "to open this page as yourself.</p>",
                403,
            )
        return s

    # -- pages -------------------------------------------------------------------------
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/login":
            if not self._host_ok():
                return self._page("Refused", "<p class='err'>Wrong Host header.</p>", 403)
            sid = self.page.redeem(q.get("token", ""))
            if sid is None:
                return self._page(
                    "Sign in", "<p class='err'>This link was used or expired.</p>", 403
                )
            self.send_response(303)
            self.send_header("Location", "/")
            self.send_header(
                "Set-Cookie", f"cairn_session={sid}; HttpOnly; SameSite=Strict; Path=/"
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        s = self._auth()
        if s is None:
            return None
        peer, _csrf = s
        if url.path == "/":
            return self._snapshots(peer)
        if url.path == "/browse":
            return self._browse(peer, _csrf, q.get("snapshot"), q.get("path"))
        return self._page("Not found", "", 404)

    def do_POST(self):
        s = self._auth()
        if s is None:
            return None
        peer, csrf = s
        if urllib.parse.urlsplit(self.path).path != "/restore":
            return self._page("Not found", "", 404)
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16384:
            return self._page("Refused", "<p class='err'>Request too large.</p>", 413)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
        origin = self.headers.get("Origin")
        if origin and origin not in (
            f"http://127.0.0.1:{self.page.port}",
            f"http://localhost:{self.page.port}",
        ):
            return self._page("Refused", "<p class='err'>Cross-site request.</p>", 403)
        if not secrets.compare_digest(form.get("csrf", ""), csrf):
            return self._page("Refused", "<p class='err'>Missing or wrong form token.</p>", 403)
        try:
            res = self.page.api.restore(
                peer, form.get("snapshot"), form.get("path"), form.get("target") or None
            )
        except Refused as exc:
            return self._page("Restore", f"<p class='err'>{html.escape(str(exc))}</p>", 403)
        except Exception as exc:
            return self._page("Restore", f"<p class='err'>failed: {html.escape(str(exc))}</p>", 500)
        errs = "".join(f"<li class='err'>{html.escape(e)}</li>" for e in res["errors"])
        return self._page(
            "Restored",
            f"<p class='ok'>{res['files']} file(s), {res['bytes']} bytes of "
            f"<code>{html.escape(res['path'])}</code> restored to "
            f"<code>{html.escape(res['restored'])}</code>.</p><ul>{errs}</ul>"
            "<p><a href='/'>Snapshots</a></p>",
        )

    def _snapshots(self, peer: Peer):
        try:
            snaps = self.page.api._with_repo(lambda r: selfservice.list_snapshots(r, peer))
        except Exception as exc:
            return self._page("Snapshots", f"<p class='err'>{html.escape(str(exc))}</p>", 500)
        rows = "".join(
            "<tr><td><a href='/browse?"
            + html.escape(urllib.parse.urlencode({"snapshot": s["id"]}))
            + f"'>{html.escape(s['short_id'])}</a></td><td>{html.escape(s['time'][:19])}</td>"
            f"<td>{html.escape(', '.join(s['paths']))}</td></tr>"
            for s in snaps
        )
        return self._page(
            f"Your backups ({peer.name})",
            "<table><tr><th>Snapshot</th><th>Time (UTC)</th><th>Your folders</th></tr>"
            f"{rows}</table>" + ("" if snaps else "<p>No backup holds your files yet.</p>"),
        )

    def _browse(self, peer: Peer, csrf: str, snapshot, path):
        try:
            listing = self.page.api._with_repo(
                lambda r: selfservice.list_dir(r, peer, snapshot, path)
            )
        except Refused as exc:
            return self._page("Browse", f"<p class='err'>{html.escape(str(exc))}</p>", 403)
        sid, here = listing["snapshot"], listing["path"]

        def link(p: str, text: str) -> str:
            q = urllib.parse.urlencode({"snapshot": sid, "path": p})
            return f"<a href='/browse?{html.escape(q)}'>{html.escape(text)}</a>"

        def restore_form(p: str) -> str:
            return (
                "<form method='post' action='/restore' style='margin:0'>"
                f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
                f"<input type='hidden' name='snapshot' value='{html.escape(sid)}'>"
                f"<input type='hidden' name='path' value='{html.escape(p)}'>"
                "<button>Restore</button></form>"
            )

        rows = []
        parent = here.rsplit("/", 1)[0] or "/"
        if here != "/" and selfservice.may_read(peer, parent):
            rows.append(f"<tr><td>{link(parent, '..')}</td><td></td><td></td><td></td></tr>")
        for e in listing["entries"]:
            p = (here.rstrip("/") + "/" + e["name"]) if here != "/" else "/" + e["name"]
            name = link(p, e["name"] + "/") if e["type"] == "dir" else html.escape(e["name"])
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e["mtime"]))
            rows.append(
                f"<tr><td>{name}</td><td>{e['size'] if e['type'] != 'dir' else ''}</td>"
                f"<td>{when}</td><td>{restore_form(p)}</td></tr>"
            )
        return self._page(
            f"{listing['short_id']}: {here}",
            f"<p>{restore_form(here)} restores this whole folder into your home.</p>"
            "<table><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th><th></th></tr>"
            + "".join(rows)
            + "</table><p><a href='/'>All snapshots</a></p>",
        )
