"""Resource-to-finance: approved PSA time entries posted to the ERP in batches.

`collect_time_entries` reads approved entries changed since the watermark (pages of 200),
checks each against the posting policy, and saves valid ones as PostingBatch rows of up to
500 per target ERP (routing: postings of the project's legal entity) before enqueueing one
`post_batch` task per batch through the outbox. Policy failures become exceptions grouped
per project and cause. `post_batch` posts through the ERP's bulk endpoint (NetSuite: the
RESTlet); per-entry refusals (a closed period) become exceptions, and the status goes back
to the PSA in a separate, lower-priority task.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console import audit

from . import bindings, outbox, purchase_orders
from .canonical import schemas
from .canonical.errors import MappingError
from .choices import ErpDocument
from .connectors.errors import ValidationError as ConnectorValidationError
from .connectors.kantata import mapping as kantata_mapping
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .models import (
    Connection,
    ExchangeRate,
    ExternalBinding,
    LegalEntity,
    PostingBatch,
    SyncRun,
    Watermark,
)
from .queues import queue_for
from .routing import erp_for
from .signals import entries_posted, posting_rejected
from .telemetry import CallBuffer
from .workflows.failures import StepFailure

logger = logging.getLogger(__name__)

TIME_STREAM = "kantata.time_entries"
BATCH_SIZE = 500
#: ERP record type -> (PSA subject, model named on the PSA's reference)
REFERENCE_MODELS = {
    "timeBill": ("TimeEntry", "TimeBill"),
    "expenseReport": ("Expense", "ExpenseReport"),
    "vendorBill": ("Expense", "VendorBill"),
}


@dataclass
class Project:
    """What posting needs to know of a PSA project: its deal, legal entity and ERP ids."""

    deal_key: str
    legal_entity: str
    erp: Connection
    job_id: str | None
    subsidiary_id: str | None


@dataclass
class CollectResult:
    read: int = 0
    batched: int = 0
    rejected: int = 0
    batches: list[int] = field(default_factory=list)


def collect_time_entries(psa: Connection) -> CollectResult:
    """Read approved time page by page; each batch of 500 is saved and handed to a worker
    as soon as it is full, so posting overlaps reading in a month-end burst."""
    return _collect(psa, TIME_STREAM, _Collector(psa), "approved_time_entries")


def _collect(psa: Connection, stream: str, collector: _Collector, feed: str) -> CollectResult:
    """Read what changed since the watermark. Kantata's `updated_after` is strict and counts
    whole seconds, so the read starts one second early (an entry approved in the second the
    watermark stands at, after the previous read, is not lost) and skips the entries of that
    second the previous read already handed over (the watermark keeps their ids)."""
    mark, _ = Watermark.objects.get_or_create(connection=psa, stream=stream)
    edge, seen_at_edge = _edge(mark.value)
    since = edge - EDGE if edge is not None else None
    buffer = CallBuffer()
    client = build_client(psa, on_call=buffer)
    newest, at_newest = edge, set(seen_at_edge)
    try:
        for entry in getattr(client, feed)(since):
            changed = parse_datetime(str(entry.get("updated_at") or ""))
            rid = str(entry.get("id"))
            if changed is not None and changed == edge and rid in seen_at_edge:
                continue  # handed over by the previous read
            if changed is not None and (newest is None or changed > newest):
                newest, at_newest = changed, set()
            if changed is not None and changed == newest:
                at_newest.add(rid)
            collector.add(entry)
    finally:
        client.close()
        buffer.flush()
    with transaction.atomic():
        collector.flush(final=True)
        if newest is not None:
            mark.value = json.dumps({"at": newest.isoformat(), "ids": sorted(at_newest)})
            mark.save(update_fields=["value", "updated_at"])
    return collector.result


#: how far before the watermark a read starts: the PSA's change times are whole seconds
EDGE = dt.timedelta(seconds=1)


def _edge(value: str) -> tuple[dt.datetime | None, set[str]]:
    """The watermark's time and the ids read at that very time (older watermarks: a bare
    time, no ids)."""
    if not value:
        return None, set()
    if value.startswith("{"):
        data = json.loads(value)
        return parse_datetime(str(data.get("at") or "")), {str(i) for i in data.get("ids", [])}
    return parse_datetime(value), set()


class _Collector:
    """Sorts entries into postable batches (per target ERP) and policy refusals."""

    record_type = "timeBill"
    prefix = "time"

    def __init__(self, psa: Connection) -> None:
        self.psa = psa
        self.result = CollectResult()
        self.projects: dict[str, Project | None] = {}
        self.people: dict[tuple[int, str], str] = {}
        self.known_users: set[str] = set()
        self.groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.rejected: dict[tuple[str, str], list[str]] = defaultdict(list)

    def add(self, entry: dict[str, Any]) -> None:
        self.result.read += 1
        workspace = str(entry.get("workspace_id"))
        if workspace not in self.projects:
            self.projects[workspace] = _projects(self.psa, {workspace}).get(workspace)
        user = str(entry.get("user_id"))
        if user not in self.known_users:
            self.people.update(_people(self.psa, {user}))
            self.known_users.add(user)
        project = self.projects[workspace]
        if project is None:
            self.rejected[("time_entry_on_unknown_project", workspace)].append(str(entry.get("id")))
            return
        try:
            canonical = self.canonical(entry, project)
        except MappingError:
            self.rejected[(f"{self.prefix}_entry_invalid", workspace)].append(str(entry.get("id")))
            return
        except PolicyRefusal as refusal:
            self.rejected[(refusal.code, workspace)].append(str(entry.get("id")))
            return
        employee = self.people.get((project.erp.pk, canonical.person_id))
        if employee is None:
            self.rejected[("person_not_in_erp", workspace)].append(canonical.source_id)
            return
        if not project.job_id or not project.subsidiary_id:
            self.rejected[("project_not_in_erp", workspace)].append(canonical.source_id)
            return
        self._append(project, canonical, employee_id=employee)

    def _append(self, project: Project, canonical: Any, **ids: str) -> None:
        """Queue one postable entry; hand a batch to a worker as soon as it is full."""
        group = self.groups[project.erp.pk]
        group.append(
            {
                "entry": canonical.model_dump(mode="json"),
                "job_id": project.job_id,
                "subsidiary_id": project.subsidiary_id,
                **ids,
            }
        )
        if len(group) >= BATCH_SIZE:
            with transaction.atomic():
                self._hand_off(project.erp.pk, group[:BATCH_SIZE])
            del group[:BATCH_SIZE]

    def canonical(self, entry: dict[str, Any], project: Project) -> Any:
        return kantata_mapping.time_entry_from_kantata(entry, project_key=project.deal_key)

    def flush(self, *, final: bool) -> None:
        for erp_id, items in self.groups.items():
            if items:
                self._hand_off(erp_id, items)
        self.groups.clear()
        for (code, workspace), entry_ids in self.rejected.items():
            self.result.rejected += len(entry_ids)
            _reject(self.psa, code, workspace, entry_ids, record_type=self.record_type)
        self.rejected.clear()

    def _hand_off(self, erp_id: int, chunk: list[dict[str, Any]]) -> None:
        ids = [c["entry"]["source_id"] for c in chunk]
        batch, created = PostingBatch.objects.get_or_create(
            key=f"{self.prefix}:{self.psa.pk}:{erp_id}:{ids[0]}:{ids[-1]}:{len(ids)}",
            defaults={
                "psa": self.psa,
                "erp_id": erp_id,
                "record_type": self.record_type,
                "entries": list(chunk),
            },
        )
        if created:
            outbox.enqueue(
                "integrations.post_batch", batch.pk, queue=queue_for(erp_id), key=batch.key
            )
            self.result.batches.append(batch.pk)
            self.result.batched += len(chunk)


class PolicyRefusal(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _ExpenseCollector(_Collector):
    """Expenses: a receipt above the threshold, and the amount in the legal entity's
    currency at the ERP's own rate (the original amount stays in the memo)."""

    record_type = "expenseReport"
    prefix = "expense"

    def __init__(self, psa: Connection) -> None:
        super().__init__(psa)
        self.charges = _ChargeCollector(psa)

    def add(self, entry: dict[str, Any]) -> None:
        if entry.get("vendor_id"):
            self.charges.add(entry)  # a subcontractor's charge, not an employee's expense
        else:
            super().add(entry)

    def flush(self, *, final: bool) -> None:
        super().flush(final=final)
        self.charges.flush(final=final)
        for name in ("read", "batched", "rejected"):
            setattr(
                self.result, name, getattr(self.result, name) + getattr(self.charges.result, name)
            )
        self.result.batches += self.charges.result.batches

    def canonical(self, entry: dict[str, Any], project: Project) -> Any:
        expense = kantata_mapping.expense_from_kantata(entry, project_key=project.deal_key)
        if expense.amount >= settings.EXPENSE_RECEIPT_THRESHOLD and not expense.receipt_attached:
            raise PolicyRefusal("expense_receipt_missing")
        target = (
            LegalEntity.objects.filter(code=project.legal_entity)
            .values_list("currency", flat=True)
            .first()
        )
        if target and target != expense.currency:
            rate = (
                ExchangeRate.objects.filter(
                    source=project.erp,
                    base=expense.currency,
                    quote=target,
                    effective_date__lte=expense.spent_on,
                )
                .order_by("-effective_date")
                .values_list("rate", flat=True)
                .first()
            )
            if rate is None:
                raise PolicyRefusal("exchange_rate_missing")
            converted = (expense.amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
            note = f"{expense.amount} {expense.currency} at {rate} ({project.erp.name})"
            expense = expense.model_copy(
                update={
                    "amount": converted,
                    "currency": target,
                    "notes": f"{expense.notes} [{note}]".strip()[:255],
                }
            )
        return expense


class _ChargeCollector(_Collector):
    """Subcontractor charges: approved PSA expenses with a vendor, billed to that vendor in
    the ERP (a vendor bill tied to the project's job), keyed by the PSA expense id. A charge
    from a vendor whose subcontractor has a purchase order on the project names that order
    (`purchase_order_source_id`; the bill carries its ERP id)."""

    record_type = "vendorBill"
    prefix = "charge"

    def add(self, entry: dict[str, Any]) -> None:
        self.result.read += 1
        workspace = str(entry.get("workspace_id"))
        if workspace not in self.projects:
            self.projects[workspace] = _projects(self.psa, {workspace}).get(workspace)
        project = self.projects[workspace]
        entry_id = str(entry.get("id"))
        if project is None:
            self.rejected[("time_entry_on_unknown_project", workspace)].append(entry_id)
            return
        if not project.job_id or not project.subsidiary_id:
            self.rejected[("project_not_in_erp", workspace)].append(entry_id)
            return
        vendor_key = bindings.canonical_key(self.psa, "vendor", str(entry.get("vendor_id")))
        vendor_id = bindings.lookup(project.erp, "vendor", vendor_key) if vendor_key else None
        if vendor_id is None:
            self.rejected[("vendor_not_in_erp", workspace)].append(entry_id)
            return
        # the vendor's purchase order on the project, when its subcontractor is assigned
        order = purchase_orders.for_charge(project.erp, vendor_key or "", project.deal_key)
        try:
            expense = kantata_mapping.expense_from_kantata(entry, project_key=project.deal_key)
            charge = schemas.validate(
                schemas.SubcontractorCharge,
                {
                    "source_id": expense.source_id,
                    "vendor_name": (vendor_key or "").removeprefix("vendor:") or "vendor",
                    "project_key": project.deal_key,
                    "amount": expense.amount,
                    "currency": expense.currency,
                    "incurred_on": expense.spent_on,
                    "purchase_order_source_id": order[0] if order else None,
                },
                source="kantata expense",
            )
        except MappingError:
            self.rejected[("expense_entry_invalid", workspace)].append(entry_id)
            return
        if order is not None:
            self._append(project, charge, vendor_id=vendor_id, purchase_order_id=order[1])
        else:
            self._append(project, charge, vendor_id=vendor_id)


EXPENSE_STREAM = "kantata.expenses"


def collect_expenses(psa: Connection) -> CollectResult:
    """Approved expenses since the watermark, policy-checked and batched like time."""
    return _collect(psa, EXPENSE_STREAM, _ExpenseCollector(psa), "approved_expenses")


def _bodies(batch: PostingBatch, client: Any) -> list[dict[str, Any]]:
    if batch.record_type == "vendorBill":
        currencies = netsuite_mapping.currency_ids(
            client.suiteql("SELECT id, symbol FROM currency")
        )
        return [
            netsuite_mapping.vendor_bill_from_charge(
                schemas.SubcontractorCharge.model_validate(item["entry"]),
                vendor_id=item["vendor_id"],
                job_id=item["job_id"],
                subsidiary_id=item["subsidiary_id"],
                currency_id=currencies[item["entry"]["currency"]],
                purchase_order_id=item.get("purchase_order_id"),
            )
            for item in batch.entries
        ]
    if batch.record_type == "expenseReport":
        currencies = netsuite_mapping.currency_ids(
            client.suiteql("SELECT id, symbol FROM currency")
        )
        return [
            netsuite_mapping.expense_report_from_expense(
                schemas.Expense.model_validate(item["entry"]),
                employee_id=item["employee_id"],
                job_id=item["job_id"],
                subsidiary_id=item["subsidiary_id"],
                currency_id=currencies[item["entry"]["currency"]],
            )
            for item in batch.entries
        ]
    return [
        netsuite_mapping.time_bill_from_entry(
            schemas.TimeEntry.model_validate(item["entry"]),
            employee_id=item["employee_id"],
            job_id=item["job_id"],
            subsidiary_id=item["subsidiary_id"],
        )
        for item in batch.entries
    ]


def _upsert_vendor_bill(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    """One vendor bill, answered like a bulk-post result."""
    try:
        bill_id = client.upsert_vendor_bill(body["externalId"], body)
    except ConnectorValidationError as exc:
        return {
            "externalId": body["externalId"],
            "status": "error",
            "error": {"code": exc.vendor_code or "refused", "message": exc.message},
        }
    return {"externalId": body["externalId"], "status": "created", "id": bill_id}


def post_batch(batch_id: int) -> PostingBatch:
    batch = PostingBatch.objects.select_related("erp", "psa").get(pk=batch_id)
    if batch.status in (PostingBatch.Status.POSTED, PostingBatch.Status.PARTIAL):
        return batch
    buffer = CallBuffer()
    client = build_client(batch.erp, on_call=buffer)
    try:
        bodies = _bodies(batch, client)
        if batch.record_type == "vendorBill":  # few, through the record service
            results = [_upsert_vendor_bill(client, body) for body in bodies]
        else:
            results = client.post_batch(batch.record_type, bodies)
    except Exception as exc:
        batch.status = PostingBatch.Status.FAILED
        batch.error = str(exc)[:500]
        batch.save(update_fields=["status", "error"])
        raise
    finally:
        client.close()
        buffer.flush()
    errors: dict[str, list[str]] = defaultdict(list)
    messages: dict[str, str] = {}
    refused_money: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for item, outcome in zip(batch.entries, results, strict=True):
        state = outcome.get("status")
        if state == "created":
            batch.created_count += 1
            item["erp_id"] = str(outcome.get("id"))
        elif state == "exists":
            batch.existing_count += 1
            item["erp_id"] = str(outcome.get("id"))
        else:
            batch.error_count += 1
            error = outcome.get("error") or {}
            code = str(error.get("code") or "posting_refused")
            errors[code].append(item["entry"]["source_id"])
            messages.setdefault(code, str(error.get("message") or "")[:300])
            money = _entry_money(item["entry"])
            if money is not None:
                refused_money[code][money[1]] += money[0]
    batch.status = PostingBatch.Status.PARTIAL if errors else PostingBatch.Status.POSTED
    batch.posted_at = timezone.now()
    with transaction.atomic():
        batch.save()
        for code, entry_ids in errors.items():
            failure = StepFailure(
                kind="business",
                code="posting_refused_by_erp",
                message=(
                    f"{batch.erp.name} refused {len(entry_ids)} time entries ({code}): "
                    f"{messages.get(code, '')}"
                ),
                entity_type="posting_batch",
                entity_ref=batch.key[:120],
                connection_id=batch.erp_id,
                details={
                    "vendor_code": code,
                    "entries": entry_ids[:500],
                    "record_type": batch.record_type,
                    # what the refused entries are worth, per currency (exception queues)
                    "amounts": {cur: str(total) for cur, total in refused_money[code].items()},
                },
            )
            posting_rejected.send(sender=PostingBatch, failure=failure, key=(batch.key, code))
        posted = [item["entry"]["source_id"] for item in batch.entries if item.get("erp_id")]
        if posted:
            entries_posted.send(sender=PostingBatch, batch=batch, entry_ids=posted)
        # Status back to the PSA is one call per entry: it waits, so that at month-end the
        # postings to the ledger go first and the PSA hears about them right after.
        outbox.enqueue(
            "integrations.report_postings",
            batch.pk,
            queue=queue_for(batch.psa_id),
            key=batch.key,
            countdown=settings.POSTING_STATUS_DELAY_SECONDS,
        )
    return batch


def _entry_money(entry: dict[str, Any]) -> tuple[Decimal, str] | None:
    """What one entry is worth: an expense's or charge's amount, or time at its cost rate."""
    currency = entry.get("currency")
    if not currency:
        return None
    if entry.get("amount") is not None:
        return Decimal(str(entry["amount"])), str(currency)
    if entry.get("hours") is not None and entry.get("cost_rate") is not None:
        amount = Decimal(str(entry["hours"])) * Decimal(str(entry["cost_rate"]))
        return amount.quantize(Decimal("0.01"), ROUND_HALF_UP), str(currency)
    return None


def report_postings(batch_id: int) -> int:
    """Write each posted entry's ERP id back to the PSA (status synced)."""
    batch = PostingBatch.objects.select_related("psa").get(pk=batch_id)
    if batch.reported:
        return 0
    buffer = CallBuffer()
    client = build_client(batch.psa, on_call=buffer)
    written = 0
    try:
        for item in batch.entries:
            if item.get("erp_id"):
                subject, model = REFERENCE_MODELS[batch.record_type]
                client.set_reference(
                    subject,
                    item["entry"]["source_id"],
                    ref=item["erp_id"],
                    model=model,
                    status="synced",
                )
                written += 1
    finally:
        client.close()
        buffer.flush()
    PostingBatch.objects.filter(pk=batch.pk).update(reported=True)
    return written


#: entries re-posted per PSA read (below BATCH_SIZE: the collector never hands a batch off)
REPOST_CHUNK = 200
#: why the posting policy refuses an entry, in words (re-sync outcomes)
REFUSALS = {
    "time_entry_on_unknown_project": "its project was not provisioned by Throughline",
    "time_entry_invalid": "it does not read as a time entry (its hours or date)",
    "person_not_in_erp": "its person is not an employee in the ERP (sync the people first)",
    "project_not_in_erp": "its project is not in the ERP yet",
}


def repost_time_entries(psa: Connection, erp: Connection, entry_ids: list[str]) -> dict[str, str]:
    """Post these approved time entries to `erp` again (a reconciliation's re-sync): each is
    upserted by its externalId through the ERP's record service, so a missing time bill is
    created, one whose values drifted is corrected, and none is posted twice. The posting
    policy applies as for `collect_time_entries`; posted entries' ERP ids go back to the PSA.
    Returns {entry id: what happened, in words}, "cannot re-sync: ..." when not posted."""
    wanted = list(dict.fromkeys(str(i) for i in entry_ids))
    outcomes: dict[str, str] = {
        i: f"cannot re-sync: {i!r} is not a {psa.name} time entry id"
        for i in wanted
        if not i.isdigit()
    }
    readable = [i for i in wanted if i not in outcomes]
    posted: list[tuple[str, str]] = []
    buffer = CallBuffer()
    psa_client = build_client(psa, on_call=buffer)
    erp_client = build_client(erp, on_call=buffer)
    try:
        for start in range(0, len(readable), REPOST_CHUNK):
            chunk = readable[start : start + REPOST_CHUNK]
            collector = _Collector(psa)
            for entry in psa_client.approved_time_entries(only=chunk):
                collector.add(entry)
            for (code, workspace), ids in collector.rejected.items():
                for entry_id in ids:
                    why = REFUSALS.get(code, code)
                    outcomes[entry_id] = f"cannot re-sync: {why} (project {workspace})"
            for erp_id, items in collector.groups.items():
                for item in items:
                    entry_id = item["entry"]["source_id"]
                    if erp_id != erp.pk:
                        outcomes[entry_id] = (
                            "cannot re-sync: its project's time now posts to another ERP"
                        )
                        continue
                    outcomes[entry_id] = _repost(erp, erp_client, item, posted)
            for entry_id in chunk:
                outcomes.setdefault(
                    entry_id,
                    f"cannot re-sync: not an approved time entry in {psa.name} (deleted, or "
                    "its approval withdrawn)",
                )
        for entry_id, bill_id in posted:
            psa_client.set_reference(
                "TimeEntry", entry_id, ref=bill_id, model="TimeBill", status="synced"
            )
    finally:
        psa_client.close()
        erp_client.close()
        buffer.flush()
    if posted:
        audit.record(
            "erp.time_bills.reposted",
            f"{len(posted)} time entries of {psa.name} re-posted to {erp.name}",
            connection=erp.name,
            entries=[entry_id for entry_id, _ in posted][:500],
            idempotency_key="externalId = the PSA time entry id",
        )
    return {i: outcomes[i] for i in wanted}


def _repost(
    erp: Connection, client: Any, item: dict[str, Any], posted: list[tuple[str, str]]
) -> str:
    """Upsert one entry's time bill by externalId; what happened, in words."""
    entry = schemas.TimeEntry.model_validate(item["entry"])
    body = netsuite_mapping.time_bill_from_entry(
        entry,
        employee_id=item["employee_id"],
        job_id=item["job_id"],
        subsidiary_id=item["subsidiary_id"],
    )
    try:
        bill_id = client.upsert_by_external_id("timeBill", entry.source_id, body)
    except ConnectorValidationError as exc:
        return f"cannot re-sync: {erp.name} refused it: {exc.message}"
    posted.append((entry.source_id, bill_id))
    return f"posted to {erp.name} as time bill {bill_id}"


def _projects(psa: Connection, workspace_ids: set[str]) -> dict[str, Project]:
    keys = dict(
        ExternalBinding.objects.filter(
            connection=psa, entity_type="project", external_id__in=workspace_ids
        ).values_list("external_id", "canonical_key")
    )
    handoffs = {
        run.correlation_id: run
        for run in SyncRun.objects.filter(
            workflow="create_service_engagement", correlation_id__in=set(keys.values())
        )
    }
    projects: dict[str, Project] = {}
    for workspace, deal_key in keys.items():
        run = handoffs.get(deal_key)
        if run is None or "fetch_deal" not in run.context:
            continue
        opp = schemas.Opportunity.model_validate(run.context["fetch_deal"]["opportunity"])
        erp = erp_for(opp.legal_entity_code, ErpDocument.POSTING)
        job = (
            ExternalBinding.objects.filter(
                connection=erp, entity_type="project", canonical_key=deal_key
            )
            .values_list("external_id", flat=True)
            .first()
        )
        subsidiary = (
            ExternalBinding.objects.filter(
                connection=erp, entity_type="legal_entity", canonical_key=opp.legal_entity_code
            )
            .values_list("external_id", flat=True)
            .first()
        )
        projects[workspace] = Project(deal_key, opp.legal_entity_code, erp, job, subsidiary)
    return projects


def _people(psa: Connection, user_ids: set[str]) -> dict[tuple[int, str], str]:
    """(ERP connection id, PSA user id) -> ERP employee id, through the person bindings."""
    keys = dict(
        ExternalBinding.objects.filter(
            connection=psa, entity_type="person", external_id__in=user_ids
        ).values_list("canonical_key", "external_id")
    )
    people: dict[tuple[int, str], str] = {}
    for binding in ExternalBinding.objects.filter(entity_type="person", canonical_key__in=keys):
        if binding.connection_id != psa.pk:
            people[(binding.connection_id, keys[binding.canonical_key])] = binding.external_id
    return people


def _reject(
    psa: Connection, code: str, workspace: str, entry_ids: list[str], *, record_type: str = ""
) -> None:
    failure = StepFailure(
        kind="business",
        code=code,
        message=f"{len(entry_ids)} approved time entries of project {workspace} cannot be posted.",
        entity_type="project",
        entity_ref=workspace,
        connection_id=psa.pk,
        details={"entries": entry_ids[:500], "count": len(entry_ids), "record_type": record_type},
    )
    posting_rejected.send(sender=PostingBatch, failure=failure, key=(psa.name, code, workspace))
