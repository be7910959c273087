"""The policy contract: defaults, field-addressed errors, normalisation, hash.

(Re-homed from tests/console/test_spec.py: these test the contract, which
lives in agent/policy and is shared by the console and the agent.)
"""

import copy

import pytest

from agent import policy
from agent.policy.sources import DEFAULT_PATTERNS


def default() -> dict:
    return copy.deepcopy(policy.default_policy().to_dict())


def errors_of(mutate) -> dict[str, list[str]]:
    data = default()
    mutate(data)
    with pytest.raises(policy.PolicyError) as exc:
        policy.parse(data)
    return exc.value.errors


def test_default_policy_is_valid_and_uses_the_default_excludes():
    parsed = policy.parse(default())
    assert parsed == policy.default_policy()
    assert parsed.excludes == DEFAULT_PATTERNS
    for pattern in ("~$*", "*.tmp", "*.ost"):
        assert pattern in parsed.excludes
    for folder in ("AppData/Local/Temp", "Library/Caches", ".cache"):
        assert any(p.endswith(folder) for p in parsed.excludes), folder
    assert "*.pst" not in parsed.excludes  # the user's archived mail is kept


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["sources"]["windows"].append("{Documnets}"), "sources.windows"),
        (lambda d: d["sources"]["linux"].append("{OutlookData}"), "sources.linux"),
        (lambda d: d["sources"]["macos"].append("{Documents"), "sources.macos"),
        (lambda d: d.update(sources={"windows": [], "macos": [], "linux": []}), "sources"),
        (lambda d: d.update(sources={"windows": [], "beos": ["/x"]}), "sources"),
        (lambda d: d.update(excludes="*.tmp\n*.iso\x00"), "excludes"),
        (lambda d: d["schedule"].update(every_hours=0), "schedule.every_hours"),
        (lambda d: d["schedule"].update(every_hours="often"), "schedule.every_hours"),
        (lambda d: d["schedule"].update(times=["09:00"]), "schedule.every_hours"),
        (lambda d: d["schedule"].update(every_hours=None, times=["25:00"]), "schedule.times"),
        (lambda d: d["schedule"].update(every_hours=None, times=[]), "schedule.every_hours"),
        (
            lambda d: d["schedule"].update(window={"start": "08:00", "end": "8pm"}),
            "schedule.window",
        ),
        (
            lambda d: d["schedule"].update(window={"start": "08:00", "end": "08:00"}),
            "schedule.window",
        ),
        (lambda d: d["schedule"].update(catch_up="maybe"), "schedule.catch_up"),
        (lambda d: d.update(schedule="hourly"), "schedule"),
        (lambda d: d.update(rpo_hours=2), "rpo_hours"),  # shorter than the 4 h interval
        (lambda d: d["retention"].update(keep_last=-1), "retention.keep_last"),
        (lambda d: d["retention"].update(daily=100001), "retention.daily"),
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
        (lambda d: d["limits"].update(pause_on_battery="perhaps"), "limits.pause_on_battery"),
        (lambda d: d.update(open_files="sometimes"), "open_files"),
        (lambda d: d["verification"].update(sample_percent=0), "verification.sample_percent"),
        (lambda d: d.update(colour="blue"), "colour"),
    ],
)
def test_invalid_fields_are_reported_by_path(mutate, path):
    errors = errors_of(mutate)
    assert path in errors, errors
    assert all(isinstance(m, str) and m for m in errors[path])


def test_not_an_object_is_refused_as_a_whole():
    with pytest.raises(policy.PolicyError) as exc:
        policy.parse(["sources"])
    assert exc.value.errors == {"spec": ["A policy spec must be a JSON object."]}
    assert "spec: A policy spec must be a JSON object." in str(exc.value)


def test_cpu_ceiling_defaults_to_none_and_accepts_0_to_100():
    assert policy.default_policy().limits.cpu_percent == 0
    data = default()
    del data["limits"]["cpu_percent"]  # a spec written before the field existed
    assert policy.parse(data).limits.cpu_percent == 0
    for value, expected in ((0, 0), (1, 1), (100, 100), ("25", 25)):
        data = default()
        data["limits"]["cpu_percent"] = value
        assert policy.parse(data).limits.cpu_percent == expected, value
    assert errors_of(lambda d: d["limits"].update(cpu_percent=101)) == {
        "limits.cpu_percent": ["Must be between 0 and 100."]
    }


def test_known_folder_error_names_the_known_tokens():
    errors = errors_of(lambda d: d["sources"]["windows"].append("{Documnets}"))
    assert "{Documnets} is not a known folder on windows" in errors["sources.windows"][0]
    assert "{OutlookData}" in errors["sources.windows"][0]


def test_times_of_day_schedule_is_normalised():
    data = default()
    data["schedule"] = {"every_hours": None, "times": "17:30, 09:00 09:00", "catch_up": "on"}
    parsed = policy.parse(data)
    assert parsed.schedule == policy.Schedule(
        every_hours=None, times=("09:00", "17:30"), window=None, catch_up=True
    )
    assert parsed.to_dict()["schedule"] == {
        "every_hours": None,
        "times": ["09:00", "17:30"],
        "window": None,
        "catch_up": True,
    }


def test_window_is_typed_and_an_empty_one_is_none():
    data = default()
    data["schedule"]["window"] = {"start": "22:00", "end": "06:00"}
    assert policy.parse(data).schedule.window == policy.Window("22:00", "06:00")
    data["schedule"]["window"] = {"start": "", "end": ""}
    assert policy.parse(data).schedule.window is None


def test_hash_is_canonical():
    a = default()
    b = {k: a[k] for k in reversed(list(a))}
    assert policy.parse(a).canonical_hash() == policy.parse(b).canonical_hash()
    a["rpo_hours"] = 48
    assert policy.parse(a).canonical_hash() != policy.parse(b).canonical_hash()


def test_policies_are_immutable_values():
    p = policy.default_policy()
    with pytest.raises(AttributeError):
        p.rpo_hours = 1  # type: ignore[misc]
    assert p == policy.parse(p.to_dict()) and hash(p) == hash(policy.parse(p.to_dict()))


def test_load_accepts_a_policy_and_refuses_garbage_by_field():
    p = policy.default_policy()
    assert policy.load(p) is p
    with pytest.raises(policy.PolicyError) as exc:
        policy.load({"limits": {"upload_kbps": "fast"}})
    assert list(exc.value.errors) == ["limits.upload_kbps"]


def _with_window(window) -> dict:
    data = default()
    data["schedule"] = {"every_hours": 4, "times": [], "window": window, "catch_up": True}
    return data


def test_a_window_object_without_its_two_ends_is_refused_not_read_as_none():
    """New input says "no window" with null or two empty ends; an object
    naming neither end (the API contract test sent one) is an error. Stored
    revisions keep their looser forms."""
    with pytest.raises(policy.PolicyError) as err:
        policy.parse(_with_window({"from": "08:00"}))
    assert "schedule.window" in err.value.errors
    assert policy.parse(_with_window(None)).schedule.window is None
    assert policy.parse(_with_window({"start": "", "end": ""})).schedule.window is None
    assert policy.load(_with_window({})).schedule.window is None


def test_unknown_keys_inside_a_section_are_refused_on_new_input_only():
    """The schema says what a section holds; new input naming anything else is
    refused by field (it was silently dropped), stored revisions load as written."""
    data = default()
    data["retention"] = {**data["retention"], "keep_forever": True}
    with pytest.raises(policy.PolicyError) as err:
        policy.parse(data)
    assert err.value.errors == {"retention.keep_forever": ["Unknown field."]}
    assert policy.load(data).retention == policy.default_policy().retention
