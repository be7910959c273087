from django.contrib import admin

from console.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, read-only here as everywhere."""

    list_display = ["at", "actor_name", "action", "target_repr", "via", "source_address"]
    list_filter = ["via", "target_type"]
    search_fields = ["actor_name", "action", "target_repr"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
