from django.core.management.base import BaseCommand

from console.demo.supervisor import run_demo


class Command(BaseCommand):
    help = "Run the whole platform locally on embedded defaults (make demo)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host, port, **options):
        raise SystemExit(run_demo(host=host, port=port))
