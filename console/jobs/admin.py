from django.contrib import admin

from console.jobs.models import Command, JobRun, Snapshot


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ["created_at", "device", "kind", "state", "attempts"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["device"]
    show_full_result_count = False


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "device", "kind", "state", "warnings_count"]
    list_filter = ["kind", "state"]
    raw_id_fields = ["device", "command", "policy_revision"]
    show_full_result_count = False


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["taken_at", "device", "snapshot_id", "size_bytes"]
    raw_id_fields = ["device", "job_run"]
    show_full_result_count = False
