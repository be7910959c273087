"""The Cairn console: Django project for the dashboard, REST API, gateway and workers."""

from console.celery import app as celery_app

__all__ = ["celery_app"]
