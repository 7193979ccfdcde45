"""The engine's public services: the only entry points business apps call (start a run,
resume a failed run). Work is saved first and enqueued after commit; the database, not the
broker, is the record of what happened."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from console import audit
from console.models import User

from . import outbox, timeline
from .choices import RunStatus, StepStatus, Trigger
from .models import Connection, SyncRun
from .queues import queue_for

logger = logging.getLogger(__name__)


def enqueue_run(run: SyncRun) -> None:
    """Hand a saved run to a worker through the outbox (sent once the transaction commits),
    on the queue of the connection it came from."""
    outbox.enqueue(
        "integrations.run_workflow",
        run.pk,
        queue=queue_for(run.source_connection_id),
        key=run.correlation_id,
    )


def start_run(
    workflow: str,
    correlation_id: str,
    *,
    trigger: str = Trigger.POLL,
    source_connection: Connection | None = None,
    payload: dict[str, Any] | None = None,
    title: str = "",
    business_key: str = "",
) -> tuple[SyncRun, bool]:
    """Create the run of `workflow` for a business transaction, once; enqueue it if new.

    A second event for the same transaction (a repeat, or the echo of Throughline's own
    write-back) finds the existing run and starts nothing.
    """
    try:
        with transaction.atomic():
            run, created = SyncRun.objects.get_or_create(
                workflow=workflow,
                correlation_id=correlation_id,
                defaults={
                    "trigger": trigger,
                    "source_connection": source_connection,
                    "input": payload or {},
                    "title": title[:255],
                    "business_key": business_key or correlation_id,
                },
            )
            if created:
                _expect_milestone(run)
                enqueue_run(run)
    except IntegrityError:
        run, created = SyncRun.objects.get(workflow=workflow, correlation_id=correlation_id), False
    return run, created


def _expect_milestone(run: SyncRun) -> None:
    from .workflows.registry import get_workflow

    milestone = get_workflow(run.workflow).milestone
    seconds = settings.EXPECTATIONS.get(milestone) if milestone else None
    if seconds:
        # keyed by the run's own transaction (one deal has many milestones to invoice)
        timeline.expect(run.correlation_id, milestone, timedelta(seconds=seconds))


def resume_run(run: SyncRun, *, actor: User | None = None, reason: str = "retry") -> bool:
    """Re-run a failed run from its failed step (earlier steps keep their results).

    Returns False when the run is not failed (already running, queued or done).
    """
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.FAILED:
            return False
        run.steps.filter(status=StepStatus.FAILED).update(status=StepStatus.PENDING)
        run.status = RunStatus.PENDING
        run.save(update_fields=["status"])
        audit.record(
            "run.resumed",
            f"Run {run.pk} ({run.workflow}) resumed: {reason}",
            actor=actor,
            obj=run,
            correlation_id=run.correlation_id,
        )
        enqueue_run(run)
    logger.info("run %s resumed (%s)", run.pk, reason)
    return True


def request_poll(connection: Connection) -> None:
    """Read a connection's change streams again soon (after its failure was fixed)."""
    outbox.enqueue("integrations.poll_closed_won", connection.pk, queue=queue_for(connection))
