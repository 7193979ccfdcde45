"""The engine's own subscribers to business events (see integrations.outbox): each is a
thin task that starts a workflow run or does one independent job."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import outbox, timeline
from .choices import Trigger
from .models import Connection
from .queues import queue_for
from .services import start_run
from .workflows.milestone_billing import WORKFLOW as MILESTONE_BILLING


@shared_task(name="integrations.start_milestone_billing")
def start_milestone_billing(event: dict[str, Any]) -> int | None:
    """milestone.completed -> one release-milestone-billing run per billable milestone."""
    psa = Connection.objects.get(pk=event["psa_connection"])
    if event.get("billable") is False:
        timeline.stamp(
            event.get("deal_key") or f"milestone:{psa.pk}:{event['story_id']}",
            f"milestone_{event['story_id']}_completed",
            source=psa.name,
        )
        return None
    correlation = f"milestone:{psa.pk}:{event['story_id']}"
    run, created = start_run(
        MILESTONE_BILLING,
        correlation,
        trigger=Trigger.WEBHOOK,
        source_connection=psa,
        payload=event,
        business_key=event.get("deal_key") or correlation,
    )
    if created:
        timeline.stamp(run.business_key, "milestone_completed", source=psa.name)
    return run.pk


def register() -> None:
    """Subscribe the engine's consumers (called from IntegrationsConfig.ready)."""
    outbox.subscribe(
        "milestone.completed",
        "integrations.start_milestone_billing",
        queue=lambda event: queue_for(event.get("psa_connection")),
    )
    outbox.subscribe("milestone.completed", "integrations.notify_subscribers")
