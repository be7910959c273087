from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "console.gateway"
    label = "gateway"
    verbose_name = "Agent gateway"

    def ready(self) -> None:
        # Imports here because Django allows models only once the registry is ready.
        from console.gateway import signals  # noqa: F401  (revocation push)
        from console.gateway.services import delivery
        from console.jobs import dispatch

        # The domain queues commands; this adapter carries them (dispatch.py).
        dispatch.set_transport(delivery.deliver)
