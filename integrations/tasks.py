"""Celery tasks of the engine: thin wrappers that take ids and call the services."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from . import outbox, timeline
from .assignments import sync_assignments
from .choices import SystemKind, Vendor
from .models import Connection
from .payments import sync_payments
from .polling import poll_amendments, poll_closed_won
from .postings import collect_expenses, collect_time_entries, post_batch, report_postings
from .psa_feed import read_psa_events
from .queues import queue_for
from .reference_data import sync_exchange_rates, sync_people
from .revenue import sync_recognised_revenue
from .workflows.engine import execute_run, execute_runs

logger = logging.getLogger(__name__)


def _for_each_connection(tasks: list[Any], system: str, vendor: str | None = None) -> int:
    """Enqueue each task for every enabled connection of `system` (and `vendor`), on that
    connection's queue; return how many connections."""
    connections = Connection.objects.filter(system=system, enabled=True)
    if vendor is not None:
        connections = connections.filter(vendor=vendor)
    ids = list(connections.order_by("pk").values_list("pk", flat=True))
    for pk in ids:
        for task in tasks:
            task.apply_async(args=[pk], queue=queue_for(pk))
    return len(ids)


@shared_task(name="integrations.run_workflow", acks_late=True)
def run_workflow(run_id: int) -> str:
    run = execute_run(run_id)
    return run.status if run is not None else "skipped"


@shared_task(name="integrations.run_workflows", acks_late=True)
def run_workflows(run_ids: list[int]) -> dict[str, int]:
    """A batch of runs (see services.start_runs): each step serves them all at once."""
    runs = execute_runs(run_ids)
    return {
        status: sum(1 for r in runs if r.status == status) for status in {r.status for r in runs}
    }


@shared_task(name="integrations.poll_closed_won")
def poll_closed_won_task(connection_id: int) -> dict:
    connection = Connection.objects.get(pk=connection_id)
    result = poll_closed_won(connection)
    amendments = poll_amendments(connection)
    return {"seen": result.seen, "started": result.started, "amendments": amendments.started}


@shared_task(name="integrations.poll_all_crm_connections")
def poll_all_crm_connections() -> int:
    """Enqueue a poll for every enabled CRM connection whose vendor we poll."""
    return _for_each_connection([poll_closed_won_task], SystemKind.CRM, Vendor.SALESFORCE)


@shared_task(name="integrations.sweep_outbox")
def sweep_outbox() -> int:
    """Send outbox messages the after-commit hand-off could not (see integrations.outbox)."""
    return outbox.sweep()


@shared_task(name="integrations.detect_stuck")
def detect_stuck() -> int:
    """Flag business transactions that missed a deadline (see integrations.timeline)."""
    return timeline.detect_stuck()


@shared_task(name="integrations.poll_psa_events")
def poll_psa_events(connection_id: int) -> dict:
    result = read_psa_events(Connection.objects.get(pk=connection_id))
    return {"events": result.events, "milestones": result.milestones}


@shared_task(name="integrations.poll_all_psa_connections")
def poll_all_psa_connections() -> int:
    return _for_each_connection([poll_psa_events], SystemKind.PSA, Vendor.KANTATA)


@shared_task(name="integrations.sync_payments")
def sync_payments_task(connection_id: int) -> int:
    return sync_payments(Connection.objects.get(pk=connection_id))


@shared_task(name="integrations.sync_all_payments")
def sync_all_payments() -> int:
    return _for_each_connection([sync_payments_task], SystemKind.ERP)


@shared_task(name="integrations.collect_time_entries")
def collect_time_entries_task(psa_connection_id: int) -> dict:
    result = collect_time_entries(Connection.objects.get(pk=psa_connection_id))
    return {"read": result.read, "batched": result.batched, "rejected": result.rejected}


@shared_task(name="integrations.collect_expenses")
def collect_expenses_task(psa_connection_id: int) -> dict:
    result = collect_expenses(Connection.objects.get(pk=psa_connection_id))
    return {"read": result.read, "batched": result.batched, "rejected": result.rejected}


@shared_task(name="integrations.collect_all_time_entries")
def collect_all_time_entries() -> int:
    return _for_each_connection(
        [collect_time_entries_task, collect_expenses_task], SystemKind.PSA, Vendor.KANTATA
    )


@shared_task(name="integrations.post_batch", acks_late=True)
def post_batch_task(batch_id: int) -> str:
    return post_batch(batch_id).status


@shared_task(name="integrations.report_postings")
def report_postings_task(batch_id: int) -> int:
    return report_postings(batch_id)


@shared_task(name="integrations.sync_reference_data")
def sync_reference_data() -> dict:
    """People, cost rates and cost centres (ERP -> PSA) and exchange rates (ERP -> here)."""
    erps = list(Connection.objects.filter(system=SystemKind.ERP, enabled=True).order_by("pk"))
    psas = list(Connection.objects.filter(system=SystemKind.PSA, enabled=True).order_by("pk"))
    matched = rates = 0
    for erp in erps:
        rates += sync_exchange_rates(erp)
        for psa in psas:
            matched += sync_people(erp, psa).matched
    return {"people": matched, "rates": rates}


@shared_task(name="integrations.sync_recognised_revenue")
def sync_recognised_revenue_task(connection_id: int) -> dict:
    result = sync_recognised_revenue(Connection.objects.get(pk=connection_id))
    return {"periods": result.periods, "lines": result.lines}


@shared_task(name="integrations.sync_all_recognised_revenue")
def sync_all_recognised_revenue() -> int:
    """What each NetSuite ERP recognised (closed periods' revenue lines), read back."""
    return _for_each_connection([sync_recognised_revenue_task], SystemKind.ERP, Vendor.NETSUITE)


@shared_task(name="integrations.bench_noop", ignore_result=True)
def bench_noop(counter: str) -> None:
    """An empty task for `manage.py bench workflows`' bare ceiling: one Redis INCR marks it
    done (no database, no HTTP)."""
    from .benchmarks.workers import redis_client

    redis_client().incr(counter)


@shared_task(name="integrations.sync_assignments")
def sync_assignments_task(psa_connection_id: int) -> dict:
    result = sync_assignments(Connection.objects.get(pk=psa_connection_id))
    return {"read": result.read, "synced": result.synced, "refused": result.refused}


@shared_task(name="integrations.sync_all_assignments")
def sync_all_assignments() -> int:
    return _for_each_connection([sync_assignments_task], SystemKind.PSA, Vendor.KANTATA)
