"""Reconnect backoff with jitter, and policy sources resolved on this PC."""

from agent.daemon import jobs
from agent.daemon.connection import BACKOFF_MAX, backoff_delay


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt in range(12):
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert min(delays) >= 0.5
        assert max(delays) <= min(BACKOFF_MAX, 2**attempt)
    late = [backoff_delay(30) for _ in range(200)]
    assert max(late) <= BACKOFF_MAX and len(set(late)) > 100  # spread, not a herd


def test_sources_resolve_known_folders_and_skip_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (tmp_path / "Documents").mkdir()
    extra = tmp_path / "Projects"
    extra.mkdir()
    policy = {
        "sources": {
            "linux": ["{Documents}", "{Pictures}", str(extra), str(tmp_path / "gone")],
            "macos": ["{Documents}"],
            "windows": ["{Documents}"],
        }
    }
    monkeypatch.setattr(jobs, "os_name", lambda: "linux")
    paths, warnings = jobs.policy_sources(policy)
    assert paths == [str(tmp_path / "Documents"), str(extra)]
    assert warnings == [f"source {tmp_path / 'gone'} does not exist on this PC"]
