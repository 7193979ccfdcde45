"""Reconciliation figures as a person may see them: money in minor units turned into Decimal
amounts (masked for people without finance rights, as everywhere else), the field-level
difference of a difference, the amount at risk of a run per legal entity and per currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from exceptions.masking import MASK, mask_data

from .models import Difference, Kind, Run, Side

CENT = Decimal("0.01")
#: rows of a field-level difference that carry money
MONEY_FIELDS = ("amount",)


def amount(minor: int | None) -> Decimal | None:
    """Minor units (cents) as a Decimal amount to the cent."""
    if minor is None:
        return None
    return (Decimal(minor) / 100).quantize(CENT)


def shown(minor: int | None, allowed: bool) -> Decimal | str | None:
    """An amount as a person sees it: the Decimal, the mask, or None (no amount)."""
    value = amount(minor)
    if value is None or allowed:
        return value
    return MASK


def field_differences(diff: Difference, allowed: bool) -> list[dict[str, str]]:
    """Difference.field_differences, with the money rows masked unless `allowed`; for a
    duplicate, how many copies the side holds and their record ids, then their amount."""
    rows = _duplicate_rows(diff) if diff.kind == Kind.DUPLICATE else diff.field_differences
    if allowed:
        return rows
    return [
        {**row, "source": MASK, "target": MASK} if row["field"].startswith(MONEY_FIELDS) else row
        for row in rows
    ]


def _duplicate_rows(diff: Difference) -> list[dict[str, str]]:
    held = (diff.source_fields if diff.side == Side.SOURCE else diff.target_fields) or {}
    this, other = ("source", "target") if diff.side == Side.SOURCE else ("target", "source")
    rows = [
        {"field": name, this: str(held.get(name, "")), other: ""}
        for name in ("copies", "records")
        if held.get(name)
    ]
    for row in diff.field_differences:
        if row["field"].startswith(MONEY_FIELDS):
            rows.append({**row, "field": row["field"].replace("amount", "amount of all copies", 1)})
    return [{"field": r["field"], "source": r["source"], "target": r["target"]} for r in rows]


def fields_shown(fields: dict[str, Any] | None, allowed: bool) -> dict[str, Any] | None:
    """A side's compared values, financial keys masked unless `allowed`."""
    if fields is None or allowed:
        return fields
    return mask_data(fields)


@dataclass(frozen=True)
class RiskRow:
    legal_entity: str
    currency: str
    amount: Decimal | str
    differences: int
    missing: int


def at_risk_rows(run: Run, allowed: bool) -> list[RiskRow]:
    """The run's amount at risk per legal entity and currency (open differences only)."""
    return [
        RiskRow(
            legal_entity=row.get("legal_entity") or "",
            currency=row.get("currency") or "",
            amount=shown(int(row.get("amount_minor") or 0), allowed) or Decimal("0.00"),
            differences=int(row.get("differences") or 0),
            missing=int(row.get("missing") or 0),
        )
        for row in run.at_risk or []
    ]


def at_risk_totals(run: Run) -> dict[str, Decimal]:
    """The run's amount at risk per currency (amounts in different currencies never add)."""
    totals: dict[str, int] = {}
    for row in run.at_risk or []:
        currency = row.get("currency") or ""
        totals[currency] = totals.get(currency, 0) + int(row.get("amount_minor") or 0)
    return {
        currency: amount(minor) or Decimal("0.00")
        for currency, minor in sorted(totals.items())
        if minor
    }


def at_risk_chart(run: Run) -> dict[str, Any]:
    """The bar chart of the amount at risk by legal entity (only for finance rights)."""
    rows = [r for r in run.at_risk or [] if int(r.get("amount_minor") or 0)]
    return {
        "labels": [f"{r.get('legal_entity') or '—'} ({r.get('currency') or '?'})" for r in rows],
        "values": [str(amount(int(r.get("amount_minor") or 0))) for r in rows],
    }


def match_rate_chart(runs: list[Run]) -> dict[str, Any]:
    """The line chart of the match rate of finished runs, oldest first."""
    done = [r for r in runs if r.match_rate is not None and r.finished_at is not None]
    done.sort(key=lambda r: (r.finished_at, r.pk))
    return {
        "labels": [f"{r.finished_at:%Y-%m-%d %H:%M}" for r in done],
        "values": [r.match_rate for r in done],
        "runs": [r.pk for r in done],
    }
