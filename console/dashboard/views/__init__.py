"""Server-rendered pages of the console, one module per subject. Thin: read
through the FilterSets (console/<app>/filters.py) and queries, change through
the service modules, check roles through console/accounts/roles.py (the same
module the API uses)."""

from console.dashboard.views.audit import audit_detail, audit_export, audit_list
from console.dashboard.views.devices import (
    device_backup,
    device_bulk,
    device_detail,
    device_export,
    device_groups,
    device_list,
    device_restore,
    device_revoke,
    device_verify,
)
from console.dashboard.views.enrollment import token_list, token_revoke
from console.dashboard.views.groups import group_detail, group_list
from console.dashboard.views.jobs import command_cancel, command_list, job_detail, job_list
from console.dashboard.views.overview import overview_page
from console.dashboard.views.policies import (
    assignment_remove,
    policy_create,
    policy_detail,
    policy_edit,
    policy_list,
    revision_detail,
)
from console.dashboard.views.storage import org_key_record, storage_edit, storage_page
from console.dashboard.views.users import (
    user_edit,
    user_list,
    user_revoke_token,
    user_set_active,
    user_unlock,
)

__all__ = [
    "assignment_remove",
    "audit_detail",
    "audit_export",
    "audit_list",
    "command_cancel",
    "command_list",
    "device_backup",
    "device_bulk",
    "device_detail",
    "device_export",
    "device_groups",
    "device_list",
    "device_restore",
    "device_revoke",
    "device_verify",
    "group_detail",
    "group_list",
    "job_detail",
    "job_list",
    "org_key_record",
    "overview_page",
    "policy_create",
    "policy_detail",
    "policy_edit",
    "policy_list",
    "revision_detail",
    "storage_edit",
    "storage_page",
    "token_list",
    "token_revoke",
    "user_edit",
    "user_list",
    "user_revoke_token",
    "user_set_active",
    "user_unlock",
]
