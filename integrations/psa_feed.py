"""The PSA's change feed (Kantata's Subscribed Events), read with a cursor watermark.

- A milestone story that became completed is published as `milestone.completed`, which fans
  out to its subscribers (milestone billing, the analytics store, customer notifications).
- A change to a project's budget in the PSA is reviewed by governance: the CRM contract owns
  the budget, so the change is not passed on and opens a system-of-record violation (unless
  it is the echo of Throughline's own write, which is dropped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from . import bindings, governance, outbox
from .connectors.registry import build_client
from .models import Connection, Watermark
from .telemetry import CallBuffer

logger = logging.getLogger(__name__)

EVENTS_STREAM = "kantata.events"
MAX_PAGES = 25
#: workspace fields that carry the budget (owned by the CRM contract)
BUDGET_FIELDS = ("price", "price_in_cents", "budgeted")


@dataclass
class FeedResult:
    events: int = 0
    milestones: int = 0
    reviewed: int = 0


def new_value(change: Any) -> Any:
    """Kantata reports a change as [old, new]; tolerate a bare new value."""
    if isinstance(change, list | tuple) and len(change) == 2:
        return change[1]
    return change


def read_psa_events(connection: Connection) -> FeedResult:
    mark, _ = Watermark.objects.get_or_create(connection=connection, stream=EVENTS_STREAM)
    buffer = CallBuffer()
    client = build_client(connection, on_call=buffer)
    result = FeedResult()
    cursor = mark.value or None
    try:
        for _page in range(MAX_PAGES):
            events, next_cursor = client.events(cursor, limit=200)
            for event in events:
                result.events += 1
                _handle(connection, client, event, result)
            if next_cursor is not None:
                cursor = next_cursor
                mark.value = next_cursor
                mark.save(update_fields=["value", "updated_at"])
            if len(events) < 200:
                break
    finally:
        client.close()
        buffer.flush()
    return result


def _handle(connection: Connection, client: Any, event: dict[str, Any], result: FeedResult) -> None:
    changes = event.get("payload_changes") or {}
    subject = event.get("subject_type")
    api_user = str(connection.settings.get("api_user_id") or "")
    if api_user and str(event.get("user_id")) == api_user:
        return  # the echo of Throughline's own write (it acts as the API user)
    subject_id = str(event.get("subject_id"))
    if subject == "Story" and new_value(changes.get("state")) == "completed":
        story = client.get("stories", subject_id)
        if story.get("story_type") != "milestone":
            return
        workspace_id = str(story.get("workspace_id", ""))
        payload = {
            "psa_connection": connection.pk,
            "story_id": subject_id,
            "workspace_id": workspace_id,
            "event_id": str(event.get("id", "")),
            "deal_key": bindings.canonical_key(connection, "project", workspace_id) or "",
            # a milestone of a time-and-materials plan marks progress: it is not invoiced
            "billable": story.get("billable") is not False,
        }
        with transaction.atomic():
            outbox.publish(
                "milestone.completed", payload, key=f"milestone:{connection.pk}:{subject_id}"
            )
        result.milestones += 1
    elif subject == "Workspace":
        budget = {k: new_value(v) for k, v in changes.items() if k in BUDGET_FIELDS}
        if budget:
            governance.review_change(
                connection,
                "project",
                subject_id,
                budget,
                canonical_fields=dict.fromkeys(BUDGET_FIELDS, "budget"),
            )
            result.reviewed += 1
