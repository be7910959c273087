"""REST API v1: the same service functions and capabilities as the dashboard.

Authentication: session (the browser) or ``Authorization: Token <key>``
(POST /api/v1/auth/token/ issues a new one, replacing the old, shown once).
Lists are paginated (``?page=``, ``?page_size=`` up to 500; the job, command
and audit histories use cursor pagination) and filtered by the FilterSets of
console/<app>/filters.py, documented in the OpenAPI schema at /api/schema/
(browsable at /api/docs/). One module per subject; each view translates
HTTP to a service call and back.
"""

from console.api.views.account import TokenLogin, UserViewSet, me
from console.api.views.audit import AuditEventViewSet
from console.api.views.devices import DeviceViewSet
from console.api.views.enrollment import EnrollmentTokenViewSet
from console.api.views.groups import GroupViewSet
from console.api.views.jobs import CommandViewSet, JobRunViewSet, SnapshotViewSet
from console.api.views.overview import OverviewView, spec_defaults
from console.api.views.policies import AssignmentViewSet, PolicyViewSet
from console.api.views.storage import StorageTargetViewSet

__all__ = [
    "AssignmentViewSet",
    "AuditEventViewSet",
    "CommandViewSet",
    "DeviceViewSet",
    "EnrollmentTokenViewSet",
    "GroupViewSet",
    "JobRunViewSet",
    "OverviewView",
    "PolicyViewSet",
    "SnapshotViewSet",
    "StorageTargetViewSet",
    "TokenLogin",
    "UserViewSet",
    "me",
    "spec_defaults",
]
