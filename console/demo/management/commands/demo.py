from django.core.management.base import BaseCommand

from console.demo.supervisor import DEFAULT_PORT, run_demo


class Command(BaseCommand):
    help = "Run the whole platform locally on embedded defaults (make demo)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the console's port")
        parser.add_argument(
            "--gateway-port",
            type=int,
            default=None,
            help="the gateway's mTLS port (enrollment: the next one); default 7443 with "
            "console port 8000, else the console's port + 1",
        )

    def handle(self, *args, host, port, gateway_port, **options):
        raise SystemExit(run_demo(host=host, port=port, gateway_port=gateway_port))
