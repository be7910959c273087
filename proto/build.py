"""Generate the gRPC stubs for the agent <-> gateway contract.

The .proto files live under proto/cairn/agent/v1/ (their protobuf package is
cairn.agent.v1). protoc is given a *virtual* import path, so that the generated
modules land in the importable package ``agent.rpc`` and import each other as
``agent.rpc.xxx_pb2`` without any post-processing of generated code.

    python proto/build.py          # regenerate agent/rpc/*_pb2*.py
    python proto/build.py --check  # exit 1 when the committed stubs differ
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "proto" / "cairn" / "agent" / "v1"
PACKAGE = "agent/rpc"  # where the stubs are imported from
OUTPUT = ROOT / PACKAGE
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto

    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    protos = sorted(SOURCE.glob("*.proto"))
    args = [
        "protoc",
        f"--proto_path={PACKAGE}={SOURCE}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[f"{PACKAGE}/{p.name}" for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in (out_root / PACKAGE).iterdir() if p.name.endswith(GENERATED))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        names = {p.name for p in fresh}
        committed = {p.name for p in OUTPUT.glob("*") if p.name.endswith(GENERATED)}
        if args.check:
            stale = sorted(names ^ committed)
            stale += [
                p.name
                for p in fresh
                if p.name in committed and not filecmp.cmp(p, OUTPUT / p.name, shallow=False)
            ]
            if stale:
                print(
                    "gRPC stubs do not match proto/: run `make proto`:",
                    ", ".join(sorted(set(stale))),
                )
                return 1
            print(f"gRPC stubs match proto/ ({len(fresh)} files)")
            return 0
        for name in committed - names:
            (OUTPUT / name).unlink()
        for p in fresh:
            shutil.copyfile(p, OUTPUT / p.name)
        print(f"wrote {len(fresh)} files to {PACKAGE}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
