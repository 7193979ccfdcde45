"""Payment status from the ERP back to the PSA and the CRM: invoices the ERP changed since the
watermark (paid, part-paid), plus open invoices that have since passed their due date
(overdue), are written to the milestone in the PSA and the invoice record on the deal.
Unchanged states are not written again (the write ledger remembers what was sent).

What the ERP said of each invoice Throughline raised (its total and what remains to be paid,
at the ERP's last change of it) is announced through `signals.invoice_amounts_seen` once the
read went through, so that the dashboards can keep receivables (DSO) without the engine
knowing about them."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console import audit

from . import governance, timeline
from .canonical import schemas
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .connectors.salesforce import mapping as salesforce_mapping
from .models import Connection, ExternalBinding, SyncRun, Watermark
from .signals import invoice_amounts_seen
from .telemetry import CallBuffer
from .workflows.milestone_billing import psa_status

logger = logging.getLogger(__name__)

STREAM = "invoice.payments"
OVERLAP = dt.timedelta(seconds=1)
FIRST_LOOK_BACK = dt.timedelta(days=30)


@dataclass(frozen=True)
class InvoiceAmounts:
    """What the ERP says of one invoice Throughline raised, as read by the payments sync."""

    invoice_key: str
    erp_invoice_id: str
    number: str | None
    #: the invoice's total (tax included) and what remains to be paid, in its currency
    total: Decimal
    amount_remaining: Decimal
    #: open, overdue, paid or cancelled (the canonical payment state)
    state: str
    currency: str
    #: the release-milestone-billing run that raised the invoice
    run: SyncRun
    #: the ERP's last change of the invoice (UTC; the read time when it gives none)
    seen_at: dt.datetime


def sync_payments(erp: Connection) -> int:
    """Propagate changed invoice states from `erp`; return how many invoices changed."""
    mark, _ = Watermark.objects.get_or_create(connection=erp, stream=STREAM)
    since = parse_datetime(mark.value) if mark.value else timezone.now() - FIRST_LOOK_BACK
    today = timezone.now().date()
    buffer = CallBuffer()
    erp_client = build_client(erp, on_call=buffer)
    clients: dict[int, Any] = {}
    changed = 0
    newest = since
    amounts: list[InvoiceAmounts] = []
    try:
        rows = erp_client.invoices_changed_since(since - OVERLAP)
        seen: set[str] = set()
        for row in rows:
            key = str(row.get("externalid") or "")
            binding = _binding(erp, key)
            modified = _utc(row.get("lastmodifieddate"))
            if modified is not None and modified > newest:
                newest = modified
            if binding is None:
                continue  # not an invoice Throughline raised
            seen.add(key)
            status = netsuite_mapping.invoice_status_from_netsuite(row, today=today)
            changed += _propagate(binding, status, clients, buffer)
            amounts += _amounts(binding, status, modified)
        for binding in _open_past_due(erp, today, exclude=seen):
            record = erp_client.get_invoice(binding.external_id)
            status = netsuite_mapping.invoice_status_from_netsuite(record, today=today)
            changed += _propagate(binding, status, clients, buffer)
            amounts += _amounts(binding, status, _utc(record.get("lastModifiedDate")))
    finally:
        erp_client.close()
        for client in clients.values():
            client.close()
        buffer.flush()
    if amounts:
        with transaction.atomic():
            invoice_amounts_seen.send(sender=Connection, erp=erp, invoices=amounts)
    if newest != since:
        mark.value = newest.isoformat()
        mark.save(update_fields=["value", "updated_at"])
    return changed


def _utc(value: Any) -> dt.datetime | None:
    """A SuiteQL 'YYYY-MM-DD HH:MM:SS' (UTC) or a record's ISO 8601 datetime, in UTC."""
    parsed = parse_datetime(str(value or ""))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)  # SuiteQL answers in UTC
    return parsed.astimezone(dt.UTC) if parsed is not None else None


def _amounts(
    binding: ExternalBinding, status: schemas.InvoiceStatus, modified: dt.datetime | None
) -> list[InvoiceAmounts]:
    """The invoice's amounts as read, when it is a milestone invoice of a billing run."""
    run = binding.created_by_run
    created = (run.context.get("create_invoice") or {}) if run is not None else {}
    if run is None or not created.get("currency"):
        return []
    now = timezone.now()
    return [
        InvoiceAmounts(
            invoice_key=binding.canonical_key,
            erp_invoice_id=binding.external_id,
            number=status.number,
            total=status.total,
            amount_remaining=status.amount_remaining,
            state=status.state,
            currency=str(created["currency"]),
            run=run,
            seen_at=min(modified, now) if modified is not None else now,
        )
    ]


def _binding(erp: Connection, key: str) -> ExternalBinding | None:
    if not key:
        return None
    return (
        ExternalBinding.objects.select_related("created_by_run")
        .filter(connection=erp, entity_type="invoice", canonical_key=key)
        .first()
    )


def _open_past_due(erp: Connection, today: dt.date, *, exclude: set[str]) -> list[ExternalBinding]:
    due: list[ExternalBinding] = []
    bindings = ExternalBinding.objects.select_related("created_by_run").filter(
        connection=erp, entity_type="invoice"
    )
    for binding in bindings:
        run = binding.created_by_run
        invoice = (run.context.get("create_invoice") or {}).get("invoice") if run else None
        if not invoice or binding.canonical_key in exclude or invoice.get("state") != "open":
            continue
        due_date = invoice.get("due_date")
        if due_date and dt.date.fromisoformat(due_date) < today:
            due.append(binding)
    return due


def _client(connection: Connection, clients: dict[int, Any], buffer: CallBuffer) -> Any:
    if connection.pk not in clients:
        clients[connection.pk] = build_client(connection, on_call=buffer)
    return clients[connection.pk]


def _propagate(
    binding: ExternalBinding,
    status: schemas.InvoiceStatus,
    clients: dict[int, Any],
    buffer: CallBuffer,
) -> int:
    run: SyncRun | None = binding.created_by_run
    if run is None or "load_milestone" not in run.context:
        return 0
    psa = run.source_connection
    story_id = str(run.input["story_id"])
    state = psa_status(status)
    if psa is None or governance.already_written(psa, "story", story_id, {"payment": state}):
        return 0
    _client(psa, clients, buffer).set_story_reference(
        story_id, ref=status.number, model="Invoice", status=state
    )
    governance.record_write(psa, "story", story_id, {"payment": state})
    opportunity = schemas.Opportunity.model_validate(run.context["load_milestone"]["opportunity"])
    crm = Connection.objects.filter(system="crm", enabled=True).order_by("pk").first()
    if crm is not None and status.state != "cancelled":
        fields = salesforce_mapping.invoice_status_to_salesforce(
            status,
            opportunity_id=opportunity.source_id,
            currency=run.context["create_invoice"].get("currency"),
            paid_on=timezone.now().date() if status.state == "paid" else None,
        )
        record_id, _ = _client(crm, clients, buffer).upsert_invoice_status(
            binding.canonical_key, fields
        )
        governance.record_write(crm, "invoice", str(record_id), fields)
    if status.state == "paid":
        timeline.stamp(run.business_key, "paid", source=binding.connection.name)
    audit.record(
        "invoice.status.synced",
        f"Invoice {status.number} is {status.state}: written to the PSA and the CRM",
        correlation_id=run.correlation_id,
        state=status.state,
    )
    return 1
