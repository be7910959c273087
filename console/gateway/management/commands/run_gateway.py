import asyncio
import logging

from django.core.management.base import BaseCommand

from console.gateway.server import serve


class Command(BaseCommand):
    help = "Run the gRPC gateway agents connect to (mutual TLS) and enroll through."
    requires_system_checks: list = []  # the gateway serves no URLs

    def add_arguments(self, parser):
        parser.add_argument("--bind", help="mTLS listener host:port (GATEWAY_BIND)")
        parser.add_argument("--enroll-bind", help="enrollment listener (default: port + 1)")
        parser.add_argument("--instance-id", help="this gateway's id in the Redis registry")

    def handle(self, *args, bind=None, enroll_bind=None, instance_id=None, **options):
        logging.getLogger("cairn").setLevel(logging.INFO)
        asyncio.run(serve(bind=bind, enroll_bind=enroll_bind, instance_id=instance_id))
