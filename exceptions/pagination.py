"""Keyset pagination of exceptions, newest activity first, for the queue page and the API; the
same machinery pages any list in another order (`Keyset`: one field, largest first, the id
breaking ties), such as a reconciliation run's differences by amount at risk.

A page is found by the position of the row before it, never by an offset, so page 200 costs
what page 1 costs: one index range scan (the queue indexes end in `last_seen DESC, id DESC`).
The total is counted up to `COUNT_CAP` only: "more than 1,000" is what a person needs to know,
and counting a million rows on every page is what makes lists slow.

A cursor is opaque to clients: `a.<value>.<id>` pages after (older or smaller than) that row,
`b.<value>.<id>` before (newer or larger than) it, base64url-encoded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, Q, QuerySet
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
COUNT_CAP = 1000
CURSOR_PARAM = "cursor"


class InvalidCursor(ValueError):
    """The cursor was not made by this module (edited, truncated or from elsewhere)."""


def _aware(stamp: str) -> dt.datetime:
    value = parse_datetime(stamp)
    if value is None or value.tzinfo is None:
        raise ValueError(stamp)
    return value


@dataclass(frozen=True)
class Keyset:
    """The order a list is paged in: `field` largest first, the id breaking ties so the order
    is total; `write` puts a row's value into a cursor and `read` takes it back (raising
    ValueError for text `write` did not make)."""

    field: str
    write: Callable[[Any], str]
    read: Callable[[str], Any]

    @property
    def ordering(self) -> tuple[str, str]:
        return (f"-{self.field}", "-id")

    @property
    def reversed_ordering(self) -> tuple[str, str]:
        return (self.field, "id")


#: newest activity first
LAST_SEEN = Keyset("last_seen", write=dt.datetime.isoformat, read=_aware)
ORDERING = LAST_SEEN.ordering


@dataclass(frozen=True)
class Cursor:
    value: Any
    pk: int
    #: True: the page before (newer or larger than) this row; False: the page after it
    before: bool = False

    def encode(self, keyset: Keyset) -> str:
        raw = f"{'b' if self.before else 'a'}.{keyset.write(self.value)}.{self.pk}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, keyset: Keyset) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, rest = raw.split(".", 1)
            text, pk = rest.rsplit(".", 1)
            if direction not in ("a", "b"):
                raise ValueError(raw)
            return cls(value=keyset.read(text), pk=int(pk), before=direction == "b")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise InvalidCursor("This page link is not valid any more; start again.") from exc

    @classmethod
    def of(cls, row: Model, keyset: Keyset, *, before: bool) -> Cursor:
        return cls(value=getattr(row, keyset.field), pk=row.pk, before=before)


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
    queryset: QuerySet,
    token: str | None,
    *,
    keyset: Keyset = LAST_SEEN,
    size: int = PAGE_SIZE,
    cap: int | None = None,
) -> KeysetPage:
    """One page of `queryset` (any filters applied) in `keyset`'s order, from a cursor token or
    the first page. Raises InvalidCursor for a token this module did not make."""
    cursor = Cursor.decode(token, keyset) if token else None
    count, capped = capped_count(queryset, cap)

    def token_of(row: Model, *, before: bool) -> str:
        return Cursor.of(row, keyset, before=before).encode(keyset)

    if cursor is None:
        rows = list(queryset.order_by(*keyset.ordering)[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        return KeysetPage(
            rows=rows,
            next_cursor=token_of(rows[-1], before=False) if more else None,
            previous_cursor=None,
            count=count,
            count_capped=capped,
        )
    field, v, pk = keyset.field, cursor.value, cursor.pk
    if cursor.before:
        # newer (larger) than the cursor row, read upwards and turned round
        newer = Q(**{f"{field}__gte": v}) & (Q(**{f"{field}__gt": v}) | Q(id__gt=pk))
        rows = list(queryset.filter(newer).order_by(*keyset.reversed_ordering)[: size + 1])
        more = len(rows) > size
        rows = list(reversed(rows[:size]))
        return KeysetPage(
            rows=rows,
            # older than this page's last row: the cursor row itself opens that page
            next_cursor=token_of(rows[-1], before=False) if rows else _at(keyset, v, pk),
            previous_cursor=token_of(rows[0], before=True) if more and rows else None,
            count=count,
            count_capped=capped,
        )
    # `field <= v` bounds the index range; the rest settles rows of the same value
    older = Q(**{f"{field}__lte": v}) & (Q(**{f"{field}__lt": v}) | Q(id__lt=pk))
    rows = list(queryset.filter(older).order_by(*keyset.ordering)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        rows=rows,
        next_cursor=token_of(rows[-1], before=False) if more else None,
        # newer than this page's first row (an empty page: newer than the cursor row and it)
        previous_cursor=(
            token_of(rows[0], before=True) if rows else _at(keyset, v, pk, newer=True)
        ),
        count=count,
        count_capped=capped,
    )


def _at(keyset: Keyset, value: Any, pk: int, *, newer: bool = False) -> str:
    """A cursor that includes the row (value, pk) itself: one step past it in the other way."""
    return Cursor(value, pk - 1 if newer else pk + 1, before=newer).encode(keyset)


class ExceptionKeysetPagination(BasePagination):
    """DRF pagination over `paginate`: `?cursor=` from the `next`/`previous` links and
    `?limit=` (1-500, default 50). The answer's `count` stops at 1,000 (`count_capped`)."""

    page_size_query_param = "limit"
    keyset = LAST_SEEN
    #: what a row is, in the schema's descriptions
    noun = "exceptions"

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
            self.page = paginate(
                queryset, request.query_params.get(CURSOR_PARAM), keyset=self.keyset, size=size
            )
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
                    "description": f"Matching {self.noun}, counted up to {COUNT_CAP}.",
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
                "description": (
                    f"{self.noun.capitalize()} per page (1-{MAX_PAGE_SIZE}, default {PAGE_SIZE})."
                ),
                "schema": {"type": "integer"},
            },
        ]
