from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "console.gateway"
    label = "gateway"
    verbose_name = "Agent gateway"

    def ready(self) -> None:
        from console.gateway import signals  # noqa: F401  (revocation push)
