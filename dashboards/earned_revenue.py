"""Earned revenue facts: the revenue schedule lines the ERP recognised (their accounting
period closed), as read back by integrations.revenue.

Fed by `integrations.signals.revenue_recognised`, inside the transaction that moves the read
watermark past the period: a line becomes one fact (unique per ERP, line and period; a
repeat adds nothing), with the legal entity and region of its contract's deal. The fact's own
post_save adds its observation to the rollups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from integrations.canonical import schemas
from integrations.models import Connection, SyncRun

from .models import EarnedRevenueFact
from .observations import HANDOFF


def deals_of(contract_keys: Iterable[str]) -> dict[str, SyncRun]:
    """The hand-off run of each contract (the run that posted its revenue schedule)."""
    keys = sorted(set(contract_keys))
    if not keys:
        return {}
    runs = (
        SyncRun.objects.filter(
            workflow=HANDOFF,
            context__post_revenue_schedule__contract_key__in=keys,
        )
        .only("pk", "correlation_id", "legal_entity_code", "region", "context")
        .order_by("pk")
    )
    return {
        str((run.context.get("post_revenue_schedule") or {}).get("contract_key")): run
        for run in runs
    }


def record_recognised(
    erp: Connection, period: schemas.AccountingPeriod, lines: Iterable[Any]
) -> int:
    """One fact per recognised line not recorded yet; return how many were added."""
    items: list[schemas.RecognisedRevenue] = list(lines)
    deals = deals_of(line.contract_key for line in items)
    added = 0
    for line in items:
        run = deals.get(line.contract_key)
        _fact, created = EarnedRevenueFact.objects.get_or_create(
            erp_connection_id=erp.pk,
            line_key=line.key,
            period_end=period.end_date,
            defaults={
                "erp_line_id": line.source_id,
                "contract_key": line.contract_key,
                "deal_key": run.correlation_id if run is not None else "",
                "period_name": period.name[:60],
                "period_start": period.start_date,
                "legal_entity_code": (run.legal_entity_code or "") if run is not None else "",
                "region": (run.region or "") if run is not None else "",
                "currency": line.currency,
                "amount": line.amount,
            },
        )
        added += created
    return added
