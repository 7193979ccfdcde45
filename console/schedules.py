"""Jobs whose schedule a person edits (reporting extracts, reconciliation definitions): each
owns one django-celery-beat PeriodicTask with a crontab in UTC, so the schedule shows and can be
edited under Admin → Periodic tasks like every other job, and on the object itself."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask


def validate_schedule(value: str) -> None:
    """Five crontab fields: minute hour day-of-month month day-of-week (UTC)."""
    fields = value.split()
    if len(fields) != 5:
        raise ValidationError(
            "Give five crontab fields: minute hour day-of-month month day-of-week, "
            "for example '0 2 * * *' (daily at 02:00 UTC)."
        )
    try:
        crontab(*fields)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"Not a valid crontab schedule: {exc}") from exc


def crontab_for(schedule: str) -> CrontabSchedule:
    minute, hour, day_of_month, month_of_year, day_of_week = schedule.split()
    fields = {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
        "day_of_week": day_of_week,
        "timezone": "UTC",
    }
    return CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(
        **fields
    )


def schedule_of(cron: CrontabSchedule) -> str:
    return " ".join(
        [cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week]
    )


def sync_task(
    task: PeriodicTask | None,
    *,
    name: str,
    task_path: str,
    schedule: str,
    args: list[Any],
    enabled: bool,
    description: str,
) -> PeriodicTask:
    """Create or update a job's PeriodicTask to its schedule and enabled flag (saved only when
    something changed)."""
    if task is None:
        task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    wanted = {
        "name": name,
        "task": task_path,
        "crontab": crontab_for(schedule),
        "interval": None,
        "args": json.dumps(args),
        "enabled": enabled,
        "description": description,
    }
    changed = task.pk is None
    for field, value in wanted.items():
        if getattr(task, field) != value:
            setattr(task, field, value)
            changed = True
    if changed:
        task.save()
    return task


def next_run(task: PeriodicTask | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the scheduler next starts the job (None: disabled or no schedule)."""
    if task is None or not task.enabled or task.crontab is None:
        return None
    now = now or timezone.now()
    try:
        schedule = task.crontab.schedule
        last = task.last_run_at or now
        return now + schedule.remaining_estimate(last)
    except (ValueError, TypeError):
        return None
