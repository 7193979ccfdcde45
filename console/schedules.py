"""Jobs whose schedule a person edits (reporting extracts, reconciliation definitions): each
owns one django-celery-beat PeriodicTask with a crontab in UTC, so the schedule shows and can be
edited under Admin → Periodic tasks like every other job, and on the object itself.

A model that owns its task subclasses `PeriodicTaskOwner` (saving it updates the task, deleting
it deletes the task) and calls `follow_task_edits` from its app's receivers (editing the task or
its crontab under Admin → Periodic tasks updates the model).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import post_save
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


class PeriodicTaskOwner(models.Model):
    """A model owning one PeriodicTask that runs `task_path` with its pk, on its `schedule`
    while it is `enabled`. The concrete model declares those fields and `periodic_task` (a
    OneToOneField to PeriodicTask, null, SET_NULL, not editable), and names and describes its
    task."""

    #: the Celery task the PeriodicTask starts, with the owner's pk as its one argument
    task_path: ClassVar[str]

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self.sync_periodic_task()

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        task = self.periodic_task
        result = super().delete(*args, **kwargs)
        if task is not None:
            task.delete()
        return result

    def periodic_task_name(self) -> str:
        raise NotImplementedError

    def periodic_task_description(self) -> str:
        raise NotImplementedError

    def sync_periodic_task(self) -> PeriodicTask:
        """Create or update the owner's PeriodicTask to its schedule and enabled flag."""
        task = sync_task(
            self.periodic_task,
            name=self.periodic_task_name(),
            task_path=self.task_path,
            schedule=self.schedule,
            args=[self.pk],
            enabled=self.enabled,
            description=self.periodic_task_description(),
        )
        if self.periodic_task_id != task.pk:
            type(self)._default_manager.filter(pk=self.pk).update(periodic_task=task)
            self.periodic_task = task
        return task


def follow_task_edits(model: type[PeriodicTaskOwner], *, uid: str) -> None:
    """Editing an owner's PeriodicTask (its crontab or enabled flag) or a crontab in place
    under Admin → Periodic tasks updates the owners whose task it is. `uid` prefixes the
    receivers' dispatch uids."""

    def periodic_task_edited(sender: type, instance: PeriodicTask, **kwargs: Any) -> None:
        if instance.task != model.task_path or instance.crontab_id is None:
            return
        model._default_manager.filter(periodic_task=instance).update(
            schedule=schedule_of(instance.crontab), enabled=instance.enabled
        )

    def crontab_edited(sender: type, instance: CrontabSchedule, **kwargs: Any) -> None:
        # every periodic task using the crontab follows it, so do their owners
        model._default_manager.filter(
            periodic_task__task=model.task_path, periodic_task__crontab=instance
        ).update(schedule=schedule_of(instance))

    post_save.connect(
        periodic_task_edited,
        sender=PeriodicTask,
        weak=False,
        dispatch_uid=f"{uid}-periodic-task-edited",
    )
    post_save.connect(
        crontab_edited, sender=CrontabSchedule, weak=False, dispatch_uid=f"{uid}-crontab-edited"
    )
