"""The incremental path of the KPI rollups: where the facts happen, their observations are
added to the rollups in the same transaction (dashboards.rollups.record_many).

- integrations.signals.runs_succeeded: hand-off, billing and amendment runs (a batch of runs
  is one upsert);
- post_save of a new IntegrationException: exceptions opened, and the first failure of a
  hand-off or billing run (exceptions open through one function, inside the transaction of
  the failure they record, so a step failure and its rollup commit together);
- integrations.signals.entries_posted: time entries posted;
- post_save of a new MilestoneFact: milestones completed;
- integrations.signals.invoice_amounts_seen: invoice payment facts (dashboards.receivables),
  whose post_save feeds DSO;
- integrations.signals.revenue_recognised: earned revenue facts (dashboards.earned_revenue),
  whose post_save feeds earned revenue;
- runs_succeeded (billing runs) and entries_posted (time, vendor bills): project margin facts
  (dashboards.margins), whose post_save feeds project margin variance;
- post_save of a new reporting.ExtractRun that wrote a time file: utilization freshness;
- reconciliation.signals.run_finished: an invoices reconciliation's match rate per legal
  entity is the revenue posting accuracy (sent in the transaction that marks the run done);
- post_migrate: rollups that are still empty are built once from the records already there.

Connected in DashboardsConfig.ready; nothing in the other apps knows about them.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from exceptions.models import IntegrationException
from integrations.models import Connection, PostingBatch, SyncRun
from integrations.signals import (
    entries_posted,
    invoice_amounts_seen,
    revenue_recognised,
    runs_succeeded,
)
from reconciliation.models import Run as ReconciliationRun
from reconciliation.signals import run_finished
from reporting.models import ExtractRun

from . import earned_revenue, margins, observations, receivables, rollups
from .models import (
    EarnedRevenueFact,
    InvoicePaymentFact,
    KpiRollup,
    MilestoneFact,
    ProjectMarginFact,
)


@receiver(runs_succeeded, sender=SyncRun, dispatch_uid="dashboards.rollups.runs_succeeded")
def on_runs_succeeded(sender: Any, runs: list[SyncRun], **kw: Any) -> None:
    rollups.record_many(observations.for_succeeded_runs(runs))


@receiver(
    post_save, sender=IntegrationException, dispatch_uid="dashboards.rollups.exception_opened"
)
def on_exception_saved(
    sender: Any, instance: IntegrationException, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        rollups.record_many(observations.for_new_exception(instance))


@receiver(entries_posted, sender=PostingBatch, dispatch_uid="dashboards.rollups.entries_posted")
def on_entries_posted(sender: Any, batch: PostingBatch, entry_ids: list[str], **kw: Any) -> None:
    rollups.record_many(observations.for_posted_batch(batch))


@receiver(post_save, sender=MilestoneFact, dispatch_uid="dashboards.rollups.milestone_fact")
def on_milestone_fact(
    sender: Any, instance: MilestoneFact, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        rollups.record_many(observations.for_milestone_fact(instance))


@receiver(runs_succeeded, sender=SyncRun, dispatch_uid="dashboards.margins.runs_succeeded")
def on_runs_billed(sender: Any, runs: list[SyncRun], **kw: Any) -> None:
    margins.record_billing(runs)


@receiver(entries_posted, sender=PostingBatch, dispatch_uid="dashboards.margins.entries_posted")
def on_costs_posted(sender: Any, batch: PostingBatch, entry_ids: list[str], **kw: Any) -> None:
    margins.record_costs(batch)


@receiver(
    invoice_amounts_seen, sender=Connection, dispatch_uid="dashboards.receivables.amounts_seen"
)
def on_invoice_amounts(sender: Any, erp: Connection, invoices: list[Any], **kw: Any) -> None:
    receivables.record_invoice_amounts(erp, invoices)


@receiver(
    revenue_recognised, sender=Connection, dispatch_uid="dashboards.earned_revenue.recognised"
)
def on_revenue_recognised(
    sender: Any, erp: Connection, period: Any, lines: list[Any], **kw: Any
) -> None:
    earned_revenue.record_recognised(erp, period, lines)


@receiver(post_save, sender=InvoicePaymentFact, dispatch_uid="dashboards.rollups.payment_fact")
def on_payment_fact(
    sender: Any, instance: InvoicePaymentFact, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        rollups.record_many(observations.for_payment_fact(instance))


@receiver(post_save, sender=EarnedRevenueFact, dispatch_uid="dashboards.rollups.earned_fact")
def on_earned_fact(
    sender: Any, instance: EarnedRevenueFact, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        rollups.record_many(observations.for_earned_fact(instance))


@receiver(post_save, sender=ProjectMarginFact, dispatch_uid="dashboards.rollups.margin_fact")
def on_margin_fact(
    sender: Any, instance: ProjectMarginFact, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        rollups.record_many(observations.for_margin_fact(instance))


@receiver(post_save, sender=ExtractRun, dispatch_uid="dashboards.rollups.extract_run")
def on_extract_run(
    sender: Any, instance: ExtractRun, created: bool, raw: bool = False, **kw: Any
) -> None:
    if created and not raw:
        rollups.record_many(observations.for_extract_run(instance))


@receiver(run_finished, sender=ReconciliationRun, dispatch_uid="dashboards.rollups.recon")
def on_reconciliation_finished(
    sender: Any, run: ReconciliationRun, error: Exception | None = None, **kw: Any
) -> None:
    if error is None:
        rollups.record_many(observations.for_reconciliation_run(run))


def fill_empty_rollups(sender: Any, using: str = "default", **kw: Any) -> None:
    """After `migrate`: rollups that do not exist yet are built from the raw records already
    there (the first migrate of a database that predates them; later, never)."""
    from django.db import connections

    if using != "default":
        return
    connection = connections[using]
    if KpiRollup._meta.db_table not in connection.introspection.table_names():
        return
    if KpiRollup.objects.using(using).exists():
        return
    if not (
        SyncRun.objects.using(using).filter(status="succeeded").exists()
        or IntegrationException.objects.using(using).exists()
        or PostingBatch.objects.using(using).exists()
        or MilestoneFact.objects.using(using).exists()
        or InvoicePaymentFact.objects.using(using).exists()
        or EarnedRevenueFact.objects.using(using).exists()
        or ProjectMarginFact.objects.using(using).exists()
        or ExtractRun.objects.using(using).exists()
    ):
        return
    result = rollups.rebuild()
    if kw.get("verbosity", 1):
        print(f"  KPI rollups built from the records already there: {result.written} rows")
