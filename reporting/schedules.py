"""Each Extract has one django-celery-beat PeriodicTask calling `reporting.run_extract`, so its
schedule shows and can be edited under Admin → Periodic tasks like the other jobs. Saving the
Extract updates the task; editing the task's crontab or enabled flag updates the Extract
(reporting.receivers)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from console import schedules
from console.schedules import schedule_of, sync_task

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

__all__ = ["TASK", "next_run", "schedule_of", "sync_periodic_task", "task_name"]

if TYPE_CHECKING:
    from .models import Extract

TASK = "reporting.run_extract"


def task_name(extract: Extract) -> str:
    return f"Reporting extract: {extract.name}"


def sync_periodic_task(extract: Extract) -> PeriodicTask:
    """Create or update the extract's PeriodicTask to its schedule and enabled flag."""
    from .models import Extract as ExtractModel

    task = sync_task(
        extract.periodic_task,
        name=task_name(extract),
        task_path=TASK,
        schedule=extract.schedule,
        args=[extract.pk],
        enabled=extract.enabled,
        description=f"Writes the {extract.get_dataset_display().lower()} extract "
        f"'{extract.name}' (edit the schedule here or on the extract).",
    )
    if extract.periodic_task_id != task.pk:
        ExtractModel.objects.filter(pk=extract.pk).update(periodic_task=task)
        extract.periodic_task = task
    return task


def next_run(extract: Extract, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the scheduler next starts the extract (None: disabled or no schedule)."""
    return schedules.next_run(extract.periodic_task, now)
