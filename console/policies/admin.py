from django.contrib import admin

from console.policies.models import Policy, PolicyAssignment, PolicyRevision


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    """Read-only: policies are edited in the console (validation, revisions, audit)."""

    list_display = ["name", "current_revision", "updated_at", "is_demo"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(PolicyRevision)
class PolicyRevisionAdmin(admin.ModelAdmin):
    list_display = ["policy", "number", "hash", "created_at", "created_by"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PolicyAssignment)
class PolicyAssignmentAdmin(admin.ModelAdmin):
    list_display = ["policy", "group", "precedence"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
