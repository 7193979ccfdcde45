"""What the raw records say about each KPI: *observations* (an integer in the KPI's base unit,
at a time, with its dimensions), computed by the same functions on both paths:

- incrementally, from the records a signal hands over (a batch of runs that succeeded, an
  exception just opened, a posting batch just posted, a milestone fact just recorded), in the
  transaction that records them (dashboards.receivers);
- in the rebuild and for a bucket's underlying records, from the records read back
  (`SOURCES`, each scanning one kind of raw record).

So the rollups and a rebuild agree exactly as long as an observation depends only on what
no longer changes once it is emitted: a run is observed when it succeeds (a succeeded run is
never run again, so its times, context and dimensions are final), an exception when it opens
(its first-seen time and dimensions never change), a posting batch when it posts, a
milestone fact when it is recorded. Observations that need a deal's legal entity (postings,
milestone facts) read it from the deal's hand-off run at that moment: changing a deal's legal
entity afterwards is the one thing a `rebuild_rollups --check` would then report.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Min, Q

from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.models import BusinessTimestamp, PostingBatch, SyncRun, SyncStep

from .models import MilestoneFact

HANDOFF = "create_service_engagement"
BILLING = "release_milestone_billing"
AMENDMENT = "update_billing_plan"
#: the first-pass KPI of each workflow, and what its first exception counts (1 or 0)
FIRST_PASS = {HANDOFF: ("provisioning_success_rate", 0), BILLING: ("billing_exception_rate", 1)}
CHUNK = 2000


@dataclass(frozen=True)
class Dims:
    """The dimensions a KPI is filtered by (blank and 0 mean none)."""

    legal_entity_code: str = ""
    region: str = ""
    connection_id: int = 0
    currency: str = ""


@dataclass(frozen=True)
class Observation:
    """One fact about a KPI: `value` (base unit) for `count` items at `at`.

    `ref` names the raw record it comes from ("run:12", "exception:4", "posting_batch:7",
    "milestone_fact:3"): a bucket's underlying records are the refs of its observations.
    """

    kpi: str
    at: dt.datetime
    value: int
    dims: Dims
    count: int = 1
    ref: str = ""


def seconds(start: dt.datetime, end: dt.datetime) -> int:
    """Whole seconds from `start` to `end` (rounded down)."""
    delta = end - start
    return delta.days * 86400 + delta.seconds


def cents(amount: Any) -> int:
    """An amount of money (string, number or Decimal) in hundredths."""
    return int((Decimal(str(amount)) * 100).to_integral_value(rounding=ROUND_HALF_UP))


def run_dims(run: SyncRun) -> Dims:
    return Dims(run.legal_entity_code or "", run.region or "", run.source_connection_id or 0)


# -- what each kind of record says ----------------------------------------------------------


def handoff(
    run: SyncRun, *, had_exception: bool, stamps: dict[str, dt.datetime]
) -> list[Observation]:
    """A create-service-engagement run that succeeded."""
    dims, ref = run_dims(run), f"run:{run.pk}"
    out = []
    if not had_exception:
        out.append(Observation("provisioning_success_rate", run.finished_at, 1, dims, ref=ref))
    provisioned = stamps.get("project_provisioned")
    if provisioned is not None:
        for kpi, start in (("quote_to_project", "quote"), ("won_to_project", "closed_won")):
            if start in stamps:
                out.append(
                    Observation(
                        kpi, provisioned, seconds(stamps[start], provisioned), dims, ref=ref
                    )
                )
    deal = (run.context.get("fetch_deal") or {}).get("opportunity") or {}
    if deal.get("amount") is not None and deal.get("currency"):
        money = replace(dims, currency=str(deal["currency"]))
        out.append(Observation("backlog", run.finished_at, cents(deal["amount"]), money, ref=ref))
    return out


def billing(
    run: SyncRun, *, had_exception: bool, invoiced_at: dt.datetime | None
) -> list[Observation]:
    """A release-milestone-billing run that succeeded."""
    dims, ref = run_dims(run), f"run:{run.pk}"
    out = [
        Observation(
            "invoice_cycle_time",
            run.finished_at,
            seconds(run.created_at, run.finished_at),
            dims,
            ref=ref,
        )
    ]
    if not had_exception:
        out.append(Observation("billing_exception_rate", run.finished_at, 0, dims, ref=ref))
    if invoiced_at is not None:
        out.append(
            Observation(
                "time_to_invoice", invoiced_at, seconds(run.created_at, invoiced_at), dims, ref=ref
            )
        )
        completion = (run.context.get("load_milestone") or {}).get("completion") or {}
        if completion.get("amount") is not None and completion.get("currency"):
            money = replace(dims, currency=str(completion["currency"]))
            amount = cents(completion["amount"])
            out.append(Observation("billed_amount", invoiced_at, amount, money, ref=ref))
            out.append(Observation("backlog", invoiced_at, -amount, money, ref=ref))
    return out


def amendment(run: SyncRun, *, value_before: Any) -> list[Observation]:
    """An update-billing-plan run that succeeded: the change in contract value.

    `value_before` is the new total of the deal's previous amendment that succeeded, or None
    for the first (then the deal's amount as handed off counts)."""
    loaded = run.context.get("load_amendment") or {}
    new = loaded.get("amendment") or {}
    if new.get("new_total_value") is None or not new.get("currency"):
        return []
    if value_before is None:
        value_before = (loaded.get("opportunity") or {}).get("amount")
    if value_before is None:
        return []
    change = cents(new["new_total_value"]) - cents(value_before)
    money = replace(run_dims(run), currency=str(new["currency"]))
    return [Observation("backlog", run.finished_at, change, money, ref=f"run:{run.pk}")]


def first_failure(exc: IntegrationException, run: SyncRun) -> list[Observation]:
    """The first exception of a hand-off or billing run: its first pass failed."""
    kpi_value = FIRST_PASS.get(run.workflow)
    if kpi_value is None:
        return []
    dims = Dims(exc.legal_entity_code or "", exc.region or "", run.source_connection_id or 0)
    return [
        Observation(kpi_value[0], exc.first_seen, kpi_value[1], dims, ref=f"exception:{exc.pk}")
    ]


def exception_opened(exc: IntegrationException) -> Observation:
    dims = Dims(exc.legal_entity_code or "", exc.region or "", exc.connection_id or 0)
    return Observation("exceptions_opened", exc.first_seen, 1, dims, ref=f"exception:{exc.pk}")


def posting(batch: PostingBatch, deals: dict[str, tuple[str, str]]) -> list[Observation]:
    """A posting batch of time entries that posted: each entry the ERP took, once."""
    if batch.record_type != "timeBill" or batch.posted_at is None:
        return []
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for item in batch.entries:
        if item.get("erp_id"):
            counts[deals.get(str(item["entry"].get("project_key")), ("", ""))] += 1
    latency = seconds(batch.created_at, batch.posted_at)
    return [
        Observation(
            "time_entry_latency",
            batch.posted_at,
            latency,
            Dims(entity, region, batch.psa_id or 0),
            count=n,
            ref=f"posting_batch:{batch.pk}",
        )
        for (entity, region), n in sorted(counts.items())
    ]


def milestone(fact: MilestoneFact, deals: dict[str, tuple[str, str]]) -> Observation:
    entity, region = deals.get(fact.deal_key, ("", ""))
    dims = Dims(entity, region, fact.psa_connection_id or 0)
    return Observation(
        "milestones_completed", fact.recorded_at, 1, dims, ref=f"milestone_fact:{fact.pk}"
    )


# -- loading what the records need (shared by both paths) -----------------------------------


def runs_with_exceptions(run_ids: Iterable[int]) -> set[int]:
    ids = list(run_ids)
    if not ids:
        return set()
    return set(IntegrationException.objects.filter(run_id__in=ids).values_list("run_id", flat=True))


def stamps_of(business_keys: Iterable[str]) -> dict[str, dict[str, dt.datetime]]:
    keys = list(set(business_keys))
    out: dict[str, dict[str, dt.datetime]] = defaultdict(dict)
    if keys:
        rows = BusinessTimestamp.objects.filter(
            business_key__in=keys, name__in=["quote", "closed_won", "project_provisioned"]
        ).values_list("business_key", "name", "at")
        for key, name, at in rows:
            out[key][name] = at
    return out


def invoice_times(run_ids: Iterable[int]) -> dict[int, dt.datetime]:
    ids = list(run_ids)
    if not ids:
        return {}
    return dict(
        SyncStep.objects.filter(
            run_id__in=ids, name="create_invoice", finished_at__isnull=False
        ).values_list("run_id", "finished_at")
    )


def values_before(runs: list[SyncRun]) -> dict[int, Any]:
    """For each amendment run, the new total of the deal's amendment that succeeded before
    it (by finish time, then id), or None."""
    keys = {run.business_key for run in runs}
    ordered = (
        SyncRun.objects.filter(
            workflow=AMENDMENT, status=RunStatus.SUCCEEDED, business_key__in=keys
        )
        .order_by("business_key", "finished_at", "pk")
        .values_list("pk", "business_key", "context")
    )
    before: dict[int, Any] = {}
    last: dict[str, Any] = {}
    for pk, key, context in ordered:
        before[pk] = last.get(key)
        new = ((context or {}).get("load_amendment") or {}).get("amendment") or {}
        if new.get("new_total_value") is not None:
            last[key] = new["new_total_value"]
    return before


def deal_dims(deal_keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Legal entity and region of each deal, from its hand-off run."""
    keys = list({key for key in deal_keys if key})
    if not keys:
        return {}
    rows = SyncRun.objects.filter(workflow=HANDOFF, correlation_id__in=keys).values_list(
        "correlation_id", "legal_entity_code", "region"
    )
    return {key: (entity or "", region or "") for key, entity, region in rows}


# -- the incremental path: from the records a signal hands over -----------------------------


def for_succeeded_runs(runs: list[SyncRun]) -> list[Observation]:
    """Observations of a batch of runs that just succeeded (a few queries for the batch)."""
    mine = [run for run in runs if run.workflow in (HANDOFF, BILLING, AMENDMENT)]
    if not mine:
        return []
    failed = runs_with_exceptions(run.pk for run in mine if run.workflow in FIRST_PASS)
    return _succeeded(mine, failed)


def _succeeded(runs: list[SyncRun], failed: set[int]) -> list[Observation]:
    by_workflow: dict[str, list[SyncRun]] = defaultdict(list)
    for run in runs:
        by_workflow[run.workflow].append(run)
    out: list[Observation] = []
    if by_workflow[HANDOFF]:
        stamps = stamps_of(run.business_key for run in by_workflow[HANDOFF])
        for run in by_workflow[HANDOFF]:
            out += handoff(
                run, had_exception=run.pk in failed, stamps=stamps.get(run.business_key, {})
            )
    if by_workflow[BILLING]:
        invoiced = invoice_times(run.pk for run in by_workflow[BILLING])
        for run in by_workflow[BILLING]:
            out += billing(run, had_exception=run.pk in failed, invoiced_at=invoiced.get(run.pk))
    if by_workflow[AMENDMENT]:
        before = values_before(by_workflow[AMENDMENT])
        for run in by_workflow[AMENDMENT]:
            out += amendment(run, value_before=before.get(run.pk))
    return out


def for_new_exception(exc: IntegrationException) -> list[Observation]:
    """Observations of an exception just opened (one query when it concerns a run)."""
    out = [exception_opened(exc)]
    if exc.run_id is None:
        return out
    run = exc.run
    if run.workflow in FIRST_PASS and not (
        IntegrationException.objects.filter(run_id=exc.run_id, pk__lt=exc.pk).exists()
    ):
        out += first_failure(exc, run)
    return out


def for_posted_batch(batch: PostingBatch) -> list[Observation]:
    if batch.record_type != "timeBill":
        return []
    keys = {str(item["entry"].get("project_key")) for item in batch.entries if item.get("erp_id")}
    return posting(batch, deal_dims(keys))


def for_milestone_fact(fact: MilestoneFact) -> list[Observation]:
    return [milestone(fact, deal_dims([fact.deal_key]))]


# -- the rebuild path: every source, read back from the raw records ------------------------


def _in(field: str, start: dt.datetime | None, end: dt.datetime | None) -> Q:
    q = Q()
    if start is not None:
        q &= Q(**{f"{field}__gte": start})
    if end is not None:
        q &= Q(**{f"{field}__lt": end})
    return q


def _chunks(queryset: Any) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in queryset.iterator(chunk_size=CHUNK):
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


RUN_FIELDS = (
    "id",
    "workflow",
    "business_key",
    "correlation_id",
    "legal_entity_code",
    "region",
    "source_connection",
    "created_at",
    "finished_at",
    "context",
)


def scan_runs(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    """Runs that succeeded, with an observation time in [start, end) (None: open)."""
    succeeded = SyncRun.objects.filter(status=RunStatus.SUCCEEDED).only(*RUN_FIELDS).order_by("pk")
    bounded = start is not None or end is not None
    for workflow in (HANDOFF, BILLING, AMENDMENT):
        runs = succeeded.filter(workflow=workflow)
        if bounded:
            when = _in("finished_at", start, end)
            if workflow == HANDOFF:
                stamped = BusinessTimestamp.objects.filter(
                    _in("at", start, end), name="project_provisioned"
                ).values("business_key")
                when |= Q(business_key__in=stamped)
            elif workflow == BILLING:
                invoiced = SyncStep.objects.filter(
                    _in("finished_at", start, end), name="create_invoice"
                ).values("run_id")
                when |= Q(pk__in=invoiced)
            runs = runs.filter(when)
        for chunk in _chunks(runs):
            failed = (
                runs_with_exceptions(run.pk for run in chunk) if workflow in FIRST_PASS else set()
            )
            yield from _succeeded(chunk, failed)


def scan_exceptions(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    """Exceptions opened in [start, end), and the first failures of runs among them."""
    exceptions = (
        IntegrationException.objects.filter(_in("first_seen", start, end))
        .select_related("run")
        .only(
            "id",
            "first_seen",
            "legal_entity_code",
            "region",
            "connection",
            "run",
            "run__workflow",
            "run__source_connection",
        )
        .order_by("pk")
    )
    for chunk in _chunks(exceptions):
        run_ids = {exc.run_id for exc in chunk if exc.run_id and exc.run.workflow in FIRST_PASS}
        first = dict(
            IntegrationException.objects.filter(run_id__in=run_ids)
            .values("run_id")
            .annotate(first=Min("pk"))
            .values_list("run_id", "first")
        )
        for exc in chunk:
            yield exception_opened(exc)
            if exc.run_id in run_ids and first.get(exc.run_id) == exc.pk:
                yield from first_failure(exc, exc.run)


def scan_postings(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    batches = PostingBatch.objects.filter(
        _in("posted_at", start, end),
        record_type="timeBill",
        status__in=[PostingBatch.Status.POSTED, PostingBatch.Status.PARTIAL],
        posted_at__isnull=False,
    ).order_by("pk")
    for chunk in _chunks(batches):
        keys = {
            str(item["entry"].get("project_key"))
            for batch in chunk
            for item in batch.entries
            if item.get("erp_id")
        }
        deals = deal_dims(keys)
        for batch in chunk:
            yield from posting(batch, deals)


def scan_milestones(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    facts = MilestoneFact.objects.filter(_in("recorded_at", start, end)).order_by("pk")
    for chunk in _chunks(facts):
        deals = deal_dims(fact.deal_key for fact in chunk)
        for fact in chunk:
            yield milestone(fact, deals)


#: every source of observations, and the KPIs each feeds
SOURCES = {
    "runs": (
        scan_runs,
        {
            "provisioning_success_rate",
            "quote_to_project",
            "won_to_project",
            "backlog",
            "billing_exception_rate",
            "time_to_invoice",
            "invoice_cycle_time",
            "billed_amount",
        },
    ),
    "exceptions": (
        scan_exceptions,
        {"exceptions_opened", "provisioning_success_rate", "billing_exception_rate"},
    ),
    "postings": (scan_postings, {"time_entry_latency"}),
    "milestones": (scan_milestones, {"milestones_completed"}),
}


def scan(
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    *,
    kpis: set[str] | None = None,
) -> Iterator[Observation]:
    """Every observation with its time in [start, end) (None: open), of `kpis` (None: all)."""
    for source, feeds in SOURCES.values():
        if kpis is not None and not (kpis & feeds):
            continue
        for obs in source(start, end):
            if kpis is not None and obs.kpi not in kpis:
                continue
            if (start is None or obs.at >= start) and (end is None or obs.at < end):
                yield obs
