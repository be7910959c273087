"""Tasks of the core app."""

from celery import shared_task


@shared_task(name="core.ping")
def ping(value: str = "pong") -> str:
    """Round-trip probe: proves a worker consumes from the broker."""
    return value
