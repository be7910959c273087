"""`make bench`: Cairn's engine side by side with restic and Borg.

One run, one data set, one machine, one local repository per tool:

1. generate a seeded office-PC data set (``tests/bench/dataset.py``);
2. warm-up read of the whole data set (page cache cannot be dropped without
   root on a shared machine, so every tool reads from a warm cache, equally),
   and ``sync`` before every measured command (so no tool pays for writing
   back the previous tool's output);
3. initial backup, then an unchanged re-run, with each tool in turn;
4. a realistic day of changes; warm-up read; backup again with each tool;
5. restore of the latest snapshot with each tool (verified against the data
   afterwards, outside the timing); ``check --read-data`` with each tool;
6. print the table and the ratios, write raw results as JSON and, unless
   ``--no-docs``, replace the engine section of ``docs/performance.md``.

Every command runs as its own subprocess. Its peak RSS is sampled every 20 ms
from ``/proc``: the largest ``VmHWM`` (the kernel's high-water mark of one
process's resident memory) or, if larger, the largest sum of ``VmRSS`` over its
process tree (for a tool that runs worker processes at the same time).
``ru_maxrss`` is not used: Linux carries the forking parent's high-water mark
across ``exec`` into the child's. CPU time (user + system, the child and its
descendants) comes from ``wait4``.

Settings: restic repository format 2, compression ``auto`` (zstd), default
pack size; Borg ``repokey`` encryption (AES-CTR + HMAC-SHA256), ``zstd,3``
compression, default chunker; Cairn with its defaults. Each tool keeps its
cache under the work directory.

Usage: ``python -m tests.bench.engine_bench [--size 1.5G] [--tools cairn,restic,borg]
[--workdir var/bench] [--no-docs] [--keep]``; ``--size 64M`` is a smoke run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.bench.dataset import DataSet, GiB, MiB, apply_day_of_changes, generate, human, parse_size

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "cairn-bench-password"
START = "<!-- engine-bench:start -->"
END = "<!-- engine-bench:end -->"


# --- running one command -------------------------------------------------------------------------
@dataclass
class Run:
    argv: list[str]
    rc: int = 0
    wall: float = 0.0
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    peak_rss: int = 0  # bytes
    load: float = 0.0  # 1-minute load average when the command started
    stdout: str = ""
    stderr: str = ""

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys

    @property
    def ok(self) -> bool:
        return self.rc == 0


def _hwm(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process in bytes, from /proc (0, 0 once it is gone)."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return hwm, rss


def _tree_pids(pid: int) -> list[int]:
    import psutil

    try:
        return [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return [pid]


def measure(argv: list[str], env: dict, cwd: Path, log: Path, timeout: float) -> Run:
    """Run argv as a child, wait4() it, and sample its process tree's memory."""
    run = Run(argv=[str(a) for a in argv], load=os.getloadavg()[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            run.argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd
        )
        peak = [0]
        done = threading.Event()

        def poll():
            # ru_maxrss from wait4 is useless here: Linux carries the RSS high-water
            # mark of the (forked) parent across exec into the child's. VmHWM is
            # the high-water mark of the child's own address space.
            hwms: dict[int, int] = {}
            while not done.is_set():
                total_rss = 0
                for pid in _tree_pids(proc.pid):
                    hwm, rss = _hwm(pid)
                    if hwm:
                        hwms[pid] = max(hwms.get(pid, 0), hwm)
                    total_rss += rss
                peak[0] = max(peak[0], total_rss, max(hwms.values(), default=0))
                done.wait(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            done.set()
        run.wall = time.perf_counter() - t0
        poller.join()
    proc.returncode = run.rc = os.waitstatus_to_exitcode(status)
    run.cpu_user, run.cpu_sys = usage.ru_utime, usage.ru_stime
    run.peak_rss = peak[0]
    run.stdout = out_path.read_text(errors="replace")
    run.stderr = err_path.read_text(errors="replace")
    return run


# --- the tools -------------------------------------------------------------------------------------
class Tool:
    name = ""
    label = ""

    def __init__(self, work: Path):
        self.work = work
        self.repo = work / "repos" / self.name
        self.cache = work / "cache" / self.name
        self.phase = ""  # the phase whose command is being built
        self.error: str | None = None  # set when a step fails: later steps are skipped
        self.runs: dict[str, Run] = {}
        self.summaries: dict[str, dict] = {}

    def env(self) -> dict:
        return {**os.environ, "XDG_CACHE_HOME": str(self.cache), "HOME": str(self.cache / "home")}

    def available(self) -> str | None:
        """None if usable, else the reason it is not."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def init(self) -> list[str]:
        raise NotImplementedError

    def backup(self, data: Path, label: str) -> list[str]:
        raise NotImplementedError

    def restore(self, target: Path) -> tuple[list[str], Path]:
        """argv and the cwd to run it in."""
        raise NotImplementedError

    def check(self) -> list[str]:
        raise NotImplementedError

    def summary(self, run: Run) -> dict:
        return {}


class Cairn(Tool):
    name = "cairn"
    label = "Cairn"

    def env(self) -> dict:
        env = super().env()
        env["CAIRN_PASSWORD"] = PASSWORD
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("CAIRN_PASSWORD_FILE", None)
        env.pop("CAIRN_KEY_FILE", None)
        return env

    #: how to start the CLI; ``--cairn-cmd`` runs it under a profiler or a wrapper
    command = "{python} -m agent"

    def cli(self, *args) -> list[str]:
        subst = {"python": sys.executable, "phase": self.phase, "workdir": str(self.work)}
        prefix = [part.format(**subst) for part in shlex.split(self.command)]
        return [*prefix, *map(str, args)]

    def available(self) -> str | None:
        try:
            p = subprocess.run(
                [sys.executable, "-m", "agent", "backup", "--help"],
                capture_output=True,
                text=True,
                env=self.env(),
                cwd=ROOT,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`python -m agent` did not run: {exc}"
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["no output"])[-1]
            return f"`python -m agent backup --help` failed: {last}"
        return None

    def version(self) -> str:
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--", "agent/engine", "agent/cli"],
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout.strip()
        except OSError:
            return "Cairn (unknown commit)"
        return f"Cairn {commit}{' + uncommitted engine changes' if dirty else ''} (Python {platform.python_version()})"

    def init(self):
        return self.cli("init", "--repo", self.repo, "--json")

    def backup(self, data, label):
        return self.cli("backup", "--repo", self.repo, "--json", data)

    def restore(self, target):
        return self.cli(
            "restore", "--repo", self.repo, "latest", "--target", target, "--json"
        ), ROOT

    def check(self):
        return self.cli("check", "--repo", self.repo, "--read-data", "--json")

    def summary(self, run):
        return _last_json(run.stdout)


class Restic(Tool):
    name = "restic"
    label = "restic"

    def env(self):
        return {**super().env(), "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(self.repo)}

    def available(self):
        return None if shutil.which("restic") else "restic is not installed (make bench-tools)"

    def version(self):
        return subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        return ["restic", "init", "--repository-version", "2", "--cache-dir", self.cache]

    def backup(self, data, label):
        return ["restic", "backup", "--json", "--host", "bench", "--cache-dir", self.cache, data]

    def restore(self, target):
        return ["restic", "restore", "latest", "--target", target, "--cache-dir", self.cache], ROOT

    def check(self):
        return ["restic", "check", "--read-data", "--cache-dir", self.cache]

    def summary(self, run):
        for line in reversed(run.stdout.splitlines()):
            if '"summary"' in line:
                try:
                    return json.loads(line)
                except ValueError:
                    break
        return {}


class Borg(Tool):
    name = "borg"
    label = "Borg"
    compression = "zstd,3"

    def env(self):
        return {
            **super().env(),
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_BASE_DIR": str(self.cache),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }

    def available(self):
        return None if shutil.which("borg") else "borg is not installed (make bench-tools)"

    def version(self):
        return subprocess.run(["borg", "--version"], capture_output=True, text=True).stdout.strip()

    def init(self):
        return ["borg", "init", "--encryption=repokey", str(self.repo)]

    def backup(self, data, label):
        return [
            "borg",
            "create",
            "--json",
            "--compression",
            self.compression,
            f"{self.repo}::{label}",
            data,
        ]

    def restore(self, target):
        return ["borg", "extract", f"{self.repo}::run3"], target

    def check(self):
        return ["borg", "check", "--verify-data", str(self.repo)]

    def summary(self, run):
        return _last_json(run.stdout)


TOOLS = {"cairn": Cairn, "restic": Restic, "borg": Borg}


def _last_json(text: str) -> dict:
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
        return value if isinstance(value, dict) else {"value": value}
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            value = json.loads(line)
            if isinstance(value, dict):
                return value
        except ValueError:
            continue
    return {}


# --- helpers ------------------------------------------------------------------------------------------
def warm_up(root: Path) -> tuple[int, float]:
    """Read every regular file once so all tools start from the same warm cache."""
    t0 = time.perf_counter()
    total = 0
    buf = bytearray(4 * MiB)
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue
                with open(path, "rb", buffering=0) as f:
                    while n := f.readinto(buf):
                        total += n
            except OSError:
                continue
    return total, time.perf_counter() - t0


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def manifest(root: Path) -> dict[bytes, tuple]:
    """relative path -> (kind, size or target, sha1) for the whole tree (bytes paths)."""
    out: dict[bytes, tuple] = {}
    base = os.fsencode(root)
    for dirpath, dirs, names in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        for name in dirs + names:
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha1()
                with open(path, "rb") as f:
                    while chunk := f.read(4 * MiB):
                        h.update(chunk)
                out[rel] = ("file", st.st_size, h.hexdigest())
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode))
    return out


def compare(expected: dict, actual: dict) -> list[str]:
    problems = []
    for rel, value in expected.items():
        got = actual.get(rel)
        if got != value:
            what = "missing" if got is None else f"differs ({got[0]})"
            problems.append(f"{os.fsdecode(rel)!r} {what}")
    for rel in actual.keys() - expected.keys():
        problems.append(f"{os.fsdecode(rel)!r} unexpected")
    return problems


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    fs = subprocess.run(
        ["df", "-T", str(ROOT)], capture_output=True, text=True
    ).stdout.splitlines()[-1:]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": human(mem),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": fs[0].split()[1] if fs else "?",
    }


# --- the run ----------------------------------------------------------------------------------------------
PHASES = ("init", "initial", "rerun", "changed", "restore", "check")


@dataclass
class Results:
    started: str
    size: int
    seed: int
    machine: dict
    versions: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    changes: dict = field(default_factory=dict)
    logical_after_changes: int = 0
    unavailable: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)  # tool -> phase -> Run as dict
    summaries: dict = field(default_factory=dict)
    repo_initial: dict = field(default_factory=dict)
    repo_final: dict = field(default_factory=dict)
    restore_verified: dict = field(default_factory=dict)
    warmups: list = field(default_factory=list)
    repeat: int = 1
    args: str = ""
    sync_seconds: float = 0.0
    load: list = field(default_factory=list)
    finished: str = ""
    seconds: float = 0.0


def run_bench(args) -> Results:
    work = Path(args.workdir).resolve()
    size = parse_size(args.size)
    res = Results(
        started=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        size=size,
        seed=args.seed,
        machine=machine(),
        repeat=args.repeat,
        args=f"--size {args.size}" + (f" --repeat {args.repeat}" if args.repeat > 1 else ""),
    )
    res.load.append(("start", os.getloadavg()))
    t_start = time.monotonic()
    for sub in ("data", "repos", "cache", "restore", "logs"):
        shutil.rmtree(work / sub, ignore_errors=True)
    (work / "repos").mkdir(parents=True)

    tools: list[Tool] = []
    for name in args.tools.split(","):
        tool = TOOLS[name.strip()](work)
        reason = tool.available()
        if reason:
            print(f"{tool.label}: not available: {reason}")
            res.unavailable[tool.name] = reason
            tool.error = reason
        else:
            res.versions[tool.name] = tool.version()
        tools.append(tool)
    Borg.compression = args.borg_compression
    Cairn.command = args.cairn_cmd

    data = work / "data"
    ds: DataSet = generate(data, size, args.seed)
    res.dataset = {
        "files": ds.files,
        "logical": ds.logical,
        "allocated": ds.allocated,
        "parts": {k: list(v) for k, v in ds.parts.items()},
        "seconds": round(ds.seconds, 1),
    }
    data_path = data  # backed up by absolute path

    def step(tool: Tool, phase: str, argv: list[str], cwd: Path = ROOT) -> Run | None:
        """Run one measured command; with --repeat, keep the fastest of the
        successful runs (peak RSS: the largest of them)."""
        if tool.error:
            return None
        print(f"  {tool.label:6} {phase:8} ...", end="", flush=True)
        settle()
        run = measure(argv, tool.env(), cwd, work / "logs" / f"{tool.name}-{phase}", args.timeout)
        if not run.ok:
            last = (run.stderr.strip().splitlines() or ["(no error output)"])[-1]
            tool.error = f"{phase} failed (exit {run.rc}): {last}"
            res.errors[tool.name] = tool.error
            print(f" FAILED: {tool.error}")
        else:
            summary = tool.summary(run)
            if summary:
                res.summaries.setdefault(tool.name, {})[phase] = summary
            print(
                f" {run.wall:7.1f} s  cpu {run.cpu:6.1f} s  rss {run.peak_rss / MiB:6.0f} MiB  load {run.load:.1f}"
            )
        previous = res.runs.get(tool.name, {}).get(phase)
        record = {k: v for k, v in asdict(run).items() if k not in ("stdout", "stderr")}
        record["walls"] = [round(run.wall, 3)]
        record["loads"] = [round(run.load, 2)]
        if previous and previous["rc"] == 0:
            record["walls"] = previous["walls"] + record["walls"]
            record["loads"] = previous["loads"] + record["loads"]
            rss = max(previous["peak_rss"], run.peak_rss)
            if not run.ok or previous["wall"] <= run.wall:
                record = {**previous, "walls": record["walls"], "loads": record["loads"]}
            record["peak_rss"] = rss
        res.runs.setdefault(tool.name, {})[phase] = record
        tool.runs[phase] = run
        return run

    def settle() -> None:
        """Flush dirty pages before every measured command (outside its timing):
        otherwise a tool pays for writing back the previous tool's repository
        or restore, which made whichever ran second look several times slower."""
        t0 = time.perf_counter()
        os.sync()
        res.sync_seconds += time.perf_counter() - t0

    def rotated(r: int) -> list[Tool]:
        """Tool order for repetition r: each tool takes each position in turn."""
        k = r % len(tools)
        return tools[k:] + tools[:k]

    def at(tool: Tool, phase: str) -> Tool:
        tool.phase = phase
        return tool

    def warm(label: str):
        total, secs = warm_up(data)
        res.warmups.append((label, total, round(secs, 1)))
        print(f"warm-up read ({label}): {human(total)} in {secs:.1f} s")

    print("init")
    for tool in tools:
        step(tool, "init", at(tool, "init").init())
    warm("before the initial backups")
    print("initial backup")
    for r in range(args.repeat):
        for n, tool in enumerate(rotated(r)):
            if tool.error:
                continue
            if r:  # start again from an empty repository and cache
                shutil.rmtree(tool.repo, ignore_errors=True)
                shutil.rmtree(tool.cache, ignore_errors=True)
                p = subprocess.run(
                    at(tool, "init").init(), env=tool.env(), cwd=ROOT, capture_output=True
                )
                if p.returncode:
                    tool.error = f"re-init failed: {p.stderr.decode(errors='replace')[-300:]}"
                    res.errors[tool.name] = tool.error
                    continue
            if n or r:
                warm_up(data)  # the previous tool's repository writes may have evicted data
            step(tool, "initial", at(tool, "initial").backup(data_path, "run1"))
    for tool in tools:
        if not tool.error:
            res.repo_initial[tool.name] = tree_size(tool.repo)
    print("unchanged re-run")
    warm_up(data)
    for r in range(args.repeat):
        for tool in rotated(r):
            step(tool, "rerun", at(tool, "rerun").backup(data_path, f"run2-{r}"))
    res.changes = apply_day_of_changes(ds)
    res.logical_after_changes = ds.logical
    warm("after the day of changes")
    print("backup after a day of changes")
    for n, tool in enumerate(tools):
        if n:
            warm_up(data)
        step(tool, "changed", at(tool, "changed").backup(data_path, "run3"))
    for tool in tools:
        if not tool.error:
            res.repo_final[tool.name] = tree_size(tool.repo)
    print("restore (latest snapshot) and verify")
    expected = manifest(data)
    for r in range(args.repeat):
        for tool in rotated(r):
            if tool.error:
                continue
            target = work / "restore" / tool.name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            argv, cwd = at(tool, "restore").restore(target)
            run = step(tool, "restore", argv, cwd)
            if run and run.ok and r == 0:
                restored = target / str(data_path).lstrip("/")
                problems = (
                    compare(expected, manifest(restored))
                    if restored.is_dir()
                    else ["nothing restored"]
                )
                res.restore_verified[tool.name] = problems[:10] if problems else "identical"
                print(
                    f"         restore verified: {'identical' if not problems else f'{len(problems)} differences'}"
                )
            shutil.rmtree(target, ignore_errors=True)
    print("check --read-data")
    for r in range(args.repeat):
        for tool in rotated(r):
            step(tool, "check", at(tool, "check").check())
    res.load.append(("end", os.getloadavg()))
    res.finished = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    res.seconds = round(time.monotonic() - t_start)
    if not args.keep:
        for sub in ("data", "repos", "cache", "restore"):
            shutil.rmtree(work / sub, ignore_errors=True)
    return res


# --- reporting ----------------------------------------------------------------------------------------------
@dataclass
class Metric:
    label: str
    unit: str
    higher_is_better: bool
    target: str  # against restic, as "Cairn ÷ restic" bound
    bound: float | None


METRICS = {
    "initial_tput": Metric("Initial backup throughput", "MiB/s", True, "≥ 1.00", 1.0),
    "initial_time": Metric("Initial backup time", "s", False, "", None),
    "initial_cpu": Metric("Initial backup CPU (user+sys)", "s", False, "", None),
    "rerun_time": Metric("Unchanged re-run", "s", False, "≤ 1.00", 1.0),
    "changed_time": Metric("Backup after a day of changes", "s", False, "", None),
    "restore_tput": Metric("Restore throughput", "MiB/s", True, "≥ 1.00", 1.0),
    "check_tput": Metric(
        "`check --read-data` throughput (repository bytes)", "MiB/s", True, "", None
    ),
    "check_time": Metric("`check --read-data` time", "s", False, "", None),
    "repo_initial": Metric("Repository size after the initial backup", "MiB", False, "", None),
    "repo_final": Metric("Repository size after the 3 backups", "MiB", False, "≤ 1.00", 1.0),
    "peak_rss": Metric("Peak RSS (largest of all its commands)", "MiB", False, "≤ 2.00", 2.0),
}


def values(res: Results, tool: str) -> dict[str, float | None]:
    runs = res.runs.get(tool, {})

    def ok(phase):
        r = runs.get(phase)
        return r if r and r["rc"] == 0 else None

    v: dict[str, float | None] = dict.fromkeys(METRICS)
    if r := ok("initial"):
        v["initial_time"] = r["wall"]
        v["initial_tput"] = res.dataset["logical"] / MiB / r["wall"]
        v["initial_cpu"] = r["cpu_user"] + r["cpu_sys"]
    if r := ok("rerun"):
        v["rerun_time"] = r["wall"]
    if r := ok("changed"):
        v["changed_time"] = r["wall"]
    if r := ok("restore"):
        v["restore_tput"] = res.logical_after_changes / MiB / r["wall"]
    if (r := ok("check")) and tool in res.repo_final:
        v["check_time"] = r["wall"]
        v["check_tput"] = res.repo_final[tool] / MiB / r["wall"]
    if tool in res.repo_initial:
        v["repo_initial"] = res.repo_initial[tool] / MiB
    if tool in res.repo_final:
        v["repo_final"] = res.repo_final[tool] / MiB
    rss = [r["peak_rss"] for r in runs.values() if r["rc"] == 0]
    v["peak_rss"] = max(rss) / MiB if rss else None
    return v


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"


def table(res: Results, tools: list[str]) -> str:
    vals = {t: values(res, t) for t in tools}
    labels = {"cairn": "Cairn", "restic": "restic", "borg": "Borg"}
    head = ["Metric", *[labels[t] for t in tools]]
    ratios = [o for o in ("restic", "borg") if "cairn" in tools and o in tools]
    head += [f"Cairn ÷ {labels[o]}" for o in ratios]
    if "cairn" in tools and "restic" in tools:
        head += ["target (÷ restic)"]
    rows = []
    for key, m in METRICS.items():
        row = [f"{m.label} ({m.unit})", *[_fmt(vals[t][key]) for t in tools]]
        for other in ratios:
            a, b = vals["cairn"][key], vals[other][key]
            row.append(f"{a / b:.2f}" if a is not None and b else "—")
        if "cairn" in tools and "restic" in tools:
            a, b = vals["cairn"][key], vals["restic"][key]
            if m.bound is None:
                row.append("")
            elif a is None or not b:
                row.append(f"{m.target} —")
            else:
                r = a / b
                met = r >= m.bound if m.higher_is_better else r <= m.bound
                row.append(f"{m.target} {'✅ met' if met else '❌ missed'}")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def phase_table(res: Results, tools: list[str]) -> str:
    labels = {"cairn": "Cairn", "restic": "restic", "borg": "Borg"}
    lines = [
        "| tool | phase | wall s | CPU s (user+sys) | peak RSS MiB | load avg at start | all runs: wall s (load) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in tools:
        for phase in PHASES:
            r = res.runs.get(t, {}).get(phase)
            if not r:
                continue
            status = "" if r["rc"] == 0 else f" (exit {r['rc']})"
            lines.append(
                f"| {labels[t]} | {phase}{status} | {r['wall']:.2f} | {r['cpu_user'] + r['cpu_sys']:.2f} "
                f"| {r['peak_rss'] / MiB:.0f} | {r['load']:.2f} | "
                + ", ".join(
                    f"{w:.2f} ({ld:.1f})"
                    for w, ld in zip(r.get("walls", []), r.get("loads", []), strict=False)
                )
                + " |"
            )
    return "\n".join(lines)


def markdown(res: Results, tools: list[str], note: str = "") -> str:
    m = res.machine
    ds = res.dataset
    parts = ds["parts"]

    def part(key, label):
        n, size = parts.get(key, (None, 0))
        return f"{label} {human(size)}" + (f" in {n:,} files" if n and n > 1 else "")

    lines = [
        START,
        "## Engine",
        "",
        f"`make bench` (`python -m tests.bench.engine_bench {res.args}`), "
        f"run {res.started} – {res.finished} ({res.seconds // 60} min {res.seconds % 60} s).",
        "",
        f"**Machine:** {m['nproc']} cores (`nproc`), {m['cpu']}, {m['memory']} RAM, Linux {m['kernel']}, "
        f"{m['filesystem']} file system, Python {m['python']}. Shared with other engineers' work while "
        f"it ran: load average {res.load[0][1][0]:.2f} at the start, {res.load[-1][1][0]:.2f} at the end "
        "(per command below), so absolute numbers are noisy; the CPU-seconds column is the steadier one.",
        "",
        "**Tools:** " + "; ".join(res.versions.get(t, f"{t}: not available") for t in tools) + ".",
        f"restic: repository format 2, compression `auto` (zstd). Borg: `repokey` encryption, "
        f"`{Borg.compression}` compression. Cairn: defaults. All local repositories on the same disk.",
        "",
        f"**Data set** (seed {res.seed}): {ds['files']:,} files, {human(ds['logical'])} logical, "
        f"{human(ds['allocated'])} allocated — "
        + ", ".join(
            [
                part("text", "text documents"),
                part("office", "Office zips"),
                part("mailbox", "one PST-like mailbox"),
                part("media", "incompressible media"),
                part("duplicates", "exact duplicates"),
                part("tar", "an uncompressed tar of shared content"),
                part("sparse", "a sparse disk image (apparent size)"),
                "awkward names",
            ]
        )
        + ". Day of changes: "
        + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in res.changes.items())
        + f"; {human(res.logical_after_changes)} logical afterwards.",
        "",
        "**Method:** each command is its own subprocess (wall time; CPU time from `wait4`; peak RSS "
        "from the kernel's per-process high-water mark `VmHWM`, sampled every 20 ms over the process tree). The page cache cannot be dropped without root, so "
        "every tool reads from a warm cache: the whole data set is read once before each backup phase, "
        "equally for all tools, and dirty pages are flushed (`sync`) before every measured command, so "
        "no tool pays for writing back another's output. Throughput = logical bytes of the data set ÷ wall time (for `check`, "
        "repository bytes ÷ wall time)."
        + (
            f" Initial backup, re-run, restore and check ran {res.repeat} times, interleaved between "
            "the tools in rotating order (the initial backup each time into a fresh repository); the "
            "table shows the fastest run, peak RSS the largest."
            if res.repeat > 1
            else ""
        )
        + " Restores are verified file by file (content, links, dirs) "
        "outside the timing.",
        "",
        table(res, tools),
        "",
    ]
    if res.unavailable:
        lines += ["**Not run:** " + "; ".join(f"{k}: {v}" for k, v in res.unavailable.items()), ""]
    if res.errors:
        lines += ["**Failures:** " + "; ".join(f"{k}: {v}" for k, v in res.errors.items()), ""]
    if res.restore_verified:
        lines += [
            "**Restore verification:** "
            + "; ".join(
                f"{k}: {v if isinstance(v, str) else ', '.join(v[:3]) + ' …'}"
                for k, v in res.restore_verified.items()
            ),
            "",
        ]
    lines += [
        "<details><summary>Every command</summary>",
        "",
        phase_table(res, tools),
        "",
        "</details>",
        "",
    ]
    if note:
        lines += [note.strip(), ""]
    lines += [END]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    """Replace only the engine section of docs/performance.md (other sections are others')."""
    text = path.read_text() if path.exists() else "# Performance\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.engine_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--size",
        default="1.5G",
        help="logical size of the data set (default 1.5G; 64M for a smoke run)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--tools", default="cairn,restic,borg", help="comma-separated subset of cairn,restic,borg"
    )
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--borg-compression", default="zstd,3")
    parser.add_argument(
        "--cairn-cmd",
        default=Cairn.command,
        help="how to start Cairn's CLI ({python}, {phase}, {workdir} are replaced), e.g. "
        "'py-spy record -o {workdir}/{phase}.svg -- {python} -m agent'",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run initial backup, re-run, restore and check N times and keep the fastest "
        "(the machine is shared: fewer outliers)",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md")
    parser.add_argument(
        "--note", default="", help="text appended to the docs section (e.g. a profile summary)"
    )
    parser.add_argument("--note-file", help="file whose markdown is appended to the docs section")
    parser.add_argument(
        "--from-results", help="render the table and docs from a results.json instead of running"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep data set and repositories afterwards"
    )
    args = parser.parse_args(argv)
    for name in args.tools.split(","):
        if name.strip() not in TOOLS:
            parser.error(f"unknown tool {name!r}")
    if parse_size(args.size) > 64 * GiB:
        parser.error("--size above 64G is not sensible on this machine")

    tools = [t.strip() for t in args.tools.split(",")]
    if args.from_results:  # re-render a previous run (e.g. with a new --note-file)
        res = Results(**json.loads(Path(args.from_results).read_text()))
        tools = [t for t in tools if t in res.runs or t in res.unavailable]
        Borg.compression = args.borg_compression
    else:
        res = run_bench(args)
        out = Path(args.workdir).resolve() / "results.json"
        out.write_text(json.dumps(asdict(res), indent=1, default=str))
        print(f"raw results: {out}")
    print()
    print(table(res, tools))
    print()
    note = args.note
    if args.note_file:
        note = (note + "\n\n" + Path(args.note_file).read_text()).strip()
    if not args.no_docs:
        write_docs(Path(args.docs), markdown(res, tools, note))
        print(f"engine section written to {args.docs}")
    return 1 if res.errors and not res.unavailable else 0


if __name__ == "__main__":
    sys.exit(main())
