"""Routing defaults: the owning team's queue and the fallback queue.

The ordered routing rules (exceptions.rules) decide first. When no rule matches, an exception
goes to the queue of the team its classification names as owner, preferring one whose name
carries the exception's region (e.g. "PMO EMEA") when the team keeps per-region queues. A team
without a queue sends it to the fallback queue (the queue marked as fallback, else "Unrouted",
owned by IT), so nothing is ever left without an owner.
"""

from __future__ import annotations

from console.choices import TeamKind
from console.models import Team

from .models import Queue

FALLBACK_SLUG = "unrouted"


def route(owner: str, *, region: str = "") -> Queue:
    return team_queue(owner, region=region) or fallback_queue()


def team_queue(owner: str, *, region: str = "") -> Queue | None:
    """The owning team's queue, preferring one named after the region; None if it has none."""
    queues = list(Queue.objects.filter(team__kind=owner).select_related("team").order_by("name"))
    if region:
        for queue in queues:
            if region.lower() in queue.name.lower():
                return queue
    return queues[0] if queues else None


def fallback_queue() -> Queue:
    """The queue marked as fallback (first by name), else "Unrouted", owned by IT."""
    marked = Queue.objects.filter(is_fallback=True).select_related("team").order_by("name").first()
    if marked is not None:
        return marked
    team, _ = Team.objects.get_or_create(slug="it", defaults={"name": "IT", "kind": TeamKind.IT})
    queue, _ = Queue.objects.get_or_create(
        slug=FALLBACK_SLUG,
        defaults={
            "name": "Unrouted",
            "team": team,
            "description": "Exceptions no routing rule placed; IT sorts them.",
        },
    )
    return queue
