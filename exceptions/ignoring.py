"""What "ignored" means, in one place: when an ignored exception comes back.

An exception is ignored in one of three ways, all held by `ignored_until`:

- **for good** (`ignored_until` is None): it stays ignored; a repeat of the same failure
  only counts another occurrence.
- **until a time** (`ignored_until` a real time): it stays ignored, repeats included, until
  that time; it is open again from then on (the next repeat, or the `wake_due` sweep, opens
  it).
- **until it happens again** (`ignored_until` is `UNTIL_IT_HAPPENS_AGAIN`, a time no clock
  reaches): the next repeat of the same failure opens it again.

An exception that wakes is open again, without its ignore reason and time (the audit trail
keeps both).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from console import audit

from .choices import ExceptionStatus
from .models import IntegrationException

#: the `ignored_until` of "until it happens again": never reached by time, woken by a repeat
UNTIL_IT_HAPPENS_AGAIN = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def until_recurs(exc: IntegrationException) -> bool:
    return exc.ignored_until is not None and exc.ignored_until >= UNTIL_IT_HAPPENS_AGAIN


def describe(exc: IntegrationException) -> str:
    """The ignore, in words ("" when the exception is not ignored)."""
    if exc.status != ExceptionStatus.IGNORED:
        return ""
    if exc.ignored_until is None:
        return "Ignored for good"
    if until_recurs(exc):
        return "Ignored until it happens again"
    return f"Ignored until {exc.ignored_until:%Y-%m-%d %H:%M} UTC"


def wakes_on_repeat(exc: IntegrationException, now: dt.datetime) -> bool:
    """Does a repeat of the failure at `now` open this ignored exception again?"""
    if exc.status != ExceptionStatus.IGNORED or exc.ignored_until is None:
        return False
    return until_recurs(exc) or exc.ignored_until <= now


def fields_after_repeat(exc: IntegrationException, now: dt.datetime) -> dict[str, Any]:
    """The fields a repeat sets on an unresolved exception: open again, unless it is
    ignored and stays ignored, or a person is working on it (in progress). Audits a
    wake-up."""
    if exc.status == ExceptionStatus.IGNORED and not wakes_on_repeat(exc, now):
        return {"status": ExceptionStatus.IGNORED}
    if exc.status == ExceptionStatus.IN_PROGRESS:
        return {"status": ExceptionStatus.IN_PROGRESS}
    if exc.status == ExceptionStatus.IGNORED:
        audit.record(
            "exception.reopened",
            f"Exception #{exc.pk} open again: it happened again ({describe(exc).lower()})",
            obj=exc,
            correlation_id=exc.run.correlation_id if exc.run_id else "",
        )
        return {"status": ExceptionStatus.OPEN, "ignored_until": None, "ignored_reason": ""}
    return {"status": ExceptionStatus.OPEN}


@transaction.atomic
def wake_due(now: dt.datetime | None = None, *, limit: int = 1000) -> int:
    """Open again (at most `limit`) the exceptions ignored until a time that has come;
    return how many."""
    now = now or timezone.now()
    due = list(
        IntegrationException.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=ExceptionStatus.IGNORED, ignored_until__lte=now)
        .select_related("run")
        .order_by("ignored_until", "pk")[:limit]
    )
    for exc in due:
        audit.record(
            "exception.reopened",
            f"Exception #{exc.pk} open again: {describe(exc).lower()}",
            obj=exc,
            correlation_id=exc.run.correlation_id if exc.run_id else "",
        )
    IntegrationException.objects.filter(pk__in=[e.pk for e in due]).update(
        status=ExceptionStatus.OPEN, ignored_until=None, ignored_reason=""
    )
    return len(due)
