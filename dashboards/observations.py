"""What the raw records say about each KPI: *observations* (an integer in the KPI's base unit,
at a time, with its dimensions), computed by the same functions on both paths:

- incrementally, from the records a signal hands over (a batch of runs that succeeded, an
  exception just opened, a posting batch just posted, a milestone fact just recorded), in the
  transaction that records them (dashboards.receivers);
- in the rebuild and for a bucket's underlying records, from the records read back
  (`SOURCES`, each scanning one kind of raw record).

The finance KPIs read the dashboards' own fact tables, append-only records of what the vendor
systems said: invoice payment facts (DSO: receivables and what was invoiced), earned revenue
facts (what the ERP recognised) and project margin facts (each project's figures when they
change: its new margin variance replaces its previous one, which is taken back). Utilization
freshness reads the reporting extracts of the time dataset: each posted time entry counts
once, at the finish of the first extract run that wrote it to a file.

So the rollups and a rebuild agree exactly as long as an observation depends only on what
no longer changes once it is emitted: a run is observed when it succeeds (a succeeded run is
never run again, so its times, context and dimensions are final), an exception when it opens
(its first-seen time and dimensions never change), a posting batch when it posts, a
milestone fact when it is recorded, a fact of the finance tables when it is added (a fact
and the facts before it never change), an extract run when it wrote its file. Observations
that need a deal's legal entity (postings, milestone facts, extract runs) read it from the
deal's hand-off run at that moment: changing a deal's legal entity afterwards is the one thing
a `rebuild_rollups --check` would then report (the finance facts keep their own).
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
from integrations.models import BusinessTimestamp, LegalEntity, PostingBatch, SyncRun, SyncStep
from reconciliation.models import Run as ReconciliationRun
from reporting.models import Extract, ExtractRun

from .models import EarnedRevenueFact, InvoicePaymentFact, MilestoneFact, ProjectMarginFact

HANDOFF = "create_service_engagement"
BILLING = "release_milestone_billing"
AMENDMENT = "update_billing_plan"
#: the first-pass KPI of each workflow, and what its first exception counts (1 or 0)
FIRST_PASS = {HANDOFF: ("provisioning_success_rate", 0), BILLING: ("billing_exception_rate", 1)}
CHUNK = 2000
#: the rollup series of DSO (dashboards.kpis: the parts of the ratio), in cents
RECEIVABLES, INVOICED = "dso.receivables", "dso.invoiced"
MARGIN = "project_margin_variance"
ACTUAL_MARGIN = "project_margin"
FRESHNESS = "utilization_freshness"
ACCURACY = "revenue_posting_accuracy"
#: the reconciliation whose match rate is the revenue posting accuracy (PSA billing vs ERP)
ACCURACY_KIND = "invoices"
POSTED = (PostingBatch.Status.POSTED, PostingBatch.Status.PARTIAL)


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


def payment(fact: InvoicePaymentFact, previous: InvoicePaymentFact | None) -> list[Observation]:
    """An invoice payment fact: the invoice's first counts its total as invoiced and
    receivable when it was raised; each fact counts the change of what is owed (and of the
    total, should the ERP change it) at the ERP's change time (never before the invoice was
    raised: the ERP's clock has whole seconds)."""
    dims = Dims(
        fact.legal_entity_code or "", fact.region or "", fact.erp_connection_id, fact.currency
    )
    ref = f"invoice_payment_fact:{fact.pk}"
    changed_at = max(fact.seen_at, fact.invoiced_at)
    out = []
    if previous is None:
        total = cents(fact.total)
        out.append(Observation(INVOICED, fact.invoiced_at, total, dims, ref=ref))
        out.append(Observation(RECEIVABLES, fact.invoiced_at, total, dims, ref=ref))
        owed_change = cents(fact.owed) - total
    else:
        total_change = cents(fact.total) - cents(previous.total)
        if total_change:
            out.append(Observation(INVOICED, changed_at, total_change, dims, ref=ref))
        owed_change = cents(fact.owed) - cents(previous.owed)
    if owed_change:
        out.append(Observation(RECEIVABLES, changed_at, owed_change, dims, ref=ref))
    return out


def period_end_at(day: dt.date) -> dt.datetime:
    """When recognised revenue counts: the start (UTC) of its accounting period's last day."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def earned(fact: EarnedRevenueFact) -> Observation:
    dims = Dims(
        fact.legal_entity_code or "", fact.region or "", fact.erp_connection_id, fact.currency
    )
    return Observation(
        "earned_revenue",
        period_end_at(fact.period_end),
        cents(fact.amount),
        dims,
        ref=f"earned_revenue_fact:{fact.pk}",
    )


def actual_margin(fact: ProjectMarginFact) -> int | None:
    """The project's margin so far, (billed - cost) / billed, in hundredths of a percent
    (None: not measurable: nothing billed, or a cost that could not be priced)."""
    if fact.unpriced or fact.billed <= 0:
        return None
    points = (fact.billed - fact.cost) / fact.billed * 10000
    return int(points.to_integral_value(rounding=ROUND_HALF_UP))


def variance(fact: ProjectMarginFact) -> int | None:
    """The project's actual margin minus its planned margin, in hundredths of a percentage
    point (None: not measurable, or the deal has no planned margin)."""
    actual = actual_margin(fact)
    if actual is None or fact.planned_margin is None:
        return None
    return actual - int(fact.planned_margin * 100)


def margin(fact: ProjectMarginFact, previous: ProjectMarginFact | None) -> list[Observation]:
    """A project's new figures: its previous margin and variance taken back (count -1), its
    new ones counted (running averages over projects, see kpis `per_item`)."""
    out = []
    ref = f"project_margin_fact:{fact.pk}"
    for kpi, measure in ((ACTUAL_MARGIN, actual_margin), (MARGIN, variance)):
        before = measure(previous) if previous is not None else None
        if previous is not None and before is not None:
            dims = Dims(previous.legal_entity_code, previous.region, previous.connection_id)
            out.append(Observation(kpi, fact.recorded_at, before, dims, count=-1, ref=ref))
        now = measure(fact)
        if now is not None:
            dims = Dims(fact.legal_entity_code, fact.region, fact.connection_id)
            out.append(Observation(kpi, fact.recorded_at, now, dims, ref=ref))
    return out


def _approved_at(entry: dict[str, Any]) -> dt.datetime | None:
    raw = entry.get("approved_at")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def freshness(
    run: ExtractRun, batches: list[PostingBatch], deals: dict[str, tuple[str, str]]
) -> list[Observation]:
    """A time-dataset extract run that wrote its file: each posted entry of `batches` (the
    ones this run was the first to write) counts (written at - approved at), entries of the
    same deal, PSA and age as one observation."""
    counts: dict[tuple[str, str, int, int], int] = defaultdict(int)
    for batch in batches:
        for item in batch.entries:
            entry = item.get("entry") or {}
            approved = _approved_at(entry)
            if not item.get("erp_id") or approved is None:
                continue
            entity, region = deals.get(str(entry.get("project_key")), ("", ""))
            age = seconds(approved, run.finished_at)
            counts[(entity, region, batch.psa_id or 0, age)] += 1
    return [
        Observation(
            FRESHNESS,
            run.finished_at,
            age,
            Dims(entity, region, psa),
            count=n,
            ref=f"extract_run:{run.pk}",
        )
        for (entity, region, psa, age), n in sorted(counts.items())
    ]


# -- loading what the records need (shared by both paths) -----------------------------------


def posting_accuracy(
    run: ReconciliationRun, regions: dict[str, str] | None = None
) -> list[Observation]:
    """A finished invoices reconciliation: per legal entity, its keys matched (or with an
    accepted difference) count 1 and the others 0, at the run's finish; the connection is the
    ERP compared. A run counts as classified: its per-entity counts never change afterwards."""
    if (
        run.status != ReconciliationRun.Status.DONE
        or run.finished_at is None
        or run.definition.kind != ACCURACY_KIND
    ):
        return []
    if regions is None:
        regions = dict(LegalEntity.objects.values_list("code", "region"))
    ref = f"reconciliation_run:{run.pk}"
    out = []
    for row in run.by_entity:
        entity = str(row.get("legal_entity") or "")
        dims = Dims(entity, regions.get(entity, ""), run.definition.target_id)
        accurate = int(row.get("matched", 0)) + int(row.get("accepted", 0))
        other = int(row.get("compared", 0)) - accurate
        if accurate > 0:
            out.append(Observation(ACCURACY, run.finished_at, 1, dims, count=accurate, ref=ref))
        if other > 0:
            out.append(Observation(ACCURACY, run.finished_at, 0, dims, count=other, ref=ref))
    return out


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


def previous_payments(facts: list[InvoicePaymentFact]) -> dict[int, InvoicePaymentFact]:
    """For each fact, the invoice's fact just before it (by id), where there is one (one
    query for the lot)."""
    if not facts:
        return {}
    wanted = {f.pk for f in facts}
    rows = InvoicePaymentFact.objects.filter(
        erp_connection_id__in={f.erp_connection_id for f in facts},
        invoice_key__in={f.invoice_key for f in facts},
        pk__lte=max(wanted),
    ).order_by("erp_connection_id", "invoice_key", "pk")
    out: dict[int, InvoicePaymentFact] = {}
    last: InvoicePaymentFact | None = None
    for row in rows.iterator(chunk_size=CHUNK):
        same = last is not None and (last.erp_connection_id, last.invoice_key) == (
            row.erp_connection_id,
            row.invoice_key,
        )
        if row.pk in wanted and same and last is not None:
            out[row.pk] = last
        last = row
    return out


def previous_margins(facts: list[ProjectMarginFact]) -> dict[int, ProjectMarginFact]:
    """For each fact, the project's fact just before it (by id), where there is one (one
    query for the lot)."""
    if not facts:
        return {}
    wanted = {f.pk for f in facts}
    rows = ProjectMarginFact.objects.filter(
        deal_key__in={f.deal_key for f in facts}, pk__lte=max(wanted)
    ).order_by("deal_key", "pk")
    out: dict[int, ProjectMarginFact] = {}
    last: ProjectMarginFact | None = None
    for row in rows.iterator(chunk_size=CHUNK):
        if row.pk in wanted and last is not None and last.deal_key == row.deal_key:
            out[row.pk] = last
        last = row
    return out


def time_windows() -> list[tuple[tuple[dt.datetime, int], dt.datetime | None, dt.datetime]]:
    """Every time-dataset extract run that wrote a file: ((finished at, id), watermark
    from, watermark to), in the order they finished."""
    rows = (
        ExtractRun.objects.filter(
            extract__dataset=Extract.Dataset.TIME_ENTRIES,
            status=ExtractRun.Status.SUCCEEDED,
            finished_at__isnull=False,
            watermark_to__isnull=False,
        )
        .order_by("finished_at", "pk")
        .values_list("finished_at", "pk", "watermark_from", "watermark_to")
    )
    return [((finished, pk), start, end) for finished, pk, start, end in rows]


def _covers(start: dt.datetime | None, end: dt.datetime, at: dt.datetime) -> bool:
    return (start is None or start <= at) and at <= end


def first_written(
    run: ExtractRun,
    windows: list[tuple[tuple[dt.datetime, int], dt.datetime | None, dt.datetime]],
) -> list[PostingBatch]:
    """The posted time batches `run` wrote that no earlier time extract run wrote: those
    posted within its watermark window and within none of an earlier run's."""
    if run.watermark_to is None or run.finished_at is None:
        return []
    me = (run.finished_at, run.pk)
    earlier = [(start, end) for position, start, end in windows if position < me]
    batches = PostingBatch.objects.filter(
        record_type="timeBill",
        status__in=POSTED,
        posted_at__isnull=False,
        posted_at__lte=run.watermark_to,
    )
    if run.watermark_from is not None:
        batches = batches.filter(posted_at__gte=run.watermark_from)
    return [
        batch
        for batch in batches.order_by("posted_at", "pk")
        if not any(_covers(start, end, batch.posted_at) for start, end in earlier)
    ]


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


def for_payment_fact(fact: InvoicePaymentFact) -> list[Observation]:
    return payment(fact, previous_payments([fact]).get(fact.pk))


def for_earned_fact(fact: EarnedRevenueFact) -> list[Observation]:
    return [earned(fact)]


def for_margin_fact(fact: ProjectMarginFact) -> list[Observation]:
    return margin(fact, previous_margins([fact]).get(fact.pk))


def for_reconciliation_run(run: ReconciliationRun) -> list[Observation]:
    return posting_accuracy(run)


def is_time_extract(run: ExtractRun) -> bool:
    return (
        run.status == ExtractRun.Status.SUCCEEDED
        and run.extract.dataset == Extract.Dataset.TIME_ENTRIES
    )


def for_extract_run(run: ExtractRun) -> list[Observation]:
    """A time-dataset extract run that just wrote its file (other runs: nothing)."""
    if not is_time_extract(run):
        return []
    batches = first_written(run, time_windows())
    keys = {
        str((item.get("entry") or {}).get("project_key"))
        for batch in batches
        for item in batch.entries
        if item.get("erp_id")
    }
    return freshness(run, batches, deal_dims(keys))


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


def scan_payments(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    """Invoice payment facts with an observation in [start, end): counted when the invoice
    was raised (its first fact) or when its amounts changed."""
    facts = InvoicePaymentFact.objects.filter(
        _in("seen_at", start, end) | _in("invoiced_at", start, end)
    ).order_by("pk")
    for chunk in _chunks(facts):
        before = previous_payments(chunk)
        for fact in chunk:
            yield from payment(fact, before.get(fact.pk))


def scan_earned(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    facts = EarnedRevenueFact.objects.all()
    if start is not None:
        facts = facts.filter(period_end__gte=start.date())
    if end is not None:
        facts = facts.filter(period_end__lte=end.date())
    for chunk in _chunks(facts.order_by("pk")):
        for fact in chunk:
            yield earned(fact)


def scan_margins(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    facts = ProjectMarginFact.objects.filter(_in("recorded_at", start, end)).order_by("pk")
    for chunk in _chunks(facts):
        before = previous_margins(chunk)
        for fact in chunk:
            yield from margin(fact, before.get(fact.pk))


def scan_extracts(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    """Time-dataset extract runs that wrote a file and finished in [start, end)."""
    windows = time_windows()
    runs = (
        ExtractRun.objects.filter(
            _in("finished_at", start, end),
            extract__dataset=Extract.Dataset.TIME_ENTRIES,
            status=ExtractRun.Status.SUCCEEDED,
        )
        .select_related("extract")
        .order_by("pk")
    )
    for run in runs.iterator(chunk_size=100):
        batches = first_written(run, windows)
        keys = {
            str((item.get("entry") or {}).get("project_key"))
            for batch in batches
            for item in batch.entries
            if item.get("erp_id")
        }
        yield from freshness(run, batches, deal_dims(keys))


def scan_reconciliations(
    start: dt.datetime | None = None, end: dt.datetime | None = None
) -> Iterator[Observation]:
    """Invoices reconciliation runs that finished in [start, end)."""
    regions = dict(LegalEntity.objects.values_list("code", "region"))
    runs = (
        ReconciliationRun.objects.filter(
            _in("finished_at", start, end),
            status=ReconciliationRun.Status.DONE,
            definition__kind=ACCURACY_KIND,
        )
        .select_related("definition")
        .order_by("pk")
    )
    for run in runs.iterator(chunk_size=500):
        yield from posting_accuracy(run, regions)


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
    "payments": (scan_payments, {RECEIVABLES, INVOICED}),
    "earned": (scan_earned, {"earned_revenue"}),
    "margins": (scan_margins, {ACTUAL_MARGIN, MARGIN}),
    "extracts": (scan_extracts, {FRESHNESS}),
    "reconciliations": (scan_reconciliations, {ACCURACY}),
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
