"""Reading the values a puller compares out of vendor records: amounts, days and change
times, with a ResponseShapeError naming the record and field when one cannot be read."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.connectors.errors import ResponseShapeError

CENT = Decimal("0.01")


def shape_error(message: str, operation: str) -> ResponseShapeError:
    return ResponseShapeError(message, operation=operation)


def number(raw: Any, where: str, operation: str) -> Decimal:
    """A decimal (an amount, hours) to the hundredth; `where` names the record and field."""
    if isinstance(raw, bool) or raw is None:
        raise shape_error(f"{where} is missing or not a number", operation)
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise shape_error(f"{where} {raw!r} is not a number", operation) from None
    if not value.is_finite():
        raise shape_error(f"{where} {raw!r} is not a number", operation)
    return value.quantize(CENT)


def day(raw: Any, where: str, operation: str, *, with_time: bool = False) -> dt.date:
    """A date (YYYY-MM-DD...), or with `with_time` the day of an ISO 8601 timestamp in the
    timestamp's own offset (the account's local day)."""
    text = str(raw or "").strip()
    try:
        if with_time:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise shape_error(f"{where} {raw!r} is not a date", operation) from None


def stamp(raw: Any) -> dt.datetime | None:
    """A vendor change time (ISO 8601, or SuiteQL's 'YYYY-MM-DD HH:MM:SS' in UTC) in UTC;
    None when absent or unreadable (it only moves the watermark)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
