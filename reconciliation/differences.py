"""What differs in a difference, field by field, and the signature an acceptance matches."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import TYPE_CHECKING

from . import catalogue
from .records import day_of

if TYPE_CHECKING:
    from .models import Difference


def money(minor: int | None) -> str:
    return "" if minor is None else str((Decimal(minor) / 100).quantize(Decimal("0.01")))


def field_differences(diff: Difference) -> list[dict[str, str]]:
    """The compared values that differ between the sides (all of them for a missing record:
    the side it is missing from shows empty values)."""
    comparison = catalogue.BY_KIND.get(diff.run.definition.kind)
    source, target = diff.source_fields or {}, diff.target_fields or {}
    rows: list[dict[str, str]] = []
    pairs: list[tuple[str, str, str]] = []
    if comparison is None or comparison.compares_amount:
        label = f"amount ({diff.currency})" if diff.currency else "amount"
        pairs.append((label, money(diff.source_amount), money(diff.target_amount)))
    if diff.run.definition.compare_status:
        pairs.append(("status", diff.source_status, diff.target_status))
    if comparison is None or comparison.compares_date:
        pairs.append(
            ("date", str(day_of(diff.source_day) or ""), str(day_of(diff.target_day) or ""))
        )
    for name in comparison.extra_fields if comparison else ():
        pairs.append((name, str(source.get(name, "")), str(target.get(name, ""))))
    for name in ("conversion",):
        if source.get(name) or target.get(name):
            pairs.append((name, str(source.get(name, "")), str(target.get(name, ""))))
    for name, left, right in pairs:
        if left != right or diff.kind != "field_mismatch":
            rows.append({"field": name, "source": left, "target": right})
    if diff.kind == "field_mismatch":
        tolerance = diff.run.definition.amount_tolerance_cents
        rows = [r for r in rows if not _within(r, diff, tolerance)]
    return rows


def _within(row: dict[str, str], diff: Difference, tolerance: int) -> bool:
    if not row["field"].startswith("amount"):
        return False
    if diff.source_amount is None or diff.target_amount is None:
        return False
    return abs(diff.source_amount - diff.target_amount) <= tolerance


def signature(diff: Difference) -> str:
    """The values of a difference: an acceptance holds while they stay the same."""
    parts = [
        diff.kind,
        diff.side,
        str(diff.source_amount),
        str(diff.target_amount),
        diff.source_status,
        diff.target_status,
        str(diff.source_day),
        str(diff.target_day),
        repr(sorted((diff.source_fields or {}).items())),
        repr(sorted((diff.target_fields or {}).items())),
    ]
    return hashlib.sha1("|".join(parts).encode(), usedforsecurity=False).hexdigest()
