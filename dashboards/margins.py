"""Project margin facts: each project's billed amount, cost and planned margin, every time
they change (project margin variance's raw records).

- billed: a release-milestone-billing run that succeeded adds the milestone amount it
  invoiced (before tax, as the contract counts it), from `runs_succeeded`;
- cost: a posting batch that reached the ERP adds its time entries at the cost rate each
  carries (hours x rate, to the cent, half up) or its subcontractor charges (vendor bills),
  from `entries_posted`; expense reports are an employee's expenses, not counted;
- planned margin: the CRM deal's planned margin, from the deal as the hand-off read it.

Everything is in the deal's currency: an amount in another one is converted at the ERP's
rate kept in Throughline (integrations.ExchangeRate, the latest effective on the amount's
day); without one, or without a cost rate, the amount cannot be priced and the fact counts it
in `unpriced` (the project then stays out of the KPI rather than showing a margin too high).

Each fact is the project's previous fact plus what one source added, written in the
transaction of that source; the deal's hand-off run is locked first (PostgreSQL), so two
postings of the same project never both build on the same previous fact. A source already
recorded for the deal adds nothing (a repeat). The fact's own post_save adds its
observations to the rollups.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.models import ExchangeRate, PostingBatch, SyncRun

from .models import ProjectMarginFact
from .observations import BILLING, HANDOFF, invoice_times

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
#: an amount, its currency and its day (None amount: it cannot be priced)
Item = tuple[Decimal | None, str, dt.date | None]


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _day(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def convert(amount: Decimal, currency: str, target: str, day: dt.date | None) -> Decimal | None:
    """`amount` of `currency` in `target` at the latest rate effective on `day` (any day when
    None), to the cent; None when Throughline holds no such rate."""
    if currency == target:
        return amount
    rates = ExchangeRate.objects.filter(base=currency, quote=target)
    if day is not None:
        rates = rates.filter(effective_date__lte=day)
    rate = rates.order_by("-effective_date", "-pk").values_list("rate", flat=True).first()
    if rate is None:
        return None
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def record_billing(runs: Iterable[SyncRun]) -> int:
    """Billed amounts of billing runs that just succeeded; return the facts added."""
    billing = sorted((run for run in runs if run.workflow == BILLING), key=lambda r: r.pk)
    if not billing:
        return 0
    invoiced = invoice_times(run.pk for run in billing)
    added = 0
    for run in billing:
        completion = (run.context.get("load_milestone") or {}).get("completion") or {}
        if run.pk not in invoiced or completion.get("amount") is None:
            continue
        item = (
            _decimal(completion["amount"]),
            str(completion.get("currency") or ""),
            _day(completion.get("completed_on")),
        )
        added += add(run.business_key, f"run:{run.pk}", billed=[item])
    return added


def _cost(record_type: str, entry: dict[str, Any]) -> Item:
    currency = str(entry.get("currency") or "")
    if record_type == "vendorBill":
        return _decimal(entry.get("amount")), currency, _day(entry.get("incurred_on"))
    hours, rate = _decimal(entry.get("hours")), _decimal(entry.get("cost_rate"))
    day = _day(entry.get("work_date"))
    if hours is None or rate is None or not currency:
        return None, currency, day
    return (hours * rate).quantize(CENT, rounding=ROUND_HALF_UP), currency, day


def record_costs(batch: PostingBatch) -> int:
    """Costs of a posting batch that reached the ERP (time at cost rates, subcontractor
    charges), per project; return the facts added."""
    if batch.record_type not in ("timeBill", "vendorBill"):
        return 0
    by_deal: dict[str, list[Item]] = defaultdict(list)
    for item in batch.entries:
        entry = item.get("entry") or {}
        if item.get("erp_id") and entry.get("project_key"):
            by_deal[str(entry["project_key"])].append(_cost(batch.record_type, entry))
    return sum(
        add(deal, f"posting_batch:{batch.pk}", cost=items)
        for deal, items in sorted(by_deal.items())
    )


def add(
    deal_key: str, source: str, *, billed: Iterable[Item] = (), cost: Iterable[Item] = ()
) -> int:
    """The deal's next fact: its previous figures plus `billed` and `cost` (1 if added, 0 if
    the deal is not one Throughline handed off or `source` was recorded already)."""
    with transaction.atomic():
        handoff = (
            SyncRun.objects.select_for_update()
            .filter(workflow=HANDOFF, correlation_id=deal_key)
            .order_by("pk")
            .first()
        )
        if handoff is None:
            return 0
        if ProjectMarginFact.objects.filter(deal_key=deal_key, source=source).exists():
            return 0
        deal = (handoff.context.get("fetch_deal") or {}).get("opportunity") or {}
        currency = str(deal.get("currency") or "")
        if not currency:
            return 0
        last = ProjectMarginFact.objects.filter(deal_key=deal_key).order_by("-pk").first()
        totals = {
            "billed": last.billed if last else Decimal(0),
            "cost": last.cost if last else Decimal(0),
        }
        unpriced = last.unpriced if last else 0
        for name, items in (("billed", billed), ("cost", cost)):
            for amount, from_currency, day in items:
                value = (
                    convert(amount, from_currency, currency, day)
                    if amount is not None and from_currency
                    else None
                )
                if value is None:
                    unpriced += 1
                else:
                    totals[name] += value
        ProjectMarginFact.objects.create(
            deal_key=deal_key,
            source=source,
            currency=currency,
            planned_margin=_decimal(deal.get("planned_margin")),
            billed=totals["billed"],
            cost=totals["cost"],
            unpriced=unpriced,
            legal_entity_code=handoff.legal_entity_code or "",
            region=handoff.region or "",
            connection_id=handoff.source_connection_id or 0,
            recorded_at=timezone.now(),
        )
    return 1
