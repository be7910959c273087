from django.urls import path

from console.dashboard import views
from console.dashboard.views.alerts import alert_acknowledge, alert_list, alert_rules
from console.dashboard.views.devices import device_replace
from console.dashboard.views.holds import hold_export, hold_list, hold_release
from console.dashboard.views.report_files import compliance_file
from console.dashboard.views.reports import (
    past_download,
    past_reports,
    reports_page,
    schedule_edit,
    schedule_list,
)
from console.dashboard.views.restore import (
    file_search,
    snapshot_browse,
    snapshot_compare,
    snapshot_download,
)

urlpatterns = [
    path("", views.overview_page, name="overview"),
    path("devices/", views.device_list, name="device-list"),
    path("devices/export.csv", views.device_export, name="device-export"),
    path("devices/bulk/", views.device_bulk, name="device-bulk"),
    path("devices/<uuid:pk>/", views.device_detail, name="device-detail"),
    path("devices/<uuid:pk>/backup/", views.device_backup, name="device-backup"),
    path("devices/<uuid:pk>/verify/", views.device_verify, name="device-verify"),
    path("devices/<uuid:pk>/restore/", views.device_restore, name="device-restore"),
    path("devices/<uuid:pk>/revoke/", views.device_revoke, name="device-revoke"),
    path("devices/<uuid:pk>/replace/", device_replace, name="device-replace"),
    path("devices/<uuid:pk>/groups/", views.device_groups, name="device-groups"),
    path("devices/<uuid:pk>/snapshots/<str:snapshot>/", snapshot_browse, name="snapshot-browse"),
    path(
        "devices/<uuid:pk>/snapshots/<str:snapshot>/compare/",
        snapshot_compare,
        name="snapshot-compare",
    ),
    path(
        "devices/<uuid:pk>/snapshots/<str:snapshot>/download/",
        snapshot_download,
        name="snapshot-download",
    ),
    path("files/search/", file_search, name="file-search"),
    path("groups/", views.group_list, name="group-list"),
    path("groups/<int:pk>/", views.group_detail, name="group-detail"),
    path("policies/", views.policy_list, name="policy-list"),
    path("policies/new/", views.policy_create, name="policy-create"),
    path("policies/<int:pk>/", views.policy_detail, name="policy-detail"),
    path("policies/<int:pk>/edit/", views.policy_edit, name="policy-edit"),
    path(
        "policies/<int:pk>/revisions/<int:number>/",
        views.revision_detail,
        name="revision-detail",
    ),
    path("assignments/<int:pk>/remove/", views.assignment_remove, name="assignment-remove"),
    path("reports/compliance/file/", compliance_file, name="compliance-file"),
    path("reports/", reports_page, name="reports"),
    path("reports/schedules/", schedule_list, name="report-schedules"),
    path("reports/schedules/<int:pk>/", schedule_edit, name="report-schedule-edit"),
    path("reports/past/", past_reports, name="reports-past"),
    path("reports/past/<int:pk>/download/", past_download, name="report-download"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("commands/", views.command_list, name="command-list"),
    path("commands/<uuid:pk>/cancel/", views.command_cancel, name="command-cancel"),
    path("enrollment/", views.token_list, name="token-list"),
    path("enrollment/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("audit/", views.audit_list, name="audit-list"),
    path("holds/", hold_list, name="hold-list"),
    path("holds/export.csv", hold_export, name="hold-export"),
    path("holds/<int:pk>/release/", hold_release, name="hold-release"),
    path("alerts/", alert_list, name="alert-list"),
    path("alerts/rules/", alert_rules, name="alert-rules"),
    path("alerts/<int:pk>/acknowledge/", alert_acknowledge, name="alert-acknowledge"),
    path("audit/export.csv", views.audit_export, name="audit-export"),
    path("audit/<int:pk>/", views.audit_detail, name="audit-detail"),
    path("storage/", views.storage_page, name="storage"),
    path("storage/new/", views.storage_edit, name="storage-create"),
    path("storage/<int:pk>/", views.storage_edit, name="storage-edit"),
    path("storage/org-key/", views.org_key_record, name="org-key-record"),
    path("users/", views.user_list, name="user-list"),
    path("users/new/", views.user_edit, name="user-create"),
    path("users/<int:pk>/", views.user_edit, name="user-edit"),
    path("users/<int:pk>/revoke-token/", views.user_revoke_token, name="user-revoke-token"),
    path("users/<int:pk>/active/", views.user_set_active, name="user-set-active"),
    path("users/<int:pk>/unlock/", views.user_unlock, name="user-unlock"),
]
