from django.apps import AppConfig


class RestoreConfig(AppConfig):
    name = "console.restore"
    label = "restore"
    verbose_name = "Restore without the device"
