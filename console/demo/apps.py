from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`make demo` and `manage.py seed_demo`: installed only outside
    production (console/settings.py), so a production console has neither the
    commands nor the code."""

    name = "console.demo"
    label = "demo"
    verbose_name = "Demo and seed data"
