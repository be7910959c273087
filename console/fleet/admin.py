from django.contrib import admin

from console.fleet.models import Device, DeviceGroup, EnrollmentToken


@admin.register(DeviceGroup)
class DeviceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "is_demo", "created_at"]
    search_fields = ["name"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """Read-mostly: changes go through the console so they are audited."""

    list_display = ["hostname", "os", "owner", "last_seen_at", "last_success_at", "revoked"]
    list_filter = ["os", "revoked", "failing", "is_demo"]
    search_fields = ["hostname", "owner"]
    readonly_fields = [f.name for f in Device._meta.fields]
    show_full_result_count = False


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "group", "uses_remaining", "expires_at", "revoked_at"]
    readonly_fields = ["token_hash", "prefix"]
