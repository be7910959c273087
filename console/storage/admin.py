from django.contrib import admin

from console.storage.models import OrgKeyConfig, StorageTarget


@admin.register(StorageTarget)
class StorageTargetAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint", "bucket", "is_default"]
    exclude = ["access_key_encrypted", "secret_key_encrypted"]


admin.site.register(OrgKeyConfig)
