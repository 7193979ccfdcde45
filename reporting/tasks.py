"""Celery task the extracts' PeriodicTasks call (and "Run now")."""

from __future__ import annotations

from celery import shared_task

from console.models import User

from .extracts import run_extract as run
from .models import Extract


@shared_task(name="reporting.run_extract")
def run_extract(extract_id: int, user_id: int | None = None) -> str:
    """Run one extract; returns the run's status (`missing` if the extract is gone)."""
    extract = Extract.objects.filter(pk=extract_id).first()
    if extract is None:
        return "missing"
    actor = User.objects.filter(pk=user_id).first() if user_id else None
    return run(extract, actor=actor).status
