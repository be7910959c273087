from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "console.core"
    label = "core"
    verbose_name = "Cairn core"

    def ready(self) -> None:
        from console.core import checks  # noqa: F401 (registers the system checks)
