import asyncio
import logging

from django.core.management.base import BaseCommand, CommandError

from console.gateway.server import serve
from console.metrics.exporter import parse_bind


class Command(BaseCommand):
    help = "Run the gRPC gateway agents connect to (mutual TLS) and enroll through."
    requires_system_checks: list = []  # the gateway serves no URLs

    def add_arguments(self, parser):
        parser.add_argument("--bind", help="mTLS listener host:port (GATEWAY_BIND)")
        parser.add_argument("--enroll-bind", help="enrollment listener (default: port + 1)")
        parser.add_argument("--instance-id", help="this gateway's id in the Redis registry")
        parser.add_argument(
            "--metrics-bind",
            help="host:port of the Prometheus exporter (CAIRN_GATEWAY_METRICS_BIND; default none)",
        )

    def handle(
        self, *args, bind=None, enroll_bind=None, instance_id=None, metrics_bind=None, **options
    ):
        logging.getLogger("cairn").setLevel(logging.INFO)
        if metrics_bind is not None:
            try:
                parse_bind(metrics_bind)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        asyncio.run(
            serve(
                bind=bind,
                enroll_bind=enroll_bind,
                instance_id=instance_id,
                metrics_bind=metrics_bind,
            )
        )
