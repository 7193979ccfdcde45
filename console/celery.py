"""The Celery app: configured from Django settings (namespace CELERY), tasks autodiscovered."""

import os

from celery import Celery

from console import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
broker.register()  # the embedded broker writes each message whole (see console.broker)

app = Celery("throughline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
