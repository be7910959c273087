"""Generated gRPC stubs are importable and match proto/ (CI fails otherwise)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_stubs_match_proto():
    result = subprocess.run(
        [sys.executable, "proto/build.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_import_from_the_agent_package():
    from agent.rpc import agent_pb2, agent_pb2_grpc

    assert agent_pb2.DESCRIPTOR.package == "cairn.agent.v1"
    assert hasattr(agent_pb2_grpc, "AgentGatewayStub")


def test_check_detects_a_stale_stub(tmp_path):
    """The check really compares: a copy of the tree with an edited stub fails."""
    import shutil

    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "proto", copy / "proto")
    shutil.copytree(ROOT / "agent" / "rpc", copy / "agent" / "rpc")
    stub = copy / "agent" / "rpc" / "agent_pb2.py"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")
    result = subprocess.run(
        [sys.executable, "proto/build.py", "--check"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "agent_pb2.py" in result.stdout
