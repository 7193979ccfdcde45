"""Keyset pagination of a run's differences, largest amount at risk first, for the run page
and the API: the exception queues' machinery (exceptions.pagination) with its page object,
count cap and cursor parameter, over the order (amount at risk, id) instead of (last seen, id).

A cursor is opaque to clients: `a.<amount>.<id>` pages after that row, `b.<amount>.<id>`
before it, base64url-encoded.
"""

from __future__ import annotations

from django.db.models import QuerySet

from exceptions.pagination import (
    CURSOR_PARAM,
    PAGE_SIZE,
    ExceptionKeysetPagination,
    InvalidCursor,
    Keyset,
    KeysetPage,
)
from exceptions.pagination import paginate as paginate_keyset

__all__ = ["CURSOR_PARAM", "ORDERING", "DifferencePagination", "InvalidCursor", "paginate"]

#: most money at risk first
AMOUNT_AT_RISK = Keyset("amount_at_risk", write=str, read=int)
ORDERING = AMOUNT_AT_RISK.ordering


def paginate(
    queryset: QuerySet, token: str | None, *, size: int = PAGE_SIZE, cap: int | None = None
) -> KeysetPage:
    """One page of `queryset` in ORDERING, from a cursor token or the first page."""
    return paginate_keyset(queryset, token, keyset=AMOUNT_AT_RISK, size=size, cap=cap)


class DifferencePagination(ExceptionKeysetPagination):
    """DRF pagination over `paginate`: `?cursor=` from the `next`/`previous` links and
    `?limit=` (1-500, default 50); `count` stops at 1,000 (`count_capped`)."""

    keyset = AMOUNT_AT_RISK
    noun = "rows"
