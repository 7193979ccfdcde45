"""What a side's puller hands over: one record, its compared values normalised."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class PulledRecord:
    """One record of one side.

    `key` is the canonical key both sides are joined on (resolved through the external-id
    bindings, or the value both systems carry); `native_id` the record's id in its own system.
    `amount` is a Decimal in `currency`; `status` in Throughline's vocabulary (the puller maps
    the vendor's); `day` the compared date; `fields` the other compared values (strings).
    """

    key: str
    native_id: str
    legal_entity: str = ""
    currency: str = ""
    amount: Decimal | None = None
    status: str = ""
    day: dt.date | None = None
    fields: dict[str, str] = field(default_factory=dict)
    modified_at: dt.datetime | None = None


def minor_units(amount: Decimal | None) -> int | None:
    """An amount in cents (half up), as the snapshot stores it."""
    if amount is None:
        return None
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def day_number(day: dt.date | None) -> int | None:
    return None if day is None else (day - EPOCH).days


def day_of(number: int | None) -> dt.date | None:
    return None if number is None else EPOCH + dt.timedelta(days=number)


def digest(fields: dict[str, str], compared: tuple[str, ...]) -> str:
    """A hash of the compared extra fields: equal values, equal digests."""
    if not compared:
        return ""
    chosen = {name: str(fields.get(name, "") or "").strip() for name in compared}
    return hashlib.sha1(
        json.dumps(chosen, sort_keys=True).encode(), usedforsecurity=False
    ).hexdigest()


def comparison_hash(cmp_amount: int | None, status: str, day: int | None, digest_: str) -> int:
    """A signed 64-bit hash of a snapshot row's compared values. The comparison joins the two
    sides on their keys carrying only this (a narrow, index-only join) and compares the
    values themselves, with their tolerances, only where the hashes differ. Equal values
    always give equal hashes; unequal values collide with a probability of 2^-64."""
    raw = f"{cmp_amount}|{status}|{day}|{digest_}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big", signed=True)
