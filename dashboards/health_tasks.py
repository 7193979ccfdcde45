"""Beat tasks that keep the slow parts of connector health in the cache, so the health page
and /metrics never wait for a vendor or a worker: the Celery workers' ping (every 30 s) and
the vendors' daily API budgets (Salesforce /limits, at most once per 5 minutes per
connection)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import health


@shared_task(name="dashboards.refresh_worker_status", ignore_result=True)
def refresh_worker_status() -> dict[str, Any]:
    """Ping the workers and read the queues they consume (kept in the cache)."""
    return health.refresh_worker_status()


@shared_task(name="dashboards.refresh_api_budgets", ignore_result=True)
def refresh_api_budgets() -> int:
    """Read each Salesforce connection's /limits when its figure is 5 minutes old."""
    return health.refresh_api_budgets()
