"""A definition at a glance, for the definitions page and the API: its comparison, its latest
run, its latest finished run (the figures), and when its schedule runs it next."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from console.schedules import next_run

from . import catalogue, display
from .models import Definition, Run


@dataclass(frozen=True)
class DefinitionStatus:
    definition: Definition
    comparison: catalogue.Comparison
    last_run: Run | None
    last_done: Run | None
    next_run: dt.datetime | None

    @property
    def in_progress(self) -> bool:
        return self.last_run is not None and self.last_run.status in (
            Run.Status.QUEUED,
            Run.Status.PULLING,
            Run.Status.COMPARING,
        )

    @property
    def at_risk_totals(self) -> dict[str, Decimal]:
        """The last finished run's amount at risk per currency."""
        return display.at_risk_totals(self.last_done) if self.last_done else {}


def status_of(definition: Definition) -> DefinitionStatus:
    runs = Run.objects.filter(definition=definition).order_by("-created_at", "-id")
    return DefinitionStatus(
        definition=definition,
        comparison=catalogue.get(definition.kind),
        last_run=runs.first(),
        last_done=runs.filter(status=Run.Status.DONE).first(),
        next_run=_to_minute(next_run(definition.periodic_task)),
    )


def _to_minute(when: dt.datetime | None) -> dt.datetime | None:
    """The scheduler's estimate (03:29:59.9996) to the minute it means (03:30)."""
    if when is None:
        return None
    return (when + dt.timedelta(seconds=30)).replace(second=0, microsecond=0)


def definitions() -> list[DefinitionStatus]:
    queryset = Definition.objects.select_related("source", "target", "periodic_task__crontab")
    return [status_of(d) for d in queryset]
