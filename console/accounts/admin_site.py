"""The Django admin, read-only, and only where it is mounted (development).

The admin writes models directly, around the service functions, so nothing it
did reached the audit log (deleting a device, un-revoking an enrollment token,
creating users, queueing a restore). The dashboard and the API cover every
task, so production does not mount ``/admin/`` at all (console/urls.py); in
development it stays as a read-only model browser: every ModelAdmin
registered on this site refuses add, change and delete, and has no bulk
actions. DRF's token admin is never registered: API tokens are shown once, in
the response that creates them, and never listed.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.db.models.base import ModelBase

# App labels whose models the admin never shows (rest_framework.authtoken's
# TokenProxy lists every user's API token in clear).
HIDDEN_APP_LABELS = frozenset({"authtoken"})


class ReadOnlyModelAdmin:
    """Mixed in front of every ModelAdmin registered on the site."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}


class ReadOnlyAdminSite(admin.AdminSite):
    site_header = "Cairn (read-only)"

    def register(self, model_or_iterable, admin_class=None, **options):
        models = (
            [model_or_iterable] if isinstance(model_or_iterable, ModelBase) else model_or_iterable
        )
        models = [m for m in models if m._meta.app_label not in HIDDEN_APP_LABELS]
        if not models:
            return
        base = admin_class or admin.ModelAdmin
        read_only = type(f"ReadOnly{base.__name__}", (ReadOnlyModelAdmin, base), {})
        super().register(models, read_only, **options)


class ReadOnlyAdminConfig(AdminConfig):
    default_site = "console.accounts.admin_site.ReadOnlyAdminSite"
