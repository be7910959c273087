from django.apps import AppConfig


class HoldsConfig(AppConfig):
    name = "console.holds"
    label = "holds"
    verbose_name = "Legal holds and offboarding"
    default_auto_field = "django.db.models.BigAutoField"
