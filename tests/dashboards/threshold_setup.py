"""What the threshold tests set up: billing runs in the KPI rollups, and thresholds saved the
audited way (no actor) on the billing exception rate, on billed money and on a queue."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from console.models import Team
from dashboards import rollups, thresholds
from dashboards.models import KpiThreshold
from dashboards.observations import Dims, Observation
from exceptions.models import Queue

#: where the Finance queue's alerts go by webhook (the `finance_queue` fixture)
WEBHOOK = "https://hooks.example.com/services/T000/B000/KPI"


def billing_runs(*, with_exception: int, without: int, entity: str = "DE01") -> None:
    """Billing runs as the KPI rollups record them: 1 if a run needed a person, 0 if not."""
    at = timezone.now() - dt.timedelta(hours=2)
    dims = Dims(legal_entity_code=entity, region="EMEA")
    rollups.record_many(
        [Observation("billing_exception_rate", at, 1, dims)] * with_exception
        + [Observation("billing_exception_rate", at, 0, dims)] * without
    )


def billing_threshold(team: Team, *, entity: str = "DE01") -> KpiThreshold:
    """The billing exception rate of `entity` ('' for all): a warning from 2 %, a breach
    from 5 %."""
    return thresholds.save_threshold(
        KpiThreshold(
            kpi="billing_exception_rate",
            legal_entity_code=entity,
            warning=Decimal(2),
            breach=Decimal(5),
            team=team,
        ),
        actor=None,
    )


def money_threshold(team: Team) -> KpiThreshold:
    """Billed money (higher is better): a warning below 1,000, a breach below 500."""
    return thresholds.save_threshold(
        KpiThreshold(
            kpi="billed_amount",
            warning=Decimal(1000),
            breach=Decimal(500),
            direction="higher",
            team=team,
        ),
        actor=None,
    )


def queue_threshold(queue: Queue, *, warning: int, breach: int) -> KpiThreshold:
    """A queue's active exceptions, owned by the queue's team."""
    return thresholds.save_threshold(
        KpiThreshold(
            queue=queue,
            measure=KpiThreshold.Measure.ACTIVE,
            warning=Decimal(warning),
            breach=Decimal(breach),
            team=queue.team,
        ),
        actor=None,
    )
