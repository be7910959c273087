"""An admin sees the OS as it is named, not a kernel release."""

import platform

from agent.daemon.enroll import os_description


def test_linux_uses_the_distribution_name(monkeypatch):
    monkeypatch.setattr(
        platform, "freedesktop_os_release", lambda: {"PRETTY_NAME": "Ubuntu 24.04 LTS"}
    )
    assert os_description("linux") == "Ubuntu 24.04 LTS"


def test_linux_without_os_release_falls_back_to_the_kernel(monkeypatch):
    def missing():
        raise OSError("no os-release")

    monkeypatch.setattr(platform, "freedesktop_os_release", missing)
    monkeypatch.setattr(platform, "release", lambda: "6.8.0")
    assert os_description("linux") == "Linux 6.8.0"


def test_windows_and_macos(monkeypatch):
    monkeypatch.setattr(
        platform, "win32_ver", lambda: ("10", "10.0.19045", "SP0", "Multiprocessor Free")
    )
    assert os_description("windows") == "Windows 10 (10.0.19045)"
    monkeypatch.setattr(platform, "mac_ver", lambda: ("14.5", ("", "", ""), "arm64"))
    assert os_description("macos") == "macOS 14.5"
