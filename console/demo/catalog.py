"""What the demo fleet is made of (console/demo/seed.py): departments, names,
OS and agent versions, the errors and warnings its job history shows, and
its policies."""

from __future__ import annotations

from console.policies import spec as specs

DEPARTMENTS = [
    ("Finance", "FIN"),
    ("Engineering", "ENG"),
    ("Sales", "SLS"),
    ("Human Resources", "HR"),
    ("Support", "SUP"),
    ("Design", "DSN"),
    ("Operations", "OPS"),
    ("Legal", "LGL"),
]
FIRST = ["Anna", "Ben", "Carla", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Klara", "Lukas", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sam", "Tina", "Umar", "Vera", "Wim", "Yara", "Zoe"]  # fmt: skip
LAST = ["Keller", "Martin", "Novak", "Dubois", "Rossi", "Schmidt", "Jansen", "Silva", "Berg", "Costa", "Meyer", "Lambert", "Fischer", "Moreau", "Weber", "Horvat", "Olsen", "Byrne", "Wagner", "Laurent"]  # fmt: skip
OS_VERSIONS = {
    "windows": ["Windows 11 23H2", "Windows 11 24H2", "Windows 10 22H2"],
    "macos": ["macOS 14.6", "macOS 15.1", "macOS 13.7"],
    "linux": ["Ubuntu 24.04", "Debian 12", "Fedora 41"],
}
AGENT_VERSIONS = ["0.9.4", "1.0.0", "1.0.1", "1.0.2"]
ERRORS = [
    "Storage unreachable: connection to s3.corp.example:9000 timed out",
    "Volume Shadow Copy failed (VSS_E_INSUFFICIENT_STORAGE) and the policy requires a snapshot",
    "Upload grant expired before the run finished",
    "Read error on {Documents}/Archive/2019.pst: I/O error (disk)",
    "Not enough free space for the local index cache",
    "Agent stopped: the PC went to sleep during the run",
]
WARNINGS = [
    ("{Documents}/Budget 2025.xlsx", "changed while being read; retried, stored a consistent copy"),
    ("{OutlookData}/archive.pst", "in use by Outlook; read from the volume snapshot"),
    ("{Desktop}/notes.docx", "changed during every read attempt; skipped this run"),
    ("{Pictures}/Camera/IMG_2231.HEIC", "permission denied; skipped"),
]


def policy_specs() -> list[tuple[str, str, dict, list[str], int]]:
    standard = specs.default_spec()
    execs = specs.default_spec()
    execs["schedule"]["every_hours"] = 1
    execs["rpo_hours"] = 4
    execs["retention"].update({"hourly": 48, "daily": 30, "monthly": 24, "yearly": 7})
    eng = specs.default_spec()
    eng["sources"]["linux"] = ["{Home}"]
    eng["sources"]["macos"] = ["{Documents}", "{Desktop}", "~/src"]
    eng["excludes"] = ["node_modules", "target", "*.o", ".venv", "build", "dist"]
    eng["schedule"]["every_hours"] = 2
    eng["rpo_hours"] = 12
    field_staff = specs.default_spec()
    field_staff["schedule"] = {
        "every_hours": None,
        "times": ["12:30", "17:30"],
        "window": {"start": "08:00", "end": "20:00"},
        "catch_up": True,
    }
    field_staff["rpo_hours"] = 36
    field_staff["limits"]["upload_kbps"] = 4000
    legal = specs.default_spec()
    legal["retention"].update({"keep_within_days": 365, "yearly": 10})
    legal["open_files"] = "required"
    legal["verification"] = {"every_days": 1, "sample_percent": 20}
    return [
        (
            "Standard workstation",
            "Every PC: documents, desktop, pictures and Outlook data.",
            standard,
            [d for d, _ in DEPARTMENTS],
            100,
        ),
        (
            "Executives — hourly",
            "Short RPO and long retention for the leadership team.",
            execs,
            ["Executives"],
            10,
        ),
        (
            "Engineering — source trees",
            "Home folders with build output excluded.",
            eng,
            ["Engineering"],
            50,
        ),
        (
            "Field staff — metered links",
            "Twice a day within working hours, throttled upload.",
            field_staff,
            ["Sales", "Support"],
            40,
        ),
        (
            "Legal hold",
            "Keep everything for a year; snapshot required; daily verification.",
            legal,
            ["Legal"],
            20,
        ),
    ]
