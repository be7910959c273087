from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.routers import DefaultRouter

from console.api import views
from console.api.views.alerts import (
    AlertSettingsView,
    AlertViewSet,
    ChannelViewSet,
    ThresholdsViewSet,
)
from console.api.views.holds import LegalHoldViewSet, OffboardingViewSet
from console.api.views.report_schedules import ReportScheduleViewSet, StoredReportViewSet
from console.api.views.reports import ComplianceReportView, ReportVerifyView
from console.api.views.restore import (
    FileSearchView,
    SnapshotCompareView,
    SnapshotDownloadView,
    SnapshotTreeView,
)

router = DefaultRouter()
router.register("overview", views.OverviewView, basename="overview")
router.register("devices", views.DeviceViewSet, basename="device")
router.register("groups", views.GroupViewSet, basename="group")
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("assignments", views.AssignmentViewSet, basename="assignment")
router.register("jobs", views.JobRunViewSet, basename="jobrun")
router.register("commands", views.CommandViewSet, basename="command")
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")
router.register("enrollment-tokens", views.EnrollmentTokenViewSet, basename="enrollmenttoken")
router.register("storage-targets", views.StorageTargetViewSet, basename="storagetarget")
router.register("audit-events", views.AuditEventViewSet, basename="auditevent")
router.register("users", views.UserViewSet, basename="user")
router.register("reports/compliance", ComplianceReportView, basename="compliance-report")
router.register("alerts", AlertViewSet, basename="alert")
router.register("alert-thresholds", ThresholdsViewSet, basename="alertthresholds")
router.register("alert-channels", ChannelViewSet, basename="alertchannel")
router.register("reports/verify", ReportVerifyView, basename="report-verify")
router.register("reports/schedules", ReportScheduleViewSet, basename="report-schedule")
router.register("reports/past", StoredReportViewSet, basename="stored-report")
router.register("holds", LegalHoldViewSet, basename="legalhold")
router.register("offboardings", OffboardingViewSet, basename="offboarding")


@csrf_exempt  # nothing to protect, and a CSRF refusal would be an HTML 403
def not_found(request, rest=""):
    """Any other /api/v1/ URL (e.g. an id that is not a number): the API's
    JSON 404, not the dashboard's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


urlpatterns = [
    path("me/", views.me, name="api-me"),
    path("policy-spec/", views.spec_defaults, name="api-spec-defaults"),
    path("auth/token/", views.TokenLogin.as_view(), name="api-token"),
    path(
        "devices/<uuid:device_id>/snapshots/<str:snapshot>/tree/",
        SnapshotTreeView.as_view(),
        name="api-snapshot-tree",
    ),
    path(
        "devices/<uuid:device_id>/snapshots/<str:snapshot>/compare/",
        SnapshotCompareView.as_view(),
        name="api-snapshot-compare",
    ),
    path(
        "devices/<uuid:device_id>/snapshots/<str:snapshot>/download/",
        SnapshotDownloadView.as_view(),
        name="api-snapshot-download",
    ),
    path("files/search/", FileSearchView.as_view(), name="api-file-search"),
    path("", include(router.urls)),
    path("alert-settings/", AlertSettingsView.as_view(), name="api-alert-settings"),
    re_path(r"^(?P<rest>.*)$", not_found),
]
