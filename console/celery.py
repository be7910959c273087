"""The Celery application: tasks are discovered in each console app's tasks.py."""

import os

from celery import Celery
from django.conf import settings  # lazy: read only once configured

from console.metrics import worker as worker_metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("cairn")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
worker_metrics.connect()  # task counters; the exporter on CAIRN_WORKER_METRICS_BIND


@app.on_configure.connect
def _create_embedded_broker_folders(sender, **kwargs):
    """The embedded broker (kombu's filesystem transport) and result backend
    expect their folders to exist; create them on first use."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folders = list(settings.CELERY_BROKER_TRANSPORT_OPTIONS.values())
        folders.append(settings.CELERY_RESULT_BACKEND.removeprefix("file://"))
        for folder in folders:
            if isinstance(folder, str):
                os.makedirs(folder, exist_ok=True)
