"""`manage.py bench workflows`: end-to-end throughput through real Celery workers.

In one run, on one worker setup (prefork pool of 2, the configured Redis broker, a fresh
database on the configured server, the vendor stand-ins in this process):
1. the bare ceiling: empty tasks per second;
2. closed-won deals provisioned per second end to end (poll -> ERP customer, PSA project,
   ERP contract and revenue schedule -> write-back), with the p95 latency from the
   closed-won event to project provisioned;
3. a month-end burst of approved time entries posted to the ERP per second (read from the
   PSA in pages, policy-checked, posted in batches of 500 through the ERP's bulk endpoint).
Targets: the burst posts at least 2x the bare rate; provisioning reaches 0.1x the bare rate.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.models import BusinessTimestamp, Connection, PostingBatch, SyncRun
from integrations.queues import all_queues
from integrations.standins.server import STANDINS, start_standin

from .workers import celery_workers, isolated_database, peak_memory_mb, redis_client

NORTHWIND = "0015g00000Tl001AAB"
GLOBEX = "0015g00000Tl002AAB"


def p95(values: list[float]) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise CommandError(f"timed out after {timeout:.0f} s waiting for {what}")


def run(*, deals: int = 200, entries: int = 20000, noop: int = 3000, out: Any = None) -> dict:
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        raise CommandError("bench workflows needs CELERY_BROKER_URL=redis://... (a real broker)")
    say = out.write if out is not None else print
    keys = tempfile.mkdtemp(prefix="throughline-bench-keys-")
    os.environ["STANDIN_KEYS_DIR"] = keys
    standins = {vendor: start_standin(vendor) for vendor in STANDINS}
    try:
        with isolated_database():
            return _measure(standins, keys, deals, entries, noop, say)
    finally:
        for standin in standins.values():
            standin.stop()


def _measure(standins: dict, keys: str, deals: int, entries: int, noop: int, say: Any) -> dict:
    from console import demo
    from console.celery import app
    from integrations.reference_data import sync_people
    from integrations.tasks import bench_noop, collect_time_entries_task, poll_closed_won_task

    demo.seed({vendor: s.url for vendor, s in standins.items()}, keys_dir=keys)
    app.control.purge()
    with celery_workers(all_queues()) as worker:
        # 1. bare ceiling: empty tasks through the same broker and pool
        counter = f"bench:{uuid.uuid4().hex}"
        r = redis_client()
        t0 = time.perf_counter()
        for _ in range(noop):
            bench_noop.apply_async(args=[counter])
        wait(lambda: int(r.get(counter) or 0) >= noop, 120, "the empty tasks")
        bare = noop / (time.perf_counter() - t0)
        say(f"bare ceiling: {bare:.0f} empty tasks/s ({noop} tasks)\n")

        # 2. provisioning: `deals` closed-won deals, end to end
        salesforce = standins["salesforce"].url
        with httpx.Client() as client:
            for i in range(deals):
                uk = i % 2 == 0
                client.post(
                    f"{salesforce}/__standin__/salesforce/close-deal",
                    json={
                        # a UK customer bought from the UK entity, a US one from the US entity
                        "account_id": NORTHWIND if uk else GLOBEX,
                        "legal_entity": "UK01" if uk else "US01",
                        "template": "FIXED-3",
                        "amount": f"{10000 + i}.00",
                    },
                ).raise_for_status()
        started = timezone.now()
        crm = Connection.objects.get(vendor="salesforce")
        t0 = time.perf_counter()
        poll_closed_won_task.apply_async(args=[crm.pk])
        expected = deals + 4  # plus the demo's four won deals (two of which fail by design)
        wait(
            lambda: (
                SyncRun.objects.filter(
                    workflow="create_service_engagement", status__in=["succeeded", "failed"]
                ).count()
                >= expected
            ),
            600,
            "the closed-won deals",
        )
        elapsed = time.perf_counter() - t0
        provisioned = SyncRun.objects.filter(
            workflow="create_service_engagement", status="succeeded"
        ).count()
        provisioning_rate = provisioned / elapsed
        latencies = _latencies(started)
        say(
            f"provisioning: {provisioned} deals in {elapsed:.1f} s = {provisioning_rate:.1f}/s, "
            f"p95 {latencies['p95_from_event_s']:.2f} s from the event\n"
        )

        # 3. month-end burst of approved time entries
        erp = Connection.objects.get(name="NetSuite (demo)")
        psa = Connection.objects.get(vendor="kantata")
        sync_people(erp, psa)
        northwind = SyncRun.objects.filter(
            workflow="create_service_engagement",
            status="succeeded",
            legal_entity_code="UK01",
        ).first()
        workspace = northwind.context["provision_project"]["psa_project_id"]
        httpx.post(
            f"{standins['kantata'].url}/__standin__/kantata/time-burst",
            json={"workspace_id": workspace, "count": entries, "approved": True, "user_ids": [2]},
            timeout=120,
        ).raise_for_status()
        t0 = time.perf_counter()
        collect_time_entries_task.apply_async(args=[psa.pk])
        wait(lambda: _posted() >= entries, 600, "the time entries to be posted")
        burst_elapsed = time.perf_counter() - t0
        burst_rate = entries / burst_elapsed
        say(f"time-entry burst: {entries} posted in {burst_elapsed:.1f} s = {burst_rate:.0f}/s\n")
        wait(
            lambda: not PostingBatch.objects.filter(reported=False).exists(),
            900,
            "the status to reach the PSA",
        )
        reported_elapsed = time.perf_counter() - t0
        memory = peak_memory_mb(worker.pid)

    targets = {
        "time_entries_vs_bare_min": 2.0,
        "provisioning_vs_bare_min": 0.1,
    }
    figures = {
        "bare_empty_tasks_per_s": round(bare, 1),
        "deals_provisioned": provisioned,
        "provisioning_per_s": round(provisioning_rate, 2),
        "provisioning_vs_bare": round(provisioning_rate / bare, 3),
        "provisioning_p95_from_event_s": round(latencies["p95_from_event_s"], 3),
        "provisioning_p95_from_crm_win_s": round(latencies["p95_from_win_s"], 3),
        "time_entries": entries,
        "time_entries_per_s": round(burst_rate, 1),
        "time_entries_vs_bare": round(burst_rate / bare, 3),
        "time_entries_status_back_s": round(reported_elapsed, 1),
        "worker_peak_memory_mb": memory,
    }
    return {
        "bench": "workflows",
        **figures,
        "targets": targets,
        "met": {
            "time_entries_vs_bare_min": figures["time_entries_vs_bare"] >= 2.0,
            "provisioning_vs_bare_min": figures["provisioning_vs_bare"] >= 0.1,
        },
    }


def _posted() -> int:
    from django.db.models import Sum

    totals = PostingBatch.objects.exclude(status="pending").aggregate(
        created=Sum("created_count"), existing=Sum("existing_count"), errors=Sum("error_count")
    )
    return sum(v or 0 for v in totals.values())


def _latencies(since: Any) -> dict[str, float]:
    from_event, from_win = [], []
    runs = SyncRun.objects.filter(
        workflow="create_service_engagement", status="succeeded", created_at__gte=since
    )
    stamps = {
        (s.business_key, s.name): s.at
        for s in BusinessTimestamp.objects.filter(name__in=["closed_won", "project_provisioned"])
    }
    for run in runs:
        done = stamps.get((run.business_key, "project_provisioned"))
        if done is None:
            continue
        from_event.append((done - run.created_at).total_seconds())
        won = stamps.get((run.business_key, "closed_won"))
        if won is not None:
            from_win.append((done - won).total_seconds())
    return {"p95_from_event_s": p95(from_event), "p95_from_win_s": p95(from_win)}
