"""Invoices: billing milestones completed in the PSA (Kantata stories of type milestone)
against invoices in the ERP (NetSuite), and the re-sync that re-runs milestone billing.

The key is the canonical key release-milestone-billing binds its invoice under (entity
"invoice"): `TL-INV-<PSA connection id>-<story id>`, which is also the invoice's externalId.
An ERP invoice is keyed through the bindings: by its externalId when a binding has that key,
else by its internal id when a binding names it, else `erp-invoice:<internal id>` (an invoice
Throughline did not raise: missing in source).

PSA side: the milestones of projects Throughline provisioned whose invoices go to the
definition's ERP (the ERP the invoice is bound in, else today's route for the deal's legal
entity) that are completed and billable, and those that carry Throughline's invoice reference
whatever their state (billed, then reopened: the invoice they have is shown, not lost).
Amount: the story's budget in the workspace currency (before tax); day: when it last became
completed; legal entity and customer: the deal's.

ERP side: every invoice of the ERP; amount: foreigntotal minus taxtotal (before tax), in the
invoice currency; day: trandate; legal entity: the subsidiary's binding; customer: the
customer's binding (`erp-customer:<id>` when Throughline did not create it).

Status, in Throughline's words, the same on both sides:
    to_invoice      PSA only: completed and billable, the PSA knows of no invoice
    invoiced        an open invoice (part-paid or overdue included)
    paid            paid in full
    cancelled       voided
    not_completed   PSA only: billed, then reopened
    not_billable    PSA only: billed, then made non-billable
A value outside this vocabulary is passed on as `kantata:<value>` or `netsuite:<code>`, so it
shows as a status difference a person can read.

Validation: an answer the connector cannot read (no id, a page without items) raises its
ResponseShapeError there; here a record whose compared values cannot be read (an amount that
is not a number, a date that is not a date, a budget the API user cannot see, no currency)
raises ResponseShapeError naming the record and the field. The run then fails with the
reason instead of reporting a false difference. Records out of scope (projects Throughline
did not provision, invoices routed to another ERP) are skipped and counted in the log.

Incremental pulls read what changed since the watermark: stories by updated_at (and those
whose Throughline reference changed), invoices by lastmodifieddate. They cannot see a record
leave (an invoice deleted, a milestone reopened before it was billed): the next full pull does.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from integrations import services
from integrations.choices import ErpDocument, RunStatus, SystemKind, Trigger
from integrations.connectors.kantata.mapping import from_subunits
from integrations.connectors.netsuite.mapping import (
    OPEN_STATUSES,
    PAID_STATUSES,
    VOID_STATUSES,
)
from integrations.models import Connection, ExternalBinding, SyncRun
from integrations.workflows.milestone_billing import WORKFLOW as MILESTONE_BILLING
from integrations.workflows.milestone_billing import milestone_invoice_key
from integrations.workflows.registry import get_workflow

from ..models import Definition, Side, SnapshotRecord
from ..pulling import PullContext
from ..records import PulledRecord
from .handoffs import Deals
from .scoping import ErpScope, currency_codes, keys_of
from .values import amount, day, newest, shape_error, stamp

logger = logging.getLogger(__name__)

ENTITY = "invoice"
#: ERP rows resolved against the bindings together (two queries a chunk)
CHUNK = 1000
#: the PSA reference's external_status -> Throughline's word
PSA_STATUSES = {
    "synced": "invoiced",
    "overdue": "invoiced",
    "paid": "paid",
    "cancelled": "cancelled",
}


def milestone_key(psa: Connection, story_id: str) -> str:
    """The canonical key of a milestone's invoice (the one milestone billing binds)."""
    return milestone_invoice_key(psa.pk, story_id)


# -- PSA --------------------------------------------------------------------------------------
def psa_milestones(ctx: PullContext) -> dt.datetime | None:
    """Emit the PSA's billing milestones in scope (see the module doc); return the newest
    change seen (story or Throughline reference)."""
    psa, erp = ctx.connection, ctx.definition.target
    deals = Deals(psa)
    scope = ErpScope(erp)
    latest: dt.datetime | None = None
    skipped = {"not provisioned by Throughline": 0, "invoiced in another ERP": 0}
    page: list[dict[str, Any]] = []

    def flush() -> None:
        for story, deal in _in_scope(page, psa, scope, deals, skipped):
            ctx.emit(_milestone_record(psa, story, deal))
        page.clear()

    for story in ctx.client.milestone_stories(ctx.since):
        reference = story.get("throughline_reference") or {}
        latest = newest(latest, stamp(story.get("updated_at")), stamp(reference.get("updated_at")))
        if not _billable_or_billed(story):
            continue
        page.append(story)
        if len(page) >= CHUNK:
            flush()
    flush()
    _log_skipped(ctx, skipped)
    return latest


def _billable_or_billed(story: dict[str, Any]) -> bool:
    reference = story.get("throughline_reference") or {}
    if reference.get("service_model") == "Invoice":
        return True
    return story.get("state") == "completed" and story.get("billable") is not False


def _in_scope(
    stories: list[dict[str, Any]],
    psa: Connection,
    scope: ErpScope,
    deals: Deals,
    skipped: dict[str, int],
) -> Iterator[tuple[dict[str, Any], Any]]:
    """The stories whose project Throughline provisioned and whose invoice goes to the scope's
    ERP: the ERP it is bound in, else today's route for the deal's legal entity."""
    keys = [milestone_key(psa, str(story["id"])) for story in stories]
    bound_in: dict[str, set[int]] = {}
    erps = Connection.objects.filter(system=SystemKind.ERP).values_list("pk", flat=True)
    for key, connection_id in ExternalBinding.objects.filter(
        connection_id__in=list(erps), entity_type=ENTITY, canonical_key__in=keys
    ).values_list("canonical_key", "connection_id"):
        bound_in.setdefault(key, set()).add(connection_id)
    for story, key in zip(stories, keys, strict=True):
        deal = deals.of_workspace(str(story.get("workspace_id")))
        if deal is None:
            skipped["not provisioned by Throughline"] += 1
            continue
        if key in bound_in:
            here = scope.erp.pk in bound_in[key]
        else:
            here = scope.routes_here(deal.legal_entity, ErpDocument.INVOICE)
        if not here:
            skipped["invoiced in another ERP"] += 1
            continue
        yield story, deal


def _milestone_record(psa: Connection, story: dict[str, Any], deal: Any) -> PulledRecord:
    sid = str(story["id"])
    where, operation = f"Kantata story {sid}", "kantata.stories.list"
    currency = story.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise shape_error(operation, story, f"{where}: its workspace has no currency")
    if "budget_estimate_in_cents" not in story:
        raise shape_error(
            operation, story, f"{where}: budget_estimate_in_cents is not visible to the API user"
        )
    raw = story["budget_estimate_in_cents"]
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw)
    if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or raw < 0):
        raise shape_error(
            operation,
            story,
            f"{where}: budget_estimate_in_cents {raw!r} is not a whole number of subunits",
        )
    # when it last became completed; a story the PSA gives no completion time: its last change
    completed = "completed_at" if story.get("completed_at") else "updated_at"
    completed_day = day(operation, story, completed, where, required=True, with_time=True)
    reference = story.get("throughline_reference") or {}
    return PulledRecord(
        key=milestone_key(psa, sid),
        native_id=sid,
        legal_entity=deal.legal_entity,
        currency=currency,
        amount=from_subunits(raw or 0, currency),
        status=_psa_status(story, reference),
        day=completed_day,
        fields={
            "customer": deal.customer,
            "milestone": str(story.get("title") or ""),
            "deal": deal.key,
            "workspace": str(story.get("workspace_id") or ""),
        },
        modified_at=newest(stamp(story.get("updated_at")), stamp(reference.get("updated_at"))),
    )


def _psa_status(story: dict[str, Any], reference: dict[str, Any]) -> str:
    if story.get("state") != "completed":
        return "not_completed"
    if story.get("billable") is False:
        return "not_billable"
    if reference.get("service_model") != "Invoice":
        return "to_invoice"
    status = str(reference.get("external_status") or "")
    return PSA_STATUSES.get(status, f"kantata:{status or 'none'}")


# -- ERP --------------------------------------------------------------------------------------
def erp_invoices(ctx: PullContext) -> dt.datetime | None:
    """Emit every invoice of the ERP (those changed since `ctx.since` on an incremental
    pull), keyed through the bindings; return the newest lastmodifieddate seen."""
    erp = ctx.connection
    client = ctx.client
    currencies = currency_codes(client)
    entities = keys_of(erp, "legal_entity")
    customers = keys_of(erp, "customer")
    latest: dt.datetime | None = None
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        keys = _invoice_keys(erp, chunk)
        for row in chunk:
            ctx.emit(_invoice_record(row, keys[str(row["id"])], currencies, entities, customers))
        chunk.clear()

    for row in client.invoices(ctx.since):
        latest = newest(latest, stamp(row.get("lastmodifieddate")))
        chunk.append(row)
        if len(chunk) >= CHUNK:
            flush()
    flush()
    return latest


def _invoice_keys(erp: Connection, rows: list[dict[str, Any]]) -> dict[str, str]:
    """{internal id: key} for a chunk of invoice rows (two queries)."""
    externals = {str(r["externalid"]) for r in rows if r.get("externalid")}
    ids = [str(r["id"]) for r in rows]
    bindings = ExternalBinding.objects.filter(connection=erp, entity_type=ENTITY)
    by_key = set(
        bindings.filter(canonical_key__in=externals).values_list("canonical_key", flat=True)
    )
    by_id = dict(bindings.filter(external_id__in=ids).values_list("external_id", "canonical_key"))
    keys = {}
    for row in rows:
        rid, external = str(row["id"]), str(row.get("externalid") or "")
        if external and external in by_key:
            keys[rid] = external
        else:
            keys[rid] = by_id.get(rid) or f"erp-invoice:{rid}"
    return keys


def _invoice_record(
    row: dict[str, Any],
    key: str,
    currencies: dict[str, str],
    entities: dict[str, str],
    customers: dict[str, str],
) -> PulledRecord:
    rid = str(row["id"])
    where, operation = f"NetSuite invoice {rid}", "netsuite.invoice.list"
    total = amount(operation, row, "foreigntotal", where, required=True)
    # SuiteQL leaves out an empty column: no taxtotal is no tax
    tax = amount(operation, row, "taxtotal", where, required=True) if "taxtotal" in row else 0
    currency = currencies.get(str(row.get("currency") or ""), "")
    if len(currency) != 3:
        raise shape_error(
            operation, row, f"{where}: currency {row.get('currency')!r} is not a known currency"
        )
    entity = str(row.get("entity") or "")
    return PulledRecord(
        key=key,
        native_id=rid,
        legal_entity=entities.get(str(row.get("subsidiary") or ""), ""),
        currency=currency,
        amount=total - tax,
        status=_erp_status(row.get("status")),
        day=day(operation, row, "trandate", where, required=True),
        fields={
            "customer": customers.get(entity) or f"erp-customer:{entity}",
            "number": str(row.get("tranid") or ""),
            "external_id": str(row.get("externalid") or ""),
        },
        modified_at=stamp(row.get("lastmodifieddate")),
    )


def _erp_status(raw: Any) -> str:
    code = str(raw or "").strip().lower()
    if code in OPEN_STATUSES:
        return "invoiced"
    if code in PAID_STATUSES:
        return "paid"
    if code in VOID_STATUSES:
        return "cancelled"
    return f"netsuite:{code or 'none'}"


# -- re-sync ----------------------------------------------------------------------------------
def resync(definition: Definition, keys: Iterable[str]) -> dict[str, str]:
    """Re-run milestone billing for the milestones with these keys, through the engine's
    public services: a finished run runs every step again (the invoice upsert is keyed by
    externalId, so an amount is corrected and nothing is billed twice), a milestone without
    a run gets one. Returns {key: what happened, in words}: "queued: ..." when a run was
    started or re-run (reconciliation.actions.resync marks the difference so), "cannot
    re-sync: ..." for keys only a person can resolve (missing in the PSA, duplicated)."""
    psa = definition.source
    wanted = list(dict.fromkeys(keys))
    rows: dict[tuple[str, str], list[SnapshotRecord]] = {}
    for row in SnapshotRecord.objects.filter(definition=definition, key__in=wanted):
        rows.setdefault((row.key, row.side), []).append(row)
    outcomes: dict[str, str] = {}
    for key in wanted:
        source = rows.get((key, Side.SOURCE), [])
        target = rows.get((key, Side.TARGET), [])
        refusal = _cannot(source, target, definition)
        if refusal:
            outcomes[key] = f"cannot re-sync: {refusal}"
            continue
        outcomes[key] = _rebill(psa, source[0])
    return outcomes


def _cannot(
    source: list[SnapshotRecord], target: list[SnapshotRecord], definition: Definition
) -> str:
    if len(target) > 1:
        ids = ", ".join(sorted(row.native_id for row in target))
        return (
            f"{definition.target.name} holds {len(target)} invoices for this milestone "
            f"({ids}); void or delete the extra ones there, then run the comparison again"
        )
    if len(source) > 1:
        return f"{definition.source.name} holds {len(source)} milestones with this key"
    if not source and target:
        return (
            f"no completed, billable milestone in {definition.source.name} has invoice "
            f"{target[0].native_id}; credit or void it in {definition.target.name}, or "
            "accept the difference with a reason"
        )
    if not source:
        return "the key is in neither side's latest pull; run the comparison again"
    return ""


def _rebill(psa: Connection, row: SnapshotRecord) -> str:
    story_id = row.native_id
    if row.status in ("not_completed", "not_billable"):
        return (
            f"cannot re-sync: the milestone is {row.status.replace('_', ' ')} in {psa.name}; "
            "the invoice it has needs a person (credit or void it), or accept the difference"
        )
    correlation = f"milestone:{psa.pk}:{story_id}"
    run = SyncRun.objects.filter(workflow=MILESTONE_BILLING, correlation_id=correlation).first()
    if run is None:
        fields = row.fields or {}
        run, _created = services.start_run(
            MILESTONE_BILLING,
            correlation,
            trigger=Trigger.MANUAL,
            source_connection=psa,
            payload={
                "psa_connection": psa.pk,
                "story_id": story_id,
                "workspace_id": str(fields.get("workspace") or ""),
                "event_id": "",
                "deal_key": str(fields.get("deal") or ""),
                "billable": True,
            },
            business_key=str(fields.get("deal") or "") or correlation,
        )
        return f"queued: milestone billing started (run {run.pk})"
    steps = get_workflow(MILESTONE_BILLING).step_names()
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING) or not services.rerun_steps(
        run, steps, reason="reconciliation re-sync"
    ):
        return f"milestone billing is already under way (run {run.pk}); the next run shows it"
    return f"queued: milestone billing runs again from its first step (run {run.pk})"


def _log_skipped(ctx: PullContext, skipped: dict[str, int]) -> None:
    for reason, count in skipped.items():
        if count:
            logger.info(
                "reconciliation %s: %d %s records skipped: %s",
                ctx.definition.name,
                count,
                ctx.side,
                reason,
            )
