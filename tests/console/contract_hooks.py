"""Schemathesis hooks of the API contract test (test_api_contract.py), loaded
by the fuzzer through SCHEMATHESIS_HOOKS.

Requests never made, because they would end the run rather than test it:

* a change to the fuzzer's own account (a password change, revoking its
  token or deactivating it revokes the token the run authenticates with);
* DELETE of a fixture the test made before the run (CAIRN_CONTRACT_KEEP:
  {"/api/v1/groups/{id}/": ["3"], ...}): DELETE reaches only objects the run
  created itself (the stateful phase deletes what it just made) or ids that
  do not exist (404).

Refusals accepted although the request is valid by the schema: a 400 whose
every message is about what OpenAPI cannot describe, the state of the data
(a name already taken, an id that names nothing, a command already finished,
a policy still assigned, wrong credentials), the password policy (common,
numeric, too similar to the user name) or the policy contract's rules across
fields. Anything else the schema allows and the server refuses is a failure:
declare the constraint instead.
"""

from __future__ import annotations

import json
import os
import re

import hypothesis
import schemathesis

# Hypothesis 6.170's targeted search (the optimiser schemathesis feeds with
# each operation's success rate) can index past the end of a test case
# (IndexError in optimiser.attempt_replace, about one run in ten), failing
# the run with an error in the fuzzer rather than in the API. The run does
# without that steering: generation itself is unchanged.
hypothesis.target = lambda *args, **kwargs: None

OWN_USER = os.environ.get("CAIRN_CONTRACT_USER_ID", "")
KEEP: dict[str, list[str]] = json.loads(os.environ.get("CAIRN_CONTRACT_KEEP", "{}"))

STATE = re.compile(
    "|".join(
        [
            r"already exists\.$",  # name or username taken (services, unique fields)
            r"does not exist\.$",  # a referenced id names nothing (DRF related fields)
            r"^no (group|policy) with id \d+$",  # the same, in a compliance report's scope
            r"^This device has no such snapshot\.$",
            r"^This command has already finished\.$",
            r"^Unassign the policy from every group before deleting it\.$",
            r"^Job history refers to this policy; it cannot be deleted\.$",
            r"^Unable to log in with provided credentials\.$",
            r"^Choose a group\.$",  # bulk add_to_group without one (a rule across fields)
            # a legal hold's scope decides which other field it needs (console/holds)
            r"^A user hold names the owner\.$",
            r"^A device is required for this scope\.$",
            r"^A snapshot id \(hexadecimal\)\.$",
            r"^The device has no snapshot with this id\.$",
            r"^This hold was already released\.$",  # state: a release is done once
            # what a snapshot holds (console/restore/services.py)
            r"^The cursor is not one this listing gave\.$",
            r"^The path is a file, not a folder: download it instead\.$",
            r"^The path names an entry whose stored name is unsafe\.$",
            r" is a (symlink|fifo|socket|chardev|blockdev), not a file or a folder\.$",
            r"^snapshot prefix .* is ambiguous",
        ]
    )
)
# The policy contract's rules across fields, which its schema states in prose
# (console/policies/schema.py CROSS_FIELD_RULES): refused under spec.<path>.
ACROSS_FIELDS = re.compile(
    "|".join(
        [
            r"^Back up at least one folder on at least one OS\.$",
            r"^Choose either an interval or times of day, not both\.$",
            r"^Set an interval in hours or at least one time of day\.$",
            r"^Start and end of the window must differ\.$",
            r"^The recovery point objective .* is shorter than the backup interval",
            r"^Keep at least one snapshot by some rule\.$",
        ]
    )
)
# Rules across fields of reports and alerts (console/api/views/reports.py,
# console/reports/scheduling.py, console/alerts/services.py).
REPORT_PERIOD = re.compile(
    "|".join(
        [
            r"^Give a group or a policy, not both\.$",
            r"^The period ends before it starts\.$",
            r"^The history covers closed days: give a day before today \(UTC\)\.$",
            r"^A report covers at most \d+ days\.$",
            # a report schedule's or alert channel's scope or kind needs its other field
            r"^A group scope needs a group\.$",
            r"^A policy scope needs a policy\.$",
            r"^1 to \d+ e-mail addresses$",
            r"^an http:// or https:// URL \(up to 500 characters\)$",
            # state: the organisation-wide alert thresholds always exist
            r"^the organisation default cannot be deleted$",
        ]
    )
)


def _accepted(field: str, message: str) -> bool:
    if field == "password":  # the password policy: common, numeric, too similar
        return True
    if field.startswith("spec.sources."):  # a source that is not a folder of its OS
        return True
    if field.startswith("spec.") and ACROSS_FIELDS.search(message):
        return True
    return bool(STATE.search(message) or REPORT_PERIOD.search(message))


@schemathesis.hook
def filter_case(context, case) -> bool:
    path, method = case.operation.path, case.method.upper()
    target = str((case.path_parameters or {}).get("id", ""))
    if path.startswith("/api/v1/users/{id}/") and method != "GET" and target == OWN_USER:
        return False
    return not (method == "DELETE" and target in KEEP.get(path, ()))


def _messages(body, field: str = "") -> list[tuple[str, str]]:
    """(field, message) pairs of a DRF error body, nested ones included
    ({"devices": {"0": [...]}} is about field "devices")."""
    if isinstance(body, dict):
        return [pair for key, value in body.items() for pair in _messages(value, field or str(key))]
    if isinstance(body, list):
        return [pair for value in body for pair in _messages(value, field)]
    return [(field, str(body))]


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    if failure.code != "ST202" or response.status_code != 400:
        return True
    try:
        pairs = _messages(json.loads(response.content))
    except ValueError:
        return True
    return not (pairs and all(_accepted(field, message) for field, message in pairs))
