from django.core.management.base import BaseCommand, CommandError

from console.demo.seed import reset_demo, seed_demo


class Command(BaseCommand):
    help = (
        "Fill the console with a realistic DEMO fleet: groups, policies, devices and months "
        "of job history with some failures. Everything is marked as demo data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=200, help="number of devices (200)")
        parser.add_argument("--days", type=int, default=90, help="days of job history (90)")
        parser.add_argument(
            "--jobs-per-device",
            type=int,
            default=None,
            help="backup runs per device over the period (default: one a day)",
        )
        parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
        parser.add_argument("--reset", action="store_true", help="delete previous demo data first")

    def handle(self, *args, devices, days, jobs_per_device, seed, reset, **options):
        if devices < 1 or days < 1:
            raise CommandError("--devices and --days must be at least 1")
        if reset:
            reset_demo(out=self.stdout.write)
        result = seed_demo(
            devices=devices, days=days, per_device=jobs_per_device, seed=seed, out=self.stdout.write
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {result['devices']} devices, {result['job_runs']} job runs, "
                f"{result['snapshots']} snapshots ({result['seconds']:.1f}s)."
            )
        )
