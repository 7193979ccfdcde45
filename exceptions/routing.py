"""Routing: which queue an exception lands in.

First version: the owning team's queue, preferring one whose name carries the exception's
region (e.g. "PMO EMEA") when the team keeps per-region queues. Unroutable exceptions land in
the fallback queue, owned by IT, so nothing is ever left without an owner.
"""

from __future__ import annotations

from console.choices import TeamKind
from console.models import Team

from .models import Queue

FALLBACK_SLUG = "unrouted"


def route(owner: str, *, region: str = "") -> Queue:
    queues = list(Queue.objects.filter(team__kind=owner).order_by("name"))
    if region:
        for queue in queues:
            if region.lower() in queue.name.lower():
                return queue
    if queues:
        return queues[0]
    return fallback_queue()


def fallback_queue() -> Queue:
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
