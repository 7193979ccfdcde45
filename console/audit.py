"""Write to the audit trail: the one function every app uses to record an action."""

from __future__ import annotations

from typing import Any

from django.db import models

from .models import AuditEvent, User

SYSTEM = "system"


def record(
    action: str,
    summary: str,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    obj: models.Model | None = None,
    correlation_id: str = "",
    **data: Any,
) -> AuditEvent:
    """Append one audit event. `actor` None means the system (worker, scheduler)."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or (actor.get_username() if actor is not None else SYSTEM),
        action=action,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        correlation_id=correlation_id,
        summary=summary[:500],
        data=data,
    )


def record_many(events: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """Append several system events at once: (action, summary, correlation id, data)."""
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=None,
                actor_label=SYSTEM,
                action=action,
                correlation_id=correlation_id,
                summary=summary[:500],
                data=data,
            )
            for action, summary, correlation_id, data in events
        ]
    )


def record_each(
    action: str,
    items: list[tuple[models.Model, str, str, dict[str, Any]]],
    *,
    actor: User | None = None,
) -> None:
    """Append one event per object in one insert (a bulk action's chunk of hundreds):
    (object, summary, correlation id, data). `actor` None means the system."""
    person = actor if actor is not None and actor.is_authenticated else None
    label = actor.get_username() if actor is not None else SYSTEM
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=person,
                actor_label=label,
                action=action,
                object_type=obj._meta.label_lower,
                object_id=str(obj.pk),
                correlation_id=correlation_id,
                summary=summary[:500],
                data=data,
            )
            for obj, summary, correlation_id, data in items
        ]
    )
