"""What the ERP recognised, read back on a schedule (reference-data style: the ERP owns it).

Throughline posts each contract's revenue schedule to the ERP as lines of a custom record
(`post_revenue_schedule`, `update_revenue`); the ERP, not Throughline, decides what is
recognised. A line counts as recognised once the ERP's accounting period it falls in is
closed: the books of that month are final, and the line is read as the ERP holds it then
(an amount finance edited in the ERP, or a line made inactive, reads as the ERP says).

`sync_recognised_revenue(erp)` reads incrementally: the watermark (stream
`netsuite.revenue.recognised`) is the end date of the last period read. Each run asks for the
months ending after it, oldest first, and reads the active schedule lines of each closed one
in turn, stopping at the first month still open (periods close in order; a later month closed
before an earlier one waits for it). For each period it announces the lines through
`signals.revenue_recognised` and moves the watermark past the period in one transaction, so a
period is never announced twice and never skipped. A period reopened and changed after it was
read is not read again (adjustments of a closed month are journal entries, not schedule
lines).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction

from .canonical import schemas
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .models import Connection, Watermark
from .signals import revenue_recognised
from .telemetry import CallBuffer

logger = logging.getLogger(__name__)

STREAM = "netsuite.revenue.recognised"


@dataclass
class RevenueResult:
    periods: int = 0
    lines: int = 0


def sync_recognised_revenue(erp: Connection) -> RevenueResult:
    """Read the revenue schedule lines of the accounting periods `erp` closed since the last
    read; announce them period by period (see the module docstring)."""
    mark, _ = Watermark.objects.get_or_create(connection=erp, stream=STREAM)
    after = dt.date.fromisoformat(mark.value) if mark.value else None
    buffer = CallBuffer()
    client = build_client(erp, on_call=buffer)
    result = RevenueResult()
    try:
        periods = [
            netsuite_mapping.accounting_period_from_netsuite(row)
            for row in client.accounting_periods_after(after)
        ]
        for period in sorted(periods, key=lambda p: (p.start_date, p.end_date)):
            if not period.closed:
                break
            lines = [
                netsuite_mapping.recognised_revenue_from_netsuite(row)
                for row in client.revenue_lines_between(period.start_date, period.end_date)
            ]
            _announce(erp, mark, period, lines)
            result.periods += 1
            result.lines += len(lines)
    finally:
        client.close()
        buffer.flush()
    if result.periods:
        logger.info(
            "recognised revenue from %s: %d closed periods, %d lines",
            erp,
            result.periods,
            result.lines,
        )
    return result


def _announce(
    erp: Connection,
    mark: Watermark,
    period: schemas.AccountingPeriod,
    lines: list[schemas.RecognisedRevenue],
) -> None:
    with transaction.atomic():
        revenue_recognised.send(sender=Connection, erp=erp, period=period, lines=lines)
        mark.value = period.end_date.isoformat()
        mark.save(update_fields=["value", "updated_at"])
