"""Keyset pagination of exceptions, newest activity first, for the queue page and the API.

A page is found by the position of the row before it, never by an offset, so page 200 costs
what page 1 costs: one index range scan (the queue indexes end in `last_seen DESC, id DESC`).
The total is counted up to `COUNT_CAP` only: "more than 1,000" is what a person needs to know,
and counting a million rows on every page is what makes lists slow.

A cursor is opaque to clients: `a.<last_seen>.<id>` pages after (older than) that row,
`b.<last_seen>.<id>` before (newer than) it, base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

#: newest activity first; the id breaks ties so the order is total
ORDERING = ("-last_seen", "-id")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
COUNT_CAP = 1000
CURSOR_PARAM = "cursor"


class InvalidCursor(ValueError):
    """The cursor was not made by this module (edited, truncated or from elsewhere)."""


@dataclass(frozen=True)
class Cursor:
    last_seen: dt.datetime
    pk: int
    #: True: the page before (newer than) this row; False: the page after (older than) it
    before: bool = False

    def encode(self) -> str:
        raw = f"{'b' if self.before else 'a'}.{self.last_seen.isoformat()}.{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, rest = raw.split(".", 1)
            stamp, pk = rest.rsplit(".", 1)
            last_seen = parse_datetime(stamp)
            if direction not in ("a", "b") or last_seen is None or last_seen.tzinfo is None:
                raise ValueError(raw)
            return cls(last_seen=last_seen, pk=int(pk), before=direction == "b")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise InvalidCursor("This page link is not valid any more; start again.") from exc

    @classmethod
    def of(cls, row: Model, *, before: bool) -> Cursor:
        return cls(last_seen=row.last_seen, pk=row.pk, before=before)


@dataclass
class KeysetPage:
    rows: list[Any]
    next_cursor: str | None
    previous_cursor: str | None
    count: int
    count_capped: bool

    @property
    def has_other_pages(self) -> bool:
        return bool(self.next_cursor or self.previous_cursor)


def capped_count(queryset: QuerySet, cap: int | None = None) -> tuple[int, bool]:
    """How many rows match, counted up to `cap` (default COUNT_CAP), and whether there are
    more."""
    cap = COUNT_CAP if cap is None else cap
    # no joins, no order, only ids: the planner can answer from an index alone
    found = queryset.select_related(None).order_by().values("pk")[: cap + 1].count()
    return min(found, cap), found > cap


def paginate(
    queryset: QuerySet, token: str | None, *, size: int = PAGE_SIZE, cap: int | None = None
) -> KeysetPage:
    """One page of `queryset` (any filters applied) in ORDERING, from a cursor token or the
    newest. Raises InvalidCursor for a token this module did not make."""
    cursor = Cursor.decode(token) if token else None
    count, capped = capped_count(queryset, cap)
    if cursor is None:
        rows = list(queryset.order_by(*ORDERING)[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return KeysetPage(
            rows=rows,
            next_cursor=Cursor.of(rows[-1], before=False).encode() if more else None,
            previous_cursor=None,
            count=count,
            count_capped=capped,
        )
    t, pk = cursor.last_seen, cursor.pk
    if cursor.before:
        # newer than the cursor row, read upwards and turned round
        newer = Q(last_seen__gte=t) & (Q(last_seen__gt=t) | Q(id__gt=pk))
        rows = list(queryset.filter(newer).order_by("last_seen", "id")[: size + 1])
        more = len(rows) > size
        rows = list(reversed(rows[:size]))
        return KeysetPage(
            rows=rows,
            # older than this page's last row: the cursor row itself opens that page
            next_cursor=Cursor.of(rows[-1], before=False).encode() if rows else _at(t, pk),
            previous_cursor=Cursor.of(rows[0], before=True).encode() if more and rows else None,
            count=count,
            count_capped=capped,
        )
    # `last_seen <= t` bounds the index range; the rest settles rows of the same instant
    older = Q(last_seen__lte=t) & (Q(last_seen__lt=t) | Q(id__lt=pk))
    rows = list(queryset.filter(older).order_by(*ORDERING)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        rows=rows,
        next_cursor=Cursor.of(rows[-1], before=False).encode() if more else None,
        # newer than this page's first row (an empty page: newer than the cursor row and it)
        previous_cursor=(
            Cursor.of(rows[0], before=True).encode() if rows else _at(t, pk, newer=True)
        ),
        count=count,
        count_capped=capped,
    )


def _at(t: dt.datetime, pk: int, *, newer: bool = False) -> str:
    """A cursor that includes the row (t, pk) itself: one step past it in the other way."""
    return Cursor(t, pk - 1 if newer else pk + 1, before=newer).encode()


class ExceptionKeysetPagination(BasePagination):
    """DRF pagination over `paginate`: `?cursor=` from the `next`/`previous` links and
    `?limit=` (1-500, default 50). The answer's `count` stops at 1,000 (`count_capped`)."""

    page_size_query_param = "limit"

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

    def _link(self, token: str | None) -> str | None:
        if token is None:
            return None
        return replace_query_param(self.base_url, CURSOR_PARAM, token)

    def get_next_link(self) -> str | None:
        return self._link(self.page.next_cursor)

    def get_previous_link(self) -> str | None:
        if self.page.previous_cursor is None:
            return None
        return self._link(self.page.previous_cursor)

    def get_first_link(self) -> str:
        return remove_query_param(self.base_url, CURSOR_PARAM)

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.page.count,
                "count_capped": self.page.count_capped,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "count_capped", "results"],
            "properties": {
                "count": {
                    "type": "integer",
                    "example": 123,
                    "description": f"Matching exceptions, counted up to {COUNT_CAP}.",
                },
                "count_capped": {
                    "type": "boolean",
                    "description": f"True when more than {COUNT_CAP} match.",
                },
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": CURSOR_PARAM,
                "required": False,
                "in": "query",
                "description": "The page: the cursor of a `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Exceptions per page (1-{MAX_PAGE_SIZE}, default {PAGE_SIZE}).",
                "schema": {"type": "integer"},
            },
        ]
