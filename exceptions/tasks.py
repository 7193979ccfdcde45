"""Celery tasks of the exception queues: thin wrappers that take ids and call the services.

Other tasks of the app may live here too; each has an explicit, stable name.
"""

from __future__ import annotations

from celery import shared_task

from . import alerts, bulk, sla


@shared_task(name="exceptions.send_alert", acks_late=True)
def send_alert(alert_id: int) -> bool:
    """Send one recorded incident alert (exceptions.alerts.deliver); never raises."""
    return alerts.deliver(alert_id)


@shared_task(name="exceptions.send_escalation", acks_late=True)
def send_escalation(exception_id: int) -> bool:
    """Send an incident-less exception's escalation to its queue's contacts."""
    return alerts.deliver_escalation(exception_id)


@shared_task(name="exceptions.check_sla")
def check_sla() -> dict[str, int]:
    """Every five minutes (beat): escalate long SLA breaches, wake ignored exceptions whose
    time has come, and try failed alerts again."""
    result = sla.sweep()
    return {
        "escalated": result.escalated,
        "woken": result.woken,
        "alerts_retried": alerts.retry_failed(),
    }


@shared_task(name="exceptions.run_bulk_action", acks_late=True)
def run_bulk_action(bulk_id: int) -> dict[str, int | str] | None:
    """Run a bulk action (retry, resolve, assign, ignore) in chunks (exceptions.bulk.run)."""
    action = bulk.run(bulk_id)
    if action is None:
        return None
    return {"status": action.status, "done": action.done, "failed": action.failed}
