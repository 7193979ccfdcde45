"""Thin Celery tasks: the work is in reconciliation.runs."""

from __future__ import annotations

from celery import shared_task

from . import runs


@shared_task(name="reconciliation.run", acks_late=True)
def run_reconciliation(run_id: int) -> dict[str, object]:
    run = runs.execute(run_id)
    return {"run": run.pk, "status": run.status, "match_rate": run.match_rate}


@shared_task(name="reconciliation.scheduled_run")
def scheduled_run(definition_id: int) -> int | None:
    """The definition's periodic task: queue a scheduled run (full every Nth time)."""
    from .models import Definition

    definition = Definition.objects.filter(pk=definition_id, enabled=True).first()
    if definition is None:
        return None
    return runs.request_run(definition, trigger="schedule").pk


@shared_task(name="reconciliation.silent_failure_audit")
def silent_failure_audit() -> dict[str, int]:
    """Beat task (SILENT_AUDIT_INTERVAL_SECONDS): reconciliation.silent_audit."""
    from .silent_audit import run_audit

    audit = run_audit()
    return {"audit": audit.pk, "events": audit.events, "silent": audit.silent}
