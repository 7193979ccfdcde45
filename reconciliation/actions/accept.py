"""Accept differences as they are, with the reason (required, audited).

An acceptance holds the difference's key, class and values (`differences.signature`): later
runs that find the same difference with the same values count it accepted
(compare.apply_acceptances); a changed value is a new, open difference. An exception opened
for an accepted difference is resolved with the reason: nothing is left to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from console import audit
from exceptions import services
from exceptions.choices import ExceptionStatus

from ..differences import signature
from ..models import Acceptance, Difference
from .common import InvalidInput, Outcome, require_actor

MAX_REASON = 1000


def clean_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("Give the reason for accepting: it is kept with the acceptance.")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"Keep the reason under {MAX_REASON} characters.")
    return text


def accept(differences: Iterable[Difference], user: Any, reason: str | None) -> list[Outcome]:
    """Accept each difference with `reason` (the run's summary stays what it found: the
    acceptance counts from the next run)."""
    chosen = require_actor(user, differences)
    text = clean_reason(reason)
    outcomes: list[Outcome] = []
    for diff in chosen:
        if diff.state == Difference.State.ACCEPTED:
            outcomes.append(Outcome(diff, False, "Already accepted."))
            continue
        definition = diff.run.definition
        with transaction.atomic():
            acceptance, _ = Acceptance.objects.get_or_create(
                definition=definition,
                key=diff.key,
                kind=diff.kind,
                signature=signature(diff),
                defaults={"reason": text, "accepted_by": user},
            )
            diff.state, diff.acceptance = Difference.State.ACCEPTED, acceptance
            Difference.objects.filter(pk=diff.pk).update(
                state=Difference.State.ACCEPTED, acceptance=acceptance
            )
            audit.record(
                "reconciliation.accepted",
                f"Difference {diff.key} ({diff.get_kind_display().lower()}) of "
                f"{definition.name} accepted: {acceptance.reason}",
                actor=user,
                obj=diff,
                run=diff.run_id,
                key=diff.key,
                acceptance=acceptance.pk,
                reason=acceptance.reason,
            )
            exc = diff.exception
            if exc is not None and exc.status != ExceptionStatus.RESOLVED:
                services.resolve(
                    [exc], reason=f"Reconciliation difference accepted: {text}", actor=user
                )
        outcomes.append(Outcome(diff, True, "Accepted."))
    return outcomes
