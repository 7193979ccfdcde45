"""Dashboard consumers of business events (independent of the other subscribers)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import shared_task
from django.utils import timezone

from .models import MilestoneFact

logger = logging.getLogger(__name__)


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


@shared_task(name="dashboards.verify_rollups")
def verify_rollups(days: int = 2) -> int:
    """Compare the KPI rollups of the last `days` days with the raw records; on a difference,
    log it and rebuild those days. Returns the number of rows that differed."""
    from . import rollups

    since = timezone.now() - dt.timedelta(days=days)
    found = rollups.check(since)
    if found:
        logger.error(
            "%d KPI rollup rows differ from the raw records since %s (first: %s); rebuilding",
            len(found),
            rollups.start_of_day(since),
            found[0],
        )
        rollups.rebuild(since)
    return len(found)


@shared_task(name="dashboards.evaluate_thresholds", ignore_result=True)
def evaluate_thresholds() -> int:
    """Read every KPI and queue threshold; open, raise or recover their alerts (each notice
    once, see dashboards.thresholds). Returns how many alerts changed."""
    from . import thresholds

    return len(thresholds.evaluate())
