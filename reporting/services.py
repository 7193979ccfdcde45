"""What the page and the API do with extracts (one place, audited)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from console import audit
from console.models import User

from . import schedules
from .models import Extract, ExtractRun


@dataclass(frozen=True)
class ExtractStatus:
    extract: Extract
    last_run: ExtractRun | None
    last_file: ExtractRun | None
    next_run: dt.datetime | None


def status_of(extract: Extract) -> ExtractStatus:
    runs = extract.runs.all()
    return ExtractStatus(
        extract=extract,
        last_run=runs.first(),
        last_file=runs.filter(status=ExtractRun.Status.SUCCEEDED).first(),
        next_run=schedules.next_run(extract),
    )


def statuses() -> list[ExtractStatus]:
    return [status_of(e) for e in Extract.objects.select_related("periodic_task__crontab")]


def create_extract(actor: User, **fields: object) -> Extract:
    extract = Extract(**fields)
    extract.full_clean()
    extract.save()
    audit.record(
        "reporting.extract.created",
        f"Extract {extract.name} created: {extract.get_dataset_display()} as "
        f"{extract.get_format_display()}, schedule {extract.schedule}",
        actor=actor,
        obj=extract,
        dataset=extract.dataset,
        format=extract.format,
        schedule=extract.schedule,
    )
    return extract


def request_run(extract: Extract, actor: User) -> None:
    """Queue a run of `extract` now (outside its schedule)."""
    from .tasks import run_extract

    audit.record(
        "reporting.extract.run_requested",
        f"Run of extract {extract.name} requested",
        actor=actor,
        obj=extract,
    )
    run_extract.delay(extract.pk, actor.pk)
