"""A schedule edited under Admin → Periodic tasks flows back to its Extract."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from .schedules import TASK, schedule_of


@receiver(post_save, sender=PeriodicTask, dispatch_uid="reporting-periodic-task-edited")
def periodic_task_edited(sender: type, instance: PeriodicTask, **kwargs: Any) -> None:
    if instance.task != TASK or instance.crontab_id is None:
        return
    from .models import Extract

    Extract.objects.filter(periodic_task=instance).update(
        schedule=schedule_of(instance.crontab), enabled=instance.enabled
    )


@receiver(post_save, sender=CrontabSchedule, dispatch_uid="reporting-crontab-edited")
def crontab_edited(sender: type, instance: CrontabSchedule, **kwargs: Any) -> None:
    """A crontab edited in place (every periodic task using it follows, so do the extracts)."""
    from .models import Extract

    Extract.objects.filter(periodic_task__task=TASK, periodic_task__crontab=instance).update(
        schedule=schedule_of(instance)
    )
