"""Business-transaction bookkeeping: expectations (deadlines a transaction must meet) and
business timestamps (when it passed each point). The engine records them; the exception
queues hear about stuck transactions through `transaction_stuck` / `expectations_met`."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from .models import BusinessTimestamp, Expectation
from .signals import expectations_met, transaction_stuck

logger = logging.getLogger(__name__)


def expect(
    business_key: str,
    milestone: str,
    within: dt.timedelta,
    *,
    legal_entity_code: str = "",
    region: str = "",
) -> Expectation:
    """Start the clock: `business_key` must reach `milestone` within `within` (once)."""
    expectation, _ = Expectation.objects.get_or_create(
        business_key=business_key,
        milestone=milestone,
        defaults={
            "due_at": timezone.now() + within,
            "legal_entity_code": legal_entity_code,
            "region": region,
        },
    )
    return expectation


def expect_many(business_keys: list[str], milestone: str, within: dt.timedelta) -> None:
    """`expect` for several transactions at once (a poll's new runs), in one insert."""
    due = timezone.now() + within
    Expectation.objects.bulk_create(
        [Expectation(business_key=key, milestone=milestone, due_at=due) for key in business_keys],
        ignore_conflicts=True,
    )


def meet(business_key: str, milestone: str) -> None:
    """The milestone is reached: stop the clock (and clear a stuck flag)."""
    meet_many([business_key], milestone)


def meet_many(business_keys: list[str], milestone: str) -> None:
    """`meet` for several transactions at once (a batch of runs), in two queries."""
    with transaction.atomic():
        met = list(
            Expectation.objects.select_for_update(of=("self",)).filter(
                business_key__in=business_keys, milestone=milestone, met_at__isnull=True
            )
        )
        now = timezone.now()
        Expectation.objects.filter(pk__in=[e.pk for e in met]).update(met_at=now)
        for expectation in met:
            expectation.met_at = now
        if met:
            expectations_met.send(sender=Expectation, expectations=met)


def stamp(business_key: str, name: str, at: dt.datetime | None = None, *, source: str = "") -> None:
    """Record when the transaction passed `name` (the first time counts)."""
    BusinessTimestamp.objects.get_or_create(
        business_key=business_key,
        name=name,
        defaults={"at": at or timezone.now(), "source": source},
    )


def stamp_many(
    stamps: list[tuple[str, str]] | list[tuple[str, str, dt.datetime]], *, source: str = ""
) -> None:
    """`stamp` for many (business key, name[, at]) at once (default at: now); the first
    time still counts."""
    now = timezone.now()
    BusinessTimestamp.objects.bulk_create(
        [
            BusinessTimestamp(
                business_key=stamp[0],
                name=stamp[1],
                at=stamp[2] if len(stamp) > 2 else now,
                source=source,
            )
            for stamp in stamps
        ],
        ignore_conflicts=True,
    )


def detect_stuck(now: dt.datetime | None = None) -> int:
    """Flag every overdue, unmet expectation once; return how many were flagged."""
    now = now or timezone.now()
    flagged = 0
    overdue = Expectation.objects.filter(
        met_at__isnull=True, stuck_at__isnull=True, due_at__lt=now
    ).order_by("due_at")[:1000]
    for expectation in overdue:
        with transaction.atomic():
            updated = Expectation.objects.filter(pk=expectation.pk, stuck_at__isnull=True).update(
                stuck_at=now
            )
            if not updated:
                continue
            expectation.stuck_at = now
            transaction_stuck.send(sender=Expectation, expectation=expectation)
        flagged += 1
        logger.warning(
            "transaction %s is stuck: %s was due %s",
            expectation.business_key,
            expectation.milestone,
            expectation.due_at,
        )
    return flagged
