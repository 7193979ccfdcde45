"""How much work waits in each queue: its active exceptions (open, in progress, retry queued)
and how many of them are past their SLA due time.

One grouped count over the active work only, which the partial (queue, due_at) index of
active exceptions answers on its own, rather than a join of every queue with every
exception ever raised: at a million exceptions, most of them resolved or ignored, it reads
only the index entries of the active ones. The queue list page and /api/v1/queues/ both
count with `with_counts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from .choices import ACTIVE_STATUSES
from .models import IntegrationException, Queue


@dataclass(frozen=True)
class QueueCounts:
    active: int = 0
    breached: int = 0


NONE = QueueCounts()


def active_counts(queue_ids: Iterable[int] | None = None) -> dict[int, QueueCounts]:
    """{queue id: its active and SLA-breached counts} for the given queues (every queue when
    None); a queue without active work is left out."""
    active = IntegrationException.objects.filter(status__in=ACTIVE_STATUSES)
    if queue_ids is not None:
        active = active.filter(queue_id__in=list(queue_ids))
    rows = (
        active.values("queue")
        .annotate(
            # columns of that index, not the id: the index alone answers it
            active=Count("queue"),
            breached=Count("due_at", filter=Q(due_at__lte=timezone.now())),
        )
        .order_by()
    )
    return {row["queue"]: QueueCounts(row["active"], row["breached"]) for row in rows}


def with_counts(queues: Iterable[Queue]) -> list[Queue]:
    """Set `active_count` and `breached_count` on each queue (one query for them all);
    returns them as a list."""
    found = list(queues)
    counts = active_counts([queue.pk for queue in found]) if found else {}
    for queue in found:
        mine = counts.get(queue.pk, NONE)
        queue.active_count = mine.active
        queue.breached_count = mine.breached
    return found
