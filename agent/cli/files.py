"""``cairn-agent files ls|restore|web``: the person at the PC gets their own
files back without an admin, through the running agent.

These commands never open the repository (an unprivileged user has no key):
they ask the daemon over its local socket (agent/daemon/localapi.py), which
knows who is asking from the kernel's peer credentials and lets each user see
and restore only what is inside their own home.
"""

from __future__ import annotations

import json
import os
import socket
import time
import webbrowser
from pathlib import Path

from agent.cli.common import EXIT_ERROR, EXIT_OK, CliError, emit_json, human_bytes

#: the system agent's socket, as agent/daemon/localapi.py makes it
SYSTEM_SOCKET = "/run/cairn-agent/agent.sock"


def socket_path(args) -> str:
    if getattr(args, "socket", None):
        return args.socket
    if os.environ.get("CAIRN_AGENT_SOCKET"):
        return os.environ["CAIRN_AGENT_SOCKET"]
    if os.environ.get("CAIRN_AGENT_HOME"):
        return str(Path(os.environ["CAIRN_AGENT_HOME"]) / "agent.sock")
    return SYSTEM_SOCKET


def ask(path: str, request: dict, timeout: float = 3600) -> dict:
    """One request to the daemon; its answer, or CliError with its message."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(request).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                data = s.recv(65536)
                if not data:
                    break
                buf += data
    except (FileNotFoundError, ConnectionRefusedError):
        raise CliError(
            f"the Cairn agent is not running (no agent at {path}); ask your administrator"
        ) from None
    except PermissionError:
        raise CliError(f"not allowed to talk to the agent at {path}") from None
    try:
        answer = json.loads(buf)
    except ValueError:
        raise CliError("the agent gave no answer") from None
    if not answer.get("ok"):
        raise CliError(str(answer.get("error") or "refused"))
    return answer


def _console():
    from rich.console import Console

    return Console(highlight=False)


def cmd_ls(args) -> int:
    path = socket_path(args)
    if not args.snapshot:
        answer = ask(path, {"op": "snapshots"})
        if getattr(args, "json", False):
            emit_json(answer["snapshots"])
            return EXIT_OK
        from rich.table import Table

        table = Table(title="Your backups")
        for col in ("Snapshot", "Time (UTC)", "Host", "Your folders"):
            table.add_column(col)
        for s in answer["snapshots"]:
            table.add_row(
                s["short_id"],
                s["time"][:19].replace("T", " "),
                s["hostname"],
                ", ".join(s["paths"]),
            )
        _console().print(table if answer["snapshots"] else "No backup holds your files yet.")
        return EXIT_OK
    answer = ask(path, {"op": "ls", "snapshot": args.snapshot, "path": args.path or ""})
    if getattr(args, "json", False):
        answer.pop("ok", None)
        emit_json(answer)
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{answer['short_id']}: {escape(answer['path'])}")
    for col in ("Name", "Size", "Modified (UTC)"):
        table.add_column(col)
    for e in answer["entries"]:
        name = escape(e["name"]) + ("/" if e["type"] == "dir" else "")
        size = "" if e["type"] == "dir" else human_bytes(e["size"])
        table.add_row(name, size, time.strftime("%Y-%m-%d %H:%M", time.gmtime(e["mtime"])))
    _console().print(table)
    if answer.get("truncated"):
        _console().print("[yellow]more entries not shown[/yellow]")
    return EXIT_OK


def cmd_restore(args) -> int:
    target = os.path.abspath(args.target) if args.target else ""
    answer = ask(
        socket_path(args),
        {"op": "restore", "snapshot": args.snapshot, "path": args.path, "target": target},
    )
    answer.pop("ok", None)
    if getattr(args, "json", False):
        emit_json(answer)
    else:
        from rich.markup import escape

        con = _console()
        con.print(
            f"[green]restored[/green] {escape(answer['path'])} from {answer['short_id']}: "
            f"{answer['files']} file(s), {human_bytes(answer['bytes'])} -> "
            f"{escape(answer['restored'])}"
        )
        for e in answer["errors"]:
            con.print(f"[red]error[/red] {escape(e)}")
    return EXIT_ERROR if answer["errors"] else EXIT_OK


def cmd_web(args) -> int:
    answer = ask(socket_path(args), {"op": "web"})
    url = answer["url"]
    if getattr(args, "json", False):
        emit_json({"url": url})
        return EXIT_OK
    if not args.no_browser:
        try:
            webbrowser.open(url)
        except Exception:
            pass
    print(f"open {url} (the link works once, for you only)")
    return EXIT_OK


def register(sub, parents) -> None:
    p = sub.add_parser(
        "files", parents=parents, help="your own files in this PC's backups (self-service)"
    )
    fsub = p.add_subparsers(dest="files_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str):
        q = fsub.add_parser(name, parents=parents, help=help_text)
        q.add_argument("--socket", help="the agent's local socket (default: the system agent)")
        return q

    q = add("ls", "list your snapshots, or a folder of one")
    q.add_argument("snapshot", nargs="?", metavar="SNAPSHOT", help="id, unique prefix or latest")
    q.add_argument("path", nargs="?", metavar="PATH", help="folder (default: your home)")
    q.set_defaults(func=cmd_ls)

    q = add("restore", "restore a file or folder of yours")
    q.add_argument("snapshot", metavar="SNAPSHOT", help="id, unique prefix or latest")
    q.add_argument("path", metavar="PATH", help="absolute path of the file or folder")
    q.add_argument("--target", help="folder to restore into (default: your home)")
    q.set_defaults(func=cmd_restore)

    q = add("web", "open the self-service page in your browser")
    q.add_argument("--no-browser", action="store_true", help="only print the link")
    q.set_defaults(func=cmd_web)
