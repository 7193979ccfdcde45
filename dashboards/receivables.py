"""Invoice payment facts (DSO's raw records): what the ERP said of each invoice Throughline
raised, kept each time its amounts changed.

Fed by `integrations.signals.invoice_amounts_seen` (the payments sync, see
integrations.payments): for each invoice read, a fact is added when its total, the amount
remaining or whether it is voided differ from its previous fact (a state that only turns
overdue adds none). The fact's own post_save adds its observations to the rollups. Two reads
of one ERP at once record one after the other (its payments watermark is locked first, on
PostgreSQL), so the same change is never recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from integrations.models import Connection, Watermark
from integrations.payments import STREAM

from .models import InvoicePaymentFact
from .observations import invoice_times

logger = logging.getLogger(__name__)


def _key(total: Any, remaining: Any, state: str) -> tuple[Any, Any, bool]:
    return (total, remaining, state == "cancelled")


def record_invoice_amounts(erp: Connection, invoices: Iterable[Any]) -> int:
    """Add a fact for each invoice whose amounts changed since its last fact; return how many
    were added. `invoices` are integrations.payments.InvoiceAmounts."""
    items = list(invoices)
    if not items:
        return 0
    invoiced = invoice_times({item.run.pk for item in items})
    added = 0
    with transaction.atomic():
        list(Watermark.objects.select_for_update().filter(connection=erp, stream=STREAM))
        for item in items:
            last = (
                InvoicePaymentFact.objects.filter(
                    erp_connection_id=erp.pk, invoice_key=item.invoice_key
                )
                .order_by("-pk")
                .first()
            )
            now = _key(item.total, item.amount_remaining, item.state)
            if last is not None and _key(last.total, last.amount_remaining, last.state) == now:
                continue
            if last is not None:
                raised = last.invoiced_at
            else:
                raised = invoiced.get(item.run.pk) or item.seen_at
            InvoicePaymentFact.objects.create(
                erp_connection_id=erp.pk,
                invoice_key=item.invoice_key,
                erp_invoice_id=item.erp_invoice_id,
                number=(item.number or "")[:60],
                run_id=item.run.pk,
                legal_entity_code=item.run.legal_entity_code or "",
                region=item.run.region or "",
                currency=item.currency,
                total=item.total,
                amount_remaining=item.amount_remaining,
                state=item.state,
                invoiced_at=raised,
                seen_at=item.seen_at,
            )
            added += 1
    if added:
        logger.info("invoice payment facts from %s: %d added", erp, added)
    return added
