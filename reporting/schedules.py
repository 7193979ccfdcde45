"""Each Extract has one django-celery-beat PeriodicTask calling `reporting.run_extract`, so its
schedule shows and can be edited under Admin → Periodic tasks like the other jobs. Saving the
Extract updates the task (console.schedules.PeriodicTaskOwner); editing the task's crontab or
enabled flag updates the Extract (reporting.receivers)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from console import schedules
from console.schedules import schedule_of

__all__ = ["TASK", "next_run", "schedule_of", "task_name"]

if TYPE_CHECKING:
    from .models import Extract

TASK = "reporting.run_extract"


def task_name(extract: Extract) -> str:
    return f"Reporting extract: {extract.name}"


def next_run(extract: Extract, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the scheduler next starts the extract (None: disabled or no schedule)."""
    return schedules.next_run(extract.periodic_task, now)
