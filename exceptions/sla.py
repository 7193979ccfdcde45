"""The clock of the queues: due times, SLA states, escalation of breaches, and ignored
exceptions coming back when their time is up.

An exception opened in a queue is due `queue.sla_hours` later. Until then it is "ok", in the
last fifth of that window "due soon", from its due time on "breached" (only while it still
needs a person: open, in progress or retrying). A breach that lasts longer than
`queue.escalate_after_hours` is escalated once: `escalated_at` is set, the audit trail says
so, and the queue's escalation contacts hear about it (once per incident when the exception
belongs to one). The five-minute sweep (`exceptions.check_sla`) does that, and wakes the
exceptions ignored until a time that has passed (`exceptions.ignoring.wake_due`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from console import audit

from . import ignoring
from .choices import ACTIVE_STATUSES, DUE_SOON_FRACTION, SlaState
from .models import IntegrationException, Queue

logger = logging.getLogger(__name__)

#: exceptions escalated or woken per sweep (the next sweep takes the rest)
SWEEP_LIMIT = 1000


def due_at(queue: Queue, start: dt.datetime) -> dt.datetime:
    """When an exception that reaches `queue` at `start` should have been worked."""
    return start + dt.timedelta(hours=queue.sla_hours)


def due_soon_window(queue: Queue) -> dt.timedelta:
    return dt.timedelta(hours=queue.sla_hours * DUE_SOON_FRACTION)


def sla_state(exc: IntegrationException, now: dt.datetime | None = None) -> SlaState:
    """Where an exception stands against its queue's SLA at `now` (default: now).

    Resolved and ignored exceptions, and ones without a due time, are "ok": no clock runs.
    """
    now = now or timezone.now()
    if exc.due_at is None or exc.status not in ACTIVE_STATUSES:
        return SlaState.OK
    if now >= exc.due_at:
        return SlaState.BREACHED
    if now >= exc.due_at - due_soon_window(exc.queue):
        return SlaState.DUE_SOON
    return SlaState.OK


@dataclass
class SweepResult:
    escalated: int = 0
    woken: int = 0


def sweep(now: dt.datetime | None = None) -> SweepResult:
    """The five-minute sweep: escalate long breaches, bring ignored exceptions back."""
    now = now or timezone.now()
    return SweepResult(escalated=escalate_breaches(now), woken=ignoring.wake_due(now))


def escalate_breaches(now: dt.datetime) -> int:
    """Escalate, once each, the exceptions breached longer than their queue allows."""
    from . import alerts  # alerts import this module's states

    escalated = 0
    for queue in Queue.objects.filter(escalate_after_hours__isnull=False):
        limit = now - dt.timedelta(hours=queue.escalate_after_hours)
        due = list(
            IntegrationException.objects.filter(
                queue=queue,
                status__in=ACTIVE_STATUSES,
                escalated_at__isnull=True,
                due_at__lte=limit,
            )
            .select_related("queue", "run", "incident")
            .order_by("due_at")[: SWEEP_LIMIT - escalated]
        )
        for exc in due:
            with transaction.atomic():
                taken = IntegrationException.objects.filter(
                    pk=exc.pk, escalated_at__isnull=True, status__in=ACTIVE_STATUSES
                ).update(escalated_at=now)
                if not taken:
                    continue  # another sweep, or a person, got there first
                exc.escalated_at = now
                late = now - exc.due_at
                audit.record(
                    "exception.escalated",
                    f"Exception #{exc.pk} escalated: due {exc.due_at:%Y-%m-%d %H:%M} UTC in "
                    f"{queue}, {_hours(late)} past its SLA",
                    obj=exc,
                    correlation_id=exc.run.correlation_id if exc.run_id else "",
                    queue=queue.slug,
                )
                alerts.escalate(exc)
            escalated += 1
        if escalated >= SWEEP_LIMIT:
            break
    if escalated:
        logger.info("SLA sweep escalated %d exceptions", escalated)
    return escalated


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
