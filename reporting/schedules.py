"""Each Extract has one django-celery-beat PeriodicTask calling `reporting.run_extract`, so its
schedule shows and can be edited under Admin → Periodic tasks like the other jobs. Saving the
Extract updates the task; editing the task's crontab or enabled flag updates the Extract
(reporting.receivers)."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

if TYPE_CHECKING:
    from .models import Extract

TASK = "reporting.run_extract"


def task_name(extract: Extract) -> str:
    return f"Reporting extract: {extract.name}"


def crontab_for(schedule: str) -> CrontabSchedule:
    minute, hour, day_of_month, month_of_year, day_of_week = schedule.split()
    found = CrontabSchedule.objects.filter(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone="UTC",
    ).first()
    return found or CrontabSchedule.objects.create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone="UTC",
    )


def schedule_of(cron: CrontabSchedule) -> str:
    return " ".join(
        [cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week]
    )


def sync_periodic_task(extract: Extract) -> PeriodicTask:
    """Create or update the extract's PeriodicTask to its schedule and enabled flag."""
    from .models import Extract as ExtractModel

    task = extract.periodic_task
    if task is None:
        task = PeriodicTask.objects.filter(name=task_name(extract)).first() or PeriodicTask(
            name=task_name(extract)
        )
    cron = crontab_for(extract.schedule)
    wanted = {
        "name": task_name(extract),
        "task": TASK,
        "crontab": cron,
        "interval": None,
        "args": json.dumps([extract.pk]),
        "enabled": extract.enabled,
        "description": f"Writes the {extract.get_dataset_display().lower()} extract "
        f"'{extract.name}' (edit the schedule here or on the extract).",
    }
    changed = task.pk is None
    for field, value in wanted.items():
        if getattr(task, field) != value:
            setattr(task, field, value)
            changed = True
    if changed:
        task.save()
    if extract.periodic_task_id != task.pk:
        ExtractModel.objects.filter(pk=extract.pk).update(periodic_task=task)
        extract.periodic_task = task
    return task


def next_run(extract: Extract, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the scheduler next starts the extract (None: disabled or no schedule)."""
    task = extract.periodic_task
    if task is None or not task.enabled or task.crontab is None:
        return None
    now = now or timezone.now()
    try:
        schedule = task.crontab.schedule
        last = task.last_run_at or now
        return now + schedule.remaining_estimate(last)
    except (ValueError, TypeError):
        return None
