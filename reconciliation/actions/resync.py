"""Re-sync: ask the comparison's re-syncer to bring the selected records into step again.

A re-syncer is `resync(definition, keys) -> {key: outcome}` (reconciliation.catalogue): it
starts, for each key it can, the workflow that writes the record again (with its idempotency
key, so nothing is created twice) and answers per key in words. An outcome that starts with
"queued" means the re-sync was accepted: the difference is then `resync_queued` and the next
run shows whether it worked; any other outcome is the reason it was not, shown as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction

from console import audit

from .. import catalogue
from ..models import Definition, Difference, Kind
from .common import Outcome, require_actor

logger = logging.getLogger(__name__)

QUEUED = "queued"


def accepted(outcome: Any) -> bool:
    """Whether a re-syncer's outcome for a key says the re-sync was queued."""
    return isinstance(outcome, str) and outcome.strip().lower().startswith(QUEUED)


def refusal(diff: Difference) -> str | None:
    """Why a difference cannot be re-synced, before asking the re-syncer (None: it can)."""
    if diff.state == Difference.State.ACCEPTED:
        return "Accepted as it is: nothing to re-sync."
    if diff.state == Difference.State.RESYNC_QUEUED:
        return "Already queued for re-sync; the next run shows the result."
    if diff.kind == Kind.DUPLICATE:
        return (
            f"A duplicate is removed in the system holding it twice ({diff.side}); "
            "re-sync cannot merge records."
        )
    return None


def resync(differences: Iterable[Difference], user: Any) -> list[Outcome]:
    """Re-sync the differences (grouped per definition, one re-syncer call each)."""
    chosen = require_actor(user, differences)
    outcomes: list[Outcome] = []
    groups: dict[int, list[Difference]] = {}
    for diff in chosen:
        reason = refusal(diff)
        if reason is not None:
            outcomes.append(Outcome(diff, False, reason))
        else:
            groups.setdefault(diff.run.definition_id, []).append(diff)
    for group in groups.values():
        outcomes.extend(_resync_group(group[0].run.definition, group, user))
    return outcomes


def _resyncer(definition: Definition) -> tuple[Callable[..., Any] | None, str]:
    comparison = catalogue.get(definition.kind)
    try:
        return comparison.resyncer(), ""
    except ImportError:
        return None, f"Re-sync of {comparison.name} is not available (no {comparison.resync})."


def _resync_group(definition: Definition, group: list[Difference], user: Any) -> list[Outcome]:
    resyncer, unavailable = _resyncer(definition)
    if resyncer is None:
        return [Outcome(diff, False, unavailable) for diff in group]
    keys = sorted({diff.key for diff in group})
    try:
        answers = resyncer(definition, keys) or {}
    except Exception as exc:  # a vendor or workflow failure: said, not raised
        logger.exception("re-sync of %s keys of %s failed", len(keys), definition.name)
        message = f"The re-sync failed: {type(exc).__name__}: {exc}"[:500]
        return [Outcome(diff, False, message) for diff in group]
    outcomes = []
    for diff in group:
        answer = answers.get(diff.key)
        if answer is None:
            outcomes.append(Outcome(diff, False, "The re-syncer gave no outcome for this key."))
            continue
        ok = accepted(answer)
        if ok:
            diff.state = Difference.State.RESYNC_QUEUED
        outcomes.append(Outcome(diff, ok, str(answer)[:500]))
    with transaction.atomic():
        queued = [o.difference.pk for o in outcomes if o.ok]
        if queued:
            Difference.objects.filter(pk__in=queued).update(state=Difference.State.RESYNC_QUEUED)
        audit.record_each(
            "reconciliation.resync",
            [
                (
                    o.difference,
                    f"Re-sync of {o.difference.key} ({o.difference.get_kind_display().lower()}) "
                    f"in {definition.name}: {o.message}",
                    "",
                    {
                        "run": o.difference.run_id,
                        "key": o.difference.key,
                        "queued": o.ok,
                        "outcome": o.message,
                    },
                )
                for o in outcomes
            ],
            actor=user,
        )
    return outcomes
