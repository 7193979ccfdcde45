"""Payment status from the ERP back to the PSA and the CRM: invoices the ERP changed since the
watermark (paid, part-paid), plus open invoices that have since passed their due date
(overdue), are written to the milestone in the PSA and the invoice record on the deal.
Unchanged states are not written again (the write ledger remembers what was sent)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console import audit

from . import governance, timeline
from .canonical import schemas
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .connectors.salesforce import mapping as salesforce_mapping
from .models import Connection, ExternalBinding, SyncRun, Watermark
from .telemetry import CallBuffer
from .workflows.milestone_billing import psa_status

logger = logging.getLogger(__name__)

STREAM = "invoice.payments"
OVERLAP = dt.timedelta(seconds=1)
FIRST_LOOK_BACK = dt.timedelta(days=30)


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
    try:
        rows = erp_client.invoices_changed_since(since - OVERLAP)
        seen: set[str] = set()
        for row in rows:
            key = str(row.get("externalid") or "")
            binding = _binding(erp, key)
            modified = parse_datetime(str(row.get("lastmodifieddate") or ""))
            if modified is not None and modified.tzinfo is None:
                modified = modified.replace(tzinfo=dt.UTC)  # SuiteQL answers in UTC
            if modified is not None and modified > newest:
                newest = modified
            if binding is None:
                continue  # not an invoice Throughline raised
            seen.add(key)
            status = netsuite_mapping.invoice_status_from_netsuite(row, today=today)
            changed += _propagate(binding, status, clients, buffer)
        for binding in _open_past_due(erp, today, exclude=seen):
            record = erp_client.get_invoice(binding.external_id)
            status = netsuite_mapping.invoice_status_from_netsuite(record, today=today)
            changed += _propagate(binding, status, clients, buffer)
    finally:
        erp_client.close()
        for client in clients.values():
            client.close()
        buffer.flush()
    if newest != since:
        mark.value = newest.isoformat()
        mark.save(update_fields=["value", "updated_at"])
    return changed


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
