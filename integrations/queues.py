"""Celery queues split per connection, so one slow vendor cannot starve the others.

Work bound to a connection (its polls, the runs it starts, batches posted to it) goes to the
queue `conn-<id>`; everything else to the default queue. `manage.py celery_queues` prints the
queue list a worker should consume; production runs workers per queue (or group of queues).
"""

from __future__ import annotations

import logging

from django.conf import settings

from .models import Connection

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "celery"


def queue_for(connection: Connection | int | None) -> str:
    """The queue of work bound to `connection` (the default queue when there is none)."""
    if connection is None or not settings.CELERY_QUEUE_PER_CONNECTION:
        return DEFAULT_QUEUE
    pk = connection if isinstance(connection, int) else connection.pk
    return f"conn-{pk}"


def all_queues() -> list[str]:
    """The default queue and one queue per enabled connection."""
    queues = [DEFAULT_QUEUE]
    if settings.CELERY_QUEUE_PER_CONNECTION:
        ids = Connection.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True)
        queues += [queue_for(pk) for pk in ids]
    return queues
