"""Celery tasks of the jobs app: thin wrappers around service functions."""

from __future__ import annotations

from celery import shared_task

from console.jobs import services


@shared_task(
    name="jobs.deliver_command",
    autoretry_for=(services.DeliveryRetry,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def deliver_command(command_id: str) -> str:
    return services.deliver_command(command_id)


@shared_task(name="jobs.deliver_commands")
def deliver_commands(command_ids: list[str]) -> dict:
    results: dict[str, int] = {}
    for command_id in command_ids:
        try:
            outcome = services.deliver_command(command_id)
        except services.DeliveryRetry:
            deliver_command.apply_async((command_id,), countdown=5)
            outcome = "retry"
        results[outcome] = results.get(outcome, 0) + 1
    return results


@shared_task(name="jobs.expire_commands")
def expire_commands() -> int:
    return services.expire_commands()


@shared_task(name="jobs.redeliver_pending")
def redeliver_pending() -> int:
    """Beat sweep: queue delivery of commands still pending."""
    return services.redeliver_pending()
