"""KPI rollups: kept up to date incrementally where the facts happen, they agree exactly with a
rebuild from the raw records after a realistic flow (faults, retries, amendments, milestones,
time, payments, revenue the ERP recognised, a time extract); `rebuild_rollups --check` finds a
tampered row; upserts from concurrent writers lose nothing."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, models, transaction

from dashboards import rollups
from dashboards.models import (
    EarnedRevenueFact,
    InvoicePaymentFact,
    KpiRollup,
    MilestoneFact,
    ProjectMarginFact,
)
from dashboards.observations import Dims
from dashboards.receivers import fill_empty_rollups
from dashboards.tasks import verify_rollups
from integrations import services
from integrations.models import Connection, PostingBatch, ProjectTemplate, SyncRun
from integrations.payments import sync_payments
from integrations.polling import poll_amendments, poll_closed_won
from integrations.postings import collect_time_entries
from integrations.psa_feed import read_psa_events
from integrations.reference_data import sync_people
from integrations.revenue import sync_recognised_revenue
from reporting.extracts import run_extract
from reporting.models import Extract
from tests.standin_steps import complete_first_milestone

ACCOUNTS = {
    "UK01": "0015g00000Tl001AAB",
    "US01": "0015g00000Tl002AAB",
    "DE01": "0015g00000Tl003AAB",
}
AMENDMENT = "a015g00000Tl001AAB"  # Northwind: 135,000.00 GBP


def kpi_count(kpi: str) -> int:
    return sum(KpiRollup.objects.filter(kpi=kpi, grain="day").values_list("count", flat=True))


def realistic_flow(demo) -> None:
    """Deals closed (some failing: missing template, missing tax registration, a PSA fault;
    one entered late, in July), a fix and a bulk retry, an amendment, milestones completed
    (some into a closed period, then retried), approved time posted (half refused), invoices
    paid (one in full, one in part), the revenue of the closed months read back from the
    ERP, and a time extract written."""
    sf, ns, kt = (demo[v] for v in ("salesforce", "netsuite", "kantata"))
    crm = Connection.objects.get(vendor="salesforce")
    psa = Connection.objects.get(vendor="kantata")
    with httpx.Client() as client:
        for i in range(9):
            entity = ("UK01", "US01", "DE01")[i % 3]
            client.post(
                f"{sf.url}/__standin__/salesforce/close-deal",
                json={
                    "account_id": ACCOUNTS[entity],
                    "legal_entity": entity,
                    "template": "LEGACY-X" if i in (4, 7) else "FIXED-3",
                    "amount": f"{20000 + i}.55",
                },
            ).raise_for_status()
        client.post(  # entered late: its project started in July (closed months)
            f"{sf.url}/__standin__/salesforce/close-deal",
            json={
                "account_id": ACCOUNTS["US01"],
                "legal_entity": "US01",
                "template": "TM-STD",
                "amount": "36000.00",
                "planned_margin": 40,
                "close_date": "2026-07-20",
            },
        ).raise_for_status()
    kt.state.add_fault(method="POST", path="/api/v1/workspaces", status=500, times=1)
    poll_closed_won(crm)

    # The PMO creates the missing template and retries: first pass failed, then provisioned.
    legacy = ProjectTemplate.objects.get(code="FIXED-3")
    ProjectTemplate.objects.create(
        code="LEGACY-X",
        name="Legacy",
        billing_model=legacy.billing_model,
        duration_days=legacy.duration_days,
        milestones=legacy.milestones,
    )
    failed = SyncRun.objects.filter(workflow="create_service_engagement", status="failed")
    services.resume_runs(list(failed.values_list("pk", flat=True)))

    read_psa_events(psa)  # the hand-offs' own events
    httpx.post(
        f"{sf.url}/__standin__/salesforce/approve-amendment", json={"id": AMENDMENT}
    ).raise_for_status()
    poll_amendments(crm)

    stories = []
    for run in SyncRun.objects.filter(workflow="create_service_engagement", status="succeeded"):
        workspace = run.context["provision_project"]["psa_project_id"]
        story = complete_first_milestone(kt, workspace)
        stories.append(story["id"])
    november = next(
        p for p in ns.state.table("accountingperiod").values() if p["periodName"] == "Nov 2026"
    )
    november.update(closed=True, arLocked=True)
    read_psa_events(psa)
    november.update(closed=False, arLocked=False)
    billing_failed = SyncRun.objects.filter(workflow="release_milestone_billing", status="failed")
    services.resume_runs(list(billing_failed.values_list("pk", flat=True)))

    sync_people(Connection.objects.get(name="NetSuite (demo)"), psa)
    uk = SyncRun.objects.filter(
        workflow="create_service_engagement", status="succeeded", legal_entity_code="UK01"
    ).first()
    workspace = uk.context["provision_project"]["psa_project_id"]
    httpx.post(
        f"{kt.url}/__standin__/kantata/time-burst",
        json={"workspace_id": workspace, "count": 40, "approved": True, "user_ids": [1, 2]},
    ).raise_for_status()
    collect_time_entries(psa)

    erps = list(Connection.objects.filter(system="erp", enabled=True).order_by("pk"))
    for erp in erps:
        sync_payments(erp)  # every invoice raised: receivable
    invoices = sorted(ns.state.table("invoice").values(), key=lambda i: int(i["id"]))
    for invoice, share in zip(invoices, (Decimal(1), Decimal("0.5")), strict=False):
        amount = (Decimal(str(invoice["amountRemaining"])) * share).quantize(Decimal("0.01"))
        httpx.post(
            f"{ns.url}/__standin__/netsuite/invoice/{invoice['id']}/pay",
            json={"amount": str(amount)},
        ).raise_for_status()
    for erp in erps:
        sync_payments(erp)
        sync_recognised_revenue(erp)
    run_extract(Extract.objects.create(name="time-for-the-warehouse", dataset="time_entries"))


@pytest.fixture
def extracts_root(settings, tmp_path):
    settings.EXTRACTS_ROOT = tmp_path / "extracts"
    settings.EXTRACTS_SETTLE_SECONDS = 0
    return settings.EXTRACTS_ROOT


def test_incremental_rollups_agree_exactly_with_a_rebuild_after_a_realistic_flow(
    demo, extracts_root
):
    realistic_flow(demo)

    # the flow reached every live KPI (so the comparison below means something)
    runs = SyncRun.objects.filter(status="succeeded")
    assert runs.filter(workflow="update_billing_plan").exists()
    assert runs.filter(workflow="release_milestone_billing").exists()
    assert SyncRun.objects.filter(
        workflow="release_milestone_billing", exceptions__isnull=False, status="succeeded"
    ).exists(), "a billing run that failed first and then succeeded"
    assert PostingBatch.objects.filter(status__in=["posted", "partial"]).exists()
    assert MilestoneFact.objects.exists()
    assert InvoicePaymentFact.objects.filter(state="paid").exists()
    assert (
        InvoicePaymentFact.objects.exclude(state="paid")
        .exclude(amount_remaining=models.F("total"))
        .exists()
    ), "an invoice paid in part"
    assert EarnedRevenueFact.objects.filter(period_name="Jul 2026").exists()
    assert ProjectMarginFact.objects.filter(source__startswith="posting_batch:").exists()
    for kpi in (
        "quote_to_project",
        "won_to_project",
        "provisioning_success_rate",
        "time_entry_latency",
        "billing_exception_rate",
        "time_to_invoice",
        "invoice_cycle_time",
        "billed_amount",
        "backlog",
        "exceptions_opened",
        "milestones_completed",
        "dso.receivables",
        "dso.invoiced",
        "earned_revenue",
        "project_margin",
        "project_margin_variance",
        "utilization_freshness",
    ):
        assert kpi_count(kpi) > 0, kpi
    handoffs = SyncRun.objects.filter(workflow="create_service_engagement").exclude(
        status__in=["pending", "running"]
    )
    assert kpi_count("provisioning_success_rate") == handoffs.count()  # each deal once
    assert kpi_count("time_entry_latency") == 20  # user 1 is no employee in the ERP

    assert rollups.check() == []
    before = rollups.stored()
    result = rollups.rebuild()
    assert result.written == len(before)
    assert rollups.stored() == before
    call_command("rebuild_rollups", "--check")


def test_check_finds_a_tampered_row_and_a_rebuild_repairs_it(demo, capsys):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    assert rollups.check() == []
    row = KpiRollup.objects.filter(kpi="provisioning_success_rate", grain="hour").first()
    KpiRollup.objects.filter(pk=row.pk).update(total=row.total + 1)
    KpiRollup.objects.create(
        kpi="quote_to_project",
        grain="day",
        bucket=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        legal_entity_code="XX01",
        count=1,
        total=1,
        minimum=1,
        maximum=1,
    )

    with pytest.raises(CommandError, match="2 rollup rows differ"):
        call_command("rebuild_rollups", "--check")
    out = capsys.readouterr().out
    assert "provisioning_success_rate hour" in out
    assert f"total {row.total}," in out and f"total {row.total + 1}," in out
    assert "quote_to_project day 2020-01-01 00:00Z (legal entity XX01)" in out
    assert "rollup has count 1" in out

    call_command("rebuild_rollups")
    call_command("rebuild_rollups", "--check")
    assert not KpiRollup.objects.filter(legal_entity_code="XX01").exists()


def test_rebuild_since_a_day_leaves_earlier_buckets_alone(db):
    old = dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    new = dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC)
    rollups.record("exceptions_opened", old, 1)  # not backed by any record
    rollups.record("exceptions_opened", new, 1)
    assert len(rollups.check()) == 4  # hour and day, twice
    assert len(rollups.check(since=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))) == 2

    result = rollups.rebuild(since=dt.datetime(2026, 2, 1, 13, tzinfo=dt.UTC))
    assert result.since == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert result.deleted == 2
    assert set(KpiRollup.objects.values_list("bucket", flat=True)) == {
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC),
    }


def test_record_adds_to_the_hour_and_the_day_with_min_and_max(db):
    at = dt.datetime(2026, 5, 4, 13, 59, 59, 999999, tzinfo=dt.UTC)
    dims = Dims("UK01", "emea", 7, "")
    rollups.record("time_to_invoice", at, 100, dims)
    rollups.record("time_to_invoice", at + dt.timedelta(seconds=1), 40, dims, count=2)
    rows = {
        (r.grain, r.bucket): (r.count, r.total, r.minimum, r.maximum)
        for r in KpiRollup.objects.filter(kpi="time_to_invoice")
    }
    assert rows == {
        ("hour", dt.datetime(2026, 5, 4, 13, tzinfo=dt.UTC)): (1, 100, 100, 100),
        ("hour", dt.datetime(2026, 5, 4, 14, tzinfo=dt.UTC)): (2, 80, 40, 40),
        ("day", dt.datetime(2026, 5, 4, tzinfo=dt.UTC)): (3, 180, 40, 100),
    }


def test_concurrent_writers_lose_no_increment(transactional_db):
    """Threads, each with its own database connection and transactions, add to the same
    rows at once: the database adds, so every increment counts."""
    at = dt.datetime(2026, 5, 4, 13, tzinfo=dt.UTC)
    threads, per_thread, errors = 6, 25, []
    start = threading.Barrier(threads)

    def write(n: int) -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                for attempt in range(50):  # SQLite: one writer at a time
                    try:
                        with transaction.atomic():  # as in a worker: the facts, then this
                            rollups.record("exceptions_opened", at, 1, Dims("UK01", "emea", n % 2))
                        break
                    except Exception as exc:  # database is locked: wait and try again
                        if "locked" not in str(exc) or attempt == 49:
                            raise
                        time.sleep(0.01)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors
    hours = KpiRollup.objects.filter(kpi="exceptions_opened", grain="hour")
    assert sorted(hours.values_list("connection_id", "count")) == [(0, 75), (1, 75)]
    assert connection.vendor in ("sqlite", "postgresql")


def test_the_scheduled_verification_repairs_the_last_days(demo):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    assert verify_rollups() == 0
    row = KpiRollup.objects.filter(kpi="exceptions_opened", grain="day").first()
    KpiRollup.objects.filter(pk=row.pk).update(count=row.count + 5)
    assert verify_rollups() == 1
    assert rollups.check() == []
    assert verify_rollups() == 0


def test_a_database_with_records_and_no_rollups_gets_them_at_migrate(demo):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    before = rollups.stored()
    assert before
    KpiRollup.objects.all().delete()
    fill_empty_rollups(sender=None, verbosity=0)
    assert rollups.stored() == before
    KpiRollup.objects.filter(kpi="exceptions_opened").delete()
    fill_empty_rollups(sender=None, verbosity=0)  # not empty: left as it is
    assert not KpiRollup.objects.filter(kpi="exceptions_opened").exists()
