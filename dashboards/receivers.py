"""The incremental path of the KPI rollups: where the facts happen, their observations are
added to the rollups in the same transaction (dashboards.rollups.record_many).

- integrations.signals.runs_succeeded: hand-off, billing and amendment runs (a batch of runs
  is one upsert);
- post_save of a new IntegrationException: exceptions opened, and the first failure of a
  hand-off or billing run (exceptions open through one function, inside the transaction of
  the failure they record, so a step failure and its rollup commit together);
- integrations.signals.entries_posted: time entries posted;
- post_save of a new MilestoneFact: milestones completed;
- post_migrate: rollups that are still empty are built once from the records already there.

Connected in DashboardsConfig.ready; nothing in the other apps knows about them.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from exceptions.models import IntegrationException
from integrations.models import PostingBatch, SyncRun
from integrations.signals import entries_posted, runs_succeeded

from . import observations, rollups
from .models import KpiRollup, MilestoneFact


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
    ):
        return
    result = rollups.rebuild()
    if kw.get("verbosity", 1):
        print(f"  KPI rollups built from the records already there: {result.written} rows")
