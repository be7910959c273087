"""Measure chunking and compression choices on the benchmark data set.

``python -m tests.bench.chunk_study [--size 1.5G] [--workdir var/chunk-study]``

Generates the bench data set twice (before and after the day of changes, same
seed), then for each FastCDC parameter set reports, per part of the data set:
chunk count, unique (deduplicated) bytes, what the engine's compressor stores
for them, what zstd-3 on every chunk would store, and the bytes a second
backup after the day of changes adds. This is the measurement behind the
chunk sizes and the compression policy (docs/performance.md).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import time
from pathlib import Path

import blake3
import zstandard
from pyfastcdc import FastCDC

from tests.bench.dataset import MiB, apply_day_of_changes, generate, parse_size

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {
    "256K/1M/4M": (256 * 1024, 1024 * 1024, 4 * 1024 * 1024),
    "512K/1M/8M (restic)": (512 * 1024, 1024 * 1024, 8 * 1024 * 1024),
    "128K/512K/2M": (128 * 1024, 512 * 1024, 2 * 1024 * 1024),
    "64K/256K/1M": (64 * 1024, 256 * 1024, 1024 * 1024),
}


def part_of(rel: str) -> str:
    if "/Outlook/" in rel:
        return "mailbox"
    if "Old backups" in rel:
        return "duplicates"
    if rel.endswith(".tar"):
        return "tar"
    if rel.endswith((".docx", ".xlsx", ".pptx")):
        return "office"
    if "/Pictures/" in rel or "/Videos/" in rel:
        return "media"
    if "/VMs/" in rel:
        return "sparse"
    return "text"


def chunks(root: Path, cdc: FastCDC):
    for dirpath, _dirs, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            part = part_of(os.path.relpath(path, root))
            with open(path, "rb") as f:
                for c in cdc.cut_stream(f):
                    yield part, c.data


def engine_compressor():
    try:
        from agent.engine.compress import Compressor

        return Compressor(3)
    except ImportError:
        return None


def study(before: Path, after: Path) -> str:
    zstd = zstandard.ZstdCompressor(level=3)
    engine = engine_compressor()
    lines = [
        "| chunker (min/avg/max) | part | chunks | unique MiB | engine-compressed MiB | zstd-3 always MiB | added by day of changes MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, (lo, avg, hi) in PARAMS.items():
        cdc = FastCDC(avg_size=avg, min_size=lo, max_size=hi, normalized_chunking=1, seed=0)
        seen: set[bytes] = set()
        stats = collections.defaultdict(lambda: [0, 0, 0, 0, 0])  # n, unique, engine, zstd, added
        t0 = time.monotonic()
        for part, data in chunks(before, cdc):
            h = blake3.blake3(data).digest()
            s = stats[part]
            s[0] += 1
            if h in seen:
                continue
            seen.add(h)
            s[1] += len(data)
            if engine is not None:
                s[2] += len(engine.compress(data)[1])
            s[3] += min(len(data), len(zstd.compress(data)))
        for part, data in chunks(after, cdc):
            h = blake3.blake3(data).digest()
            if h not in seen:
                seen.add(h)
                stats[part][4] += len(data)
        total = [sum(s[i] for s in stats.values()) for i in range(5)]
        for part, s in sorted(stats.items()) + [("**total**", total)]:
            lines.append(
                f"| {label} | {part} | {s[0]:,} | {s[1] / MiB:.1f} | "
                f"{s[2] / MiB:.1f} | {s[3] / MiB:.1f} | {s[4] / MiB:.1f} |"
            )
        print(f"{label}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.chunk_study")
    parser.add_argument("--size", default="1.5G")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "chunk-study"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    work = Path(args.workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    size = parse_size(args.size)
    generate(work / "before", size, args.seed)
    after = generate(work / "after", size, args.seed)
    apply_day_of_changes(after)
    print(study(work / "before", work / "after"))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
