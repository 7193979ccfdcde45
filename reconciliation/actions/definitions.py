"""Changing a definition (its tolerances, what is compared, its schedule) and running it now.
Both take an actor who may act on reconciliation; both are audited."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from console import audit

from .. import runs
from ..models import Definition, Run
from .common import ActionRefused, InvalidInput, NotAllowed
from .permissions import REFUSAL, can_act

#: what people change on a definition (the rest is set up once: names and connections)
EDITABLE = (
    "amount_tolerance_cents",
    "date_tolerance_days",
    "compare_status",
    "settle_minutes",
    "schedule",
    "full_pull_every",
    "enabled",
)


def update_definition(definition: Definition, user: Any, changes: dict[str, Any]) -> list[str]:
    """Apply `changes` (only EDITABLE fields), validated like the model; audit what changed.
    Returns the names of the fields that changed (none: nothing saved)."""
    if not can_act(user):
        raise NotAllowed(REFUSAL)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidInput(f"These fields cannot be changed here: {', '.join(unknown)}.")
    before = {name: getattr(definition, name) for name in EDITABLE}
    for name, value in changes.items():
        setattr(definition, name, value)
    try:
        definition.full_clean()
    except ValidationError as exc:
        for name, value in before.items():
            setattr(definition, name, value)
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise InvalidInput(problems) from exc
    changed = [name for name in EDITABLE if getattr(definition, name) != before[name]]
    if not changed:
        return []
    with transaction.atomic():
        definition.save()
        words = ", ".join(f"{n} {before[n]} → {getattr(definition, n)}" for n in changed)
        audit.record(
            "reconciliation.definition_changed",
            f"Reconciliation definition {definition.name} changed: {words}",
            actor=user,
            obj=definition,
            changes={name: [str(before[name]), str(getattr(definition, name))] for name in changed},
        )
    return changed


def start_run(definition: Definition, user: Any, *, full: bool = False) -> Run:
    """Queue a run now (audited by reconciliation.runs); refused while one is in progress."""
    if not can_act(user):
        raise NotAllowed(REFUSAL)
    with transaction.atomic():
        # one at a time per definition: two clicks at once queue one run
        locked = Definition.objects.select_for_update().get(pk=definition.pk)
        running = runs.active_run(locked)
        if running is not None:
            state = running.get_status_display().lower()
            raise ActionRefused(
                f"Run #{running.pk} of {definition.name} is still {state}; wait for it to finish."
            )
        return runs.request_run(locked, full=full, trigger="manual", user=user)
