"""Keyset pagination of a run's differences, largest amount at risk first, for the run page
and the API: the same idea, page object, count cap and cursor parameter as the exception
queues (exceptions.pagination), over the order (amount at risk, id) instead of (last seen, id).

A cursor is opaque to clients: `a.<amount>.<id>` pages after that row, `b.<amount>.<id>`
before it, base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from exceptions.pagination import (
    COUNT_CAP,
    CURSOR_PARAM,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    ExceptionKeysetPagination,
    InvalidCursor,
    KeysetPage,
    capped_count,
)

__all__ = ["CURSOR_PARAM", "ORDERING", "DifferencePagination", "InvalidCursor", "paginate"]

#: most money at risk first; the id breaks ties so the order is total
ORDERING = ("-amount_at_risk", "-id")


@dataclass(frozen=True)
class Cursor:
    amount: int
    pk: int
    before: bool = False

    def encode(self) -> str:
        raw = f"{'b' if self.before else 'a'}.{self.amount}.{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, amount, pk = raw.split(".")
            if direction not in ("a", "b"):
                raise ValueError(raw)
            return cls(amount=int(amount), pk=int(pk), before=direction == "b")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise InvalidCursor("This page link is not valid any more; start again.") from exc

    @classmethod
    def of(cls, row: Any, *, before: bool) -> Cursor:
        return cls(amount=row.amount_at_risk, pk=row.pk, before=before)


def paginate(
    queryset: QuerySet, token: str | None, *, size: int = PAGE_SIZE, cap: int | None = None
) -> KeysetPage:
    """One page of `queryset` in ORDERING, from a cursor token or the first page."""
    cursor = Cursor.decode(token) if token else None
    count, capped = capped_count(queryset, cap)
    if cursor is None:
        rows = list(queryset.order_by(*ORDERING)[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        following = Cursor.of(rows[-1], before=False).encode() if more else None
        return KeysetPage(rows, following, None, count, capped)
    a, pk = cursor.amount, cursor.pk
    if cursor.before:
        earlier = Q(amount_at_risk__gt=a) | Q(amount_at_risk=a, id__gt=pk)
        rows = list(queryset.filter(earlier).order_by("amount_at_risk", "id")[: size + 1])
        more = len(rows) > size
        rows = list(reversed(rows[:size]))
        following = Cursor.of(rows[-1], before=False).encode() if rows else None
        previous = Cursor.of(rows[0], before=True).encode() if more and rows else None
        return KeysetPage(rows, following, previous, count, capped)
    later = Q(amount_at_risk__lt=a) | Q(amount_at_risk=a, id__lt=pk)
    rows = list(queryset.filter(later).order_by(*ORDERING)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    following = Cursor.of(rows[-1], before=False).encode() if more else None
    previous = Cursor.of(rows[0], before=True).encode() if rows else None
    return KeysetPage(rows, following, previous, count, capped)


class DifferencePagination(ExceptionKeysetPagination):
    """DRF pagination over `paginate`: `?cursor=` from the `next`/`previous` links and
    `?limit=` (1-500, default 50); `count` stops at 1,000 (`count_capped`)."""

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        size = PAGE_SIZE
        raw = request.query_params.get(self.page_size_query_param)
        if raw:
            try:
                size = max(1, min(int(raw), MAX_PAGE_SIZE))
            except ValueError:
                size = PAGE_SIZE
        try:
            self.page = paginate(queryset, request.query_params.get(CURSOR_PARAM), size=size)
        except InvalidCursor as exc:
            raise NotFound(str(exc)) from exc
        return self.page.rows

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count"]["description"] = f"Matching rows, counted up to {COUNT_CAP}."
        return answer

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] == self.page_size_query_param:
                param["description"] = f"Rows per page (1-{MAX_PAGE_SIZE}, default {PAGE_SIZE})."
        return params
