"""Dashboard consumers of business events (independent of the other subscribers)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from .models import MilestoneFact


@shared_task(name="dashboards.record_milestone")
def record_milestone(event: dict[str, Any]) -> bool:
    """milestone.completed -> one analytics row per milestone (repeats are no-ops)."""
    _fact, created = MilestoneFact.objects.get_or_create(
        psa_connection_id=int(event["psa_connection"]),
        story_id=str(event["story_id"]),
        defaults={
            "workspace_id": str(event.get("workspace_id", "")),
            "deal_key": str(event.get("deal_key", "")),
        },
    )
    return created
