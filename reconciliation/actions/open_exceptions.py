"""Open exceptions for differences: each becomes work in the queue of the team that owns the
comparison (catalogue `owner`), through the exception queues' public service.

The failure code is `reconciliation_<class>_<owner>` (exceptions.classification), so the
classification names the owning team and the routing rules place the exception (by code,
legal entity, region or amount; with no rule, the owning team's queue of the region). The
exception is about the comparison's entity and key, carries the money at risk, and links back
to the difference; the difference links to it and is `exception_opened`. Seeing the same
difference again (a later run) adds an occurrence to the open exception rather than a second
one. Resolving the exception leaves the difference as it is: the next run tells whether the
systems agree again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.urls import reverse

from console import audit
from exceptions import services
from exceptions.classification import RULES, reconciliation_code
from integrations.models import LegalEntity
from integrations.workflows.failures import StepFailure

from .. import catalogue, display
from ..display import MONEY_FIELDS, amount
from ..models import Definition, Difference, Kind, Side
from ..records import day_of
from .common import Outcome, require_actor


def money_details(diff: Difference, comparison: catalogue.Comparison) -> dict[str, str]:
    """The money at risk, as the exception carries it (none for comparisons without amounts,
    or nothing at risk)."""
    if not comparison.compares_amount or not diff.currency or not diff.amount_at_risk:
        return {}
    return {"amount": str(amount(diff.amount_at_risk)), "currency": diff.currency}


def refusal(diff: Difference) -> str | None:
    if diff.state == Difference.State.ACCEPTED:
        return "Accepted as it is: no exception needed."
    if diff.exception_id is not None:
        return f"Exception #{diff.exception_id} is already open for it."
    return None


def fingerprint_key(definition: Definition) -> tuple[str, ...]:
    """What makes "the same difference" across runs (with its code, entity and key)."""
    return (f"reconciliation:{definition.name}",)


def failure_for(diff: Difference, comparison: catalogue.Comparison) -> StepFailure:
    """The difference as a failure the exception queues understand. No connection: the
    exception's Retry would poll it, which re-syncs nothing (Re-sync is on the difference)."""
    definition = diff.run.definition
    holder = definition.source if diff.side == Side.SOURCE else definition.target
    what = {
        Kind.MISSING_IN_TARGET: f"is in {definition.source} but not in {definition.target}",
        Kind.MISSING_IN_SOURCE: f"is in {definition.target} but not in {definition.source}",
        Kind.FIELD_MISMATCH: f"differs between {definition.source} and {definition.target}",
        Kind.DUPLICATE: f"is held more than once in {holder}",
    }[Kind(diff.kind)]
    rows = display.field_differences(diff, True)
    # the explanation is shown to everyone: money stays in the (masked) details
    changes = "; ".join(
        f"{row['field']}: {row['source'] or '—'} vs {row['target'] or '—'}"
        for row in rows
        if diff.kind == Kind.FIELD_MISMATCH and not row["field"].startswith(MONEY_FIELDS)
    )
    if diff.kind == Kind.FIELD_MISMATCH and any(r["field"].startswith(MONEY_FIELDS) for r in rows):
        changes = "; ".join(filter(None, ["the amount", changes]))
    url = reverse("reconciliation:difference", args=[diff.pk])
    message = (
        f"{comparison.entity.replace('_', ' ').capitalize()} {diff.key} {what}"
        f"{f' ({changes})' if changes else ''}. Found by reconciliation run #{diff.run_id} "
        f"of {definition.name}: {url}"
    )
    return StepFailure(
        kind="business",
        code=reconciliation_code(diff.kind, comparison.owner),
        message=message,
        entity_type=comparison.entity,
        entity_ref=diff.key,
        details={
            **money_details(diff, comparison),
            "reconciliation": {
                "definition": definition.name,
                "run": diff.run_id,
                "difference": diff.pk,
                "difference_url": url,
                "kind": diff.kind,
            },
            # keyed by field, so the money rows are masked like every financial key
            "differences": {
                row["field"]: {"source": row["source"], "target": row["target"]} for row in rows
            },
        },
        payload={
            "source": {
                "system": str(definition.source),
                "record": diff.source_id,
                "status": diff.source_status,
                "date": str(day_of(diff.source_day) or ""),
                "fields": diff.source_fields or {},
            },
            "target": {
                "system": str(definition.target),
                "record": diff.target_id,
                "status": diff.target_status,
                "date": str(day_of(diff.target_day) or ""),
                "fields": diff.target_fields or {},
            },
        },
    )


def open_exceptions(differences: Iterable[Difference], user: Any) -> list[Outcome]:
    """Open (or add an occurrence to) one exception per difference; link them."""
    chosen = require_actor(user, differences)
    regions = dict(LegalEntity.objects.values_list("code", "region"))
    outcomes: list[Outcome] = []
    for diff in chosen:
        reason = refusal(diff)
        definition = diff.run.definition
        comparison = catalogue.get(definition.kind)
        code = reconciliation_code(diff.kind, comparison.owner)
        if reason is None and code not in RULES:
            reason = f"No exception code for differences owned by {comparison.owner}."
        if reason is not None:
            outcomes.append(Outcome(diff, False, reason))
            continue
        with transaction.atomic():
            exc = services.open_exception(
                failure_for(diff, comparison),
                key=fingerprint_key(definition),
                region=regions.get(diff.legal_entity, ""),
                legal_entity_code=diff.legal_entity,
            )
            diff.exception = exc
            diff.state = Difference.State.EXCEPTION_OPENED
            Difference.objects.filter(pk=diff.pk).update(
                exception=exc, state=Difference.State.EXCEPTION_OPENED
            )
            audit.record(
                "reconciliation.exception_opened",
                f"Exception #{exc.pk} in {exc.queue} for {diff.key} "
                f"({diff.get_kind_display().lower()}) of {definition.name}",
                actor=user,
                obj=diff,
                run=diff.run_id,
                key=diff.key,
                exception=exc.pk,
                queue=exc.queue.slug,
            )
        outcomes.append(Outcome(diff, True, f"Exception #{exc.pk} opened in {exc.queue}."))
    return outcomes
