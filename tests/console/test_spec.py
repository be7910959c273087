"""The policy spec: defaults, field-level validation, hashing, merge, diff."""

import pytest

from console.policies import spec as specs


def errors_of(mutate):
    data = specs.default_spec()
    mutate(data)
    return specs.validate_spec(data)[1]


def test_default_spec_is_valid_and_mirrors_agent_excludes():
    spec, errors = specs.validate_spec(specs.default_spec())
    assert errors == {}
    from agent.excludes import DEFAULT_PATTERNS

    assert spec["excludes"] == list(DEFAULT_PATTERNS)
    for pattern in ("~$*", "*.tmp", "*.ost"):
        assert pattern in spec["excludes"]
    for folder in ("AppData/Local/Temp", "Library/Caches", ".cache"):
        assert any(p.endswith(folder) for p in spec["excludes"]), folder
    assert "*.pst" not in spec["excludes"]  # the user's archived mail is kept


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["sources"]["windows"].append("{Documnets}"), "sources.windows"),
        (lambda d: d["sources"]["linux"].append("{OutlookData}"), "sources.linux"),
        (lambda d: d["sources"]["macos"].append("{Documents"), "sources.macos"),
        (lambda d: d.update(sources={"windows": [], "macos": [], "linux": []}), "sources"),
        (lambda d: d["schedule"].update(every_hours=0), "schedule.every_hours"),
        (lambda d: d["schedule"].update(every_hours="often"), "schedule.every_hours"),
        (lambda d: d["schedule"].update(times=["09:00"]), "schedule.every_hours"),
        (lambda d: d["schedule"].update(every_hours=None, times=["25:00"]), "schedule.times"),
        (lambda d: d["schedule"].update(every_hours=None, times=[]), "schedule.every_hours"),
        (
            lambda d: d["schedule"].update(window={"start": "08:00", "end": "8pm"}),
            "schedule.window",
        ),
        (lambda d: d.update(rpo_hours=2), "rpo_hours"),  # shorter than the 4 h interval
        (lambda d: d["retention"].update(keep_last=-1), "retention.keep_last"),
        (
            lambda d: d.update(retention=dict.fromkeys(d["retention"], 0)),
            "retention.keep_last",
        ),
        (lambda d: d["limits"].update(upload_kbps=-5), "limits.upload_kbps"),
        (lambda d: d["limits"].update(cpu_percent=-1), "limits.cpu_percent"),
        (lambda d: d["limits"].update(cpu_percent=101), "limits.cpu_percent"),
        (lambda d: d["limits"].update(cpu_percent="half"), "limits.cpu_percent"),
        (lambda d: d["limits"].update(cpu_percent=True), "limits.cpu_percent"),
        (lambda d: d["limits"].update(cpu_percent=12.5), "limits.cpu_percent"),
        (lambda d: d.update(open_files="sometimes"), "open_files"),
        (lambda d: d["verification"].update(sample_percent=0), "verification.sample_percent"),
        (lambda d: d.update(colour="blue"), "colour"),
    ],
)
def test_invalid_fields_are_reported_by_path(mutate, path):
    errors = errors_of(mutate)
    assert path in errors, errors
    assert all(isinstance(m, str) and m for m in errors[path])


def test_cpu_ceiling_defaults_to_none_and_accepts_0_to_100():
    assert specs.default_spec()["limits"]["cpu_percent"] == 0
    data = specs.default_spec()
    del data["limits"]["cpu_percent"]  # a spec written before the field existed
    spec, errors = specs.validate_spec(data)
    assert errors == {} and spec["limits"]["cpu_percent"] == 0
    for value, expected in ((0, 0), (1, 1), (100, 100), ("25", 25)):
        data = specs.default_spec()
        data["limits"]["cpu_percent"] = value
        spec, errors = specs.validate_spec(data)
        assert errors == {} and spec["limits"]["cpu_percent"] == expected, value
    data["limits"]["cpu_percent"] = 101
    assert specs.validate_spec(data)[1] == {"limits.cpu_percent": ["Must be between 0 and 100."]}


def test_known_folder_error_names_the_known_tokens():
    errors = errors_of(lambda d: d["sources"]["windows"].append("{Documnets}"))
    assert "{Documnets} is not a known folder on windows" in errors["sources.windows"][0]
    assert "{OutlookData}" in errors["sources.windows"][0]


def test_times_of_day_schedule_is_normalised():
    data = specs.default_spec()
    data["schedule"] = {"every_hours": None, "times": "17:30, 09:00 09:00", "catch_up": "on"}
    spec, errors = specs.validate_spec(data)
    assert errors == {}
    assert spec["schedule"] == {
        "every_hours": None,
        "times": ["09:00", "17:30"],
        "window": None,
        "catch_up": True,
    }


def test_hash_is_canonical():
    a = specs.default_spec()
    b = {k: a[k] for k in reversed(list(a))}
    assert specs.spec_hash(a) == specs.spec_hash(b)
    a["rpo_hours"] = 48
    assert specs.spec_hash(a) != specs.spec_hash(b)


def test_merge_first_wins_and_excludes_accumulate():
    strict = specs.default_spec()
    strict["rpo_hours"] = 4
    strict["schedule"]["every_hours"] = 1
    loose = specs.default_spec()
    loose["excludes"] = ["*.iso", "~$*"]
    merged = specs.merge_specs([strict, loose])
    assert merged["rpo_hours"] == 4
    assert merged["excludes"][-1] == "*.iso"
    assert merged["excludes"].count("~$*") == 1
    assert specs.validate_spec(merged)[1] == {}


def test_diff_lists_changed_paths():
    a = specs.default_spec()
    b = specs.default_spec()
    b["schedule"]["every_hours"] = 2
    b["excludes"] = [*b["excludes"], "*.iso"]
    paths = {d["path"] for d in specs.diff_specs(a, b)}
    assert paths == {"schedule.every_hours", "excludes"}
