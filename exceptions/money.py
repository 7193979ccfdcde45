"""The money a failed record carries: what an exception holds up, for incidents and rules.

A failure says it in its details (`amount` and `currency`, or `amounts` per currency for a
batch); otherwise the run that failed knows it from the steps that succeeded before (the
completed milestone an invoice bills, the deal a hand-off provisions); otherwise the payload.
Decimal only, to the cent; a failure that carries no money (or several currencies) has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from integrations.models import SyncRun
from integrations.workflows.failures import StepFailure

CENT = Decimal("0.01")
#: step outputs that carry the money of a run, most specific first
CONTEXT_SOURCES = (("load_milestone", "completion"), ("fetch_deal", "opportunity"))


def money_of(failure: StepFailure, run: SyncRun | None = None) -> tuple[Decimal | None, str]:
    """(amount, ISO currency) the failed record carries, or (None, "")."""
    for source in (failure.details, *_run_sources(run), failure.payload):
        found = _money(source)
        if found is not None:
            return found
    return None, ""


def _run_sources(run: SyncRun | None) -> list[Mapping[str, Any]]:
    if run is None or not isinstance(run.context, dict):
        return []
    sources = []
    for step, key in CONTEXT_SOURCES:
        output = run.context.get(step)
        if isinstance(output, dict) and isinstance(output.get(key), dict):
            sources.append(output[key])
    # an amendment's run knows its deal from its first step's output
    for output in run.context.values():
        if isinstance(output, dict) and isinstance(output.get("opportunity"), dict):
            sources.append(output["opportunity"])
    return sources


def _money(source: Any) -> tuple[Decimal, str] | None:
    if not isinstance(source, Mapping):
        return None
    currency = source.get("currency")
    amount = decimal_or_none(source.get("amount"))
    if amount is not None and isinstance(currency, str) and len(currency) == 3:
        return amount, currency.upper()
    amounts = source.get("amounts")
    if isinstance(amounts, Mapping) and len(amounts) == 1:
        ((code, value),) = amounts.items()
        amount = decimal_or_none(value)
        if amount is not None and isinstance(code, str) and len(code) == 3:
            return amount, code.upper()
    return None


def decimal_or_none(value: Any) -> Decimal | None:
    """A money amount to the cent, or None for anything that is not a finite number.

    Canonical amounts arrive as strings; a JSON float from a payload goes through its
    shortest text form (str), never through binary arithmetic."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return None
    return _quantize(str(value))


def _quantize(text: str) -> Decimal | None:
    try:
        amount = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite():
        return None
    amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return amount if abs(amount) < Decimal("1e16") else None
