"""Public services: queue a collection of approved time and expenses, or a synchronization
of resource assignments, now (audited)."""

from __future__ import annotations

from django.db import transaction

from console import audit
from console.models import User

from . import outbox
from .models import Connection
from .queues import queue_for


def queue_collection(psa: Connection, *, requested_by: User | None = None) -> None:
    with transaction.atomic():
        for task in ("integrations.collect_time_entries", "integrations.collect_expenses"):
            outbox.enqueue(task, psa.pk, queue=queue_for(psa))
        audit.record(
            "postings.collect.requested",
            f"Collection of approved time and expenses from {psa.name} requested",
            actor=requested_by,
            obj=psa,
        )


def queue_assignment_sync(psa: Connection, *, requested_by: User | None = None) -> None:
    with transaction.atomic():
        outbox.enqueue("integrations.sync_assignments", psa.pk, queue=queue_for(psa))
        audit.record(
            "assignments.sync.requested",
            f"Synchronization of resource assignments from {psa.name} requested",
            actor=requested_by,
            obj=psa,
        )
