"""CSV export of a filtered set of exceptions, for the queue page and the API alike.

Streamed row by row (Django's StreamingHttpResponse over the csv module, the rows read with a
database cursor in chunks), so an export of 100,000 exceptions holds neither the rows nor the
file in memory. Column names are the business words of the pages; amounts are masked for
people without finance rights exactly as on the pages (exceptions.masking). Text cells that a
spreadsheet would run as a formula (=, +, -, @) are prefixed with an apostrophe.

The streaming machinery (`table_rows`, `streaming_csv`, `file_stamp`) serves the other exports
too (reconciliation differences, metric alerts).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from console.models import User

from .choices import ACTIVE_STATUSES, SlaState
from .masking import amount_for
from .models import IntegrationException
from .pagination import ORDERING
from .sla import sla_state

CHUNK_ROWS = 2000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Row = TypeVar("Row")


def utc_cell(value: dt.datetime | None) -> str:
    """A time as an export cell: UTC, to the second ('' for none)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def sla_label(exc: IntegrationException, now: dt.datetime) -> str:
    """The SLA state of an active exception in words ("" when no clock runs: no due time,
    or resolved or ignored)."""
    if exc.status not in ACTIVE_STATUSES or exc.due_at is None:
        return ""
    return SlaState(sla_state(exc, now)).label


Column = tuple[str, Callable[[IntegrationException, dict[str, Any]], Any]]

COLUMNS: list[Column] = [
    ("Exception", lambda e, c: e.pk),
    ("Link", lambda e, c: c["base_url"] + e.get_absolute_url()),
    ("Queue", lambda e, c: e.queue.name),
    ("Team", lambda e, c: e.queue.team.name),
    ("Status", lambda e, c: e.get_status_display()),
    ("Problem", lambda e, c: e.get_code_display()),
    ("Problem code", lambda e, c: e.code),
    ("Category", lambda e, c: e.get_category_display()),
    ("Title", lambda e, c: e.title),
    ("Legal entity", lambda e, c: e.legal_entity_code),
    ("Region", lambda e, c: e.region),
    ("Record type", lambda e, c: e.entity_type),
    ("Record", lambda e, c: e.entity_ref),
    ("Connection", lambda e, c: e.connection.name if e.connection_id else ""),
    ("Assignee", lambda e, c: e.assignee.get_username() if e.assignee_id else ""),
    ("Amount", lambda e, c: amount_for(c["user"], e.amount)),
    ("Currency", lambda e, c: e.currency),
    ("Occurrences", lambda e, c: e.occurrences),
    ("First seen (UTC)", lambda e, c: utc_cell(e.first_seen)),
    ("Last seen (UTC)", lambda e, c: utc_cell(e.last_seen)),
    ("Due (UTC)", lambda e, c: utc_cell(e.due_at)),
    ("SLA", lambda e, c: sla_label(e, c["now"])),
    ("Incident", lambda e, c: e.incident_id or ""),
    ("Transaction", lambda e, c: e.run.correlation_id if e.run_id else ""),
    ("What happened", lambda e, c: e.explanation),
    ("What to do", lambda e, c: e.suggested_fix),
]
HEADERS = [name for name, _ in COLUMNS]


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet will not evaluate: text starting like a formula gets a leading
    apostrophe; numbers (including negative amounts) stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        Decimal(value)
    except InvalidOperation:
        return "'" + value
    return value


def export_queryset(queryset: QuerySet[IntegrationException]) -> QuerySet[IntegrationException]:
    """The rows of an export, newest activity first, with what the columns read joined in."""
    return queryset.select_related(
        "queue__team", "connection", "assignee", "run", "incident"
    ).order_by(*ORDERING)


def table_rows(
    records: Iterable[Row],
    columns: list[tuple[str, Callable[[Row, dict[str, Any]], Any]]],
    context: dict[str, Any],
) -> Iterator[list[Any]]:
    """The header (the columns' names), then one row per record: each column's getter
    applied to the record and `context`, made safe for a spreadsheet."""
    yield [name for name, _ in columns]
    for record in records:
        yield [safe_cell(getter(record, context)) for _, getter in columns]


def csv_rows(
    queryset: QuerySet[IntegrationException], user: User, *, base_url: str = ""
) -> Iterator[list[Any]]:
    """The header, then one row per exception (as `user` may see it)."""
    context = {"user": user, "now": timezone.now(), "base_url": base_url.rstrip("/")}
    return table_rows(export_queryset(queryset).iterator(chunk_size=CHUNK_ROWS), COLUMNS, context)


class _Echo:
    """A file-like object whose write returns the line instead of storing it."""

    def write(self, value: str) -> str:
        return value


def stream_lines(rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def streaming_csv(rows: Iterable[list[Any]], filename: str) -> StreamingHttpResponse:
    """A CSV download of `rows` (the header first), written while it is sent, not kept."""
    response = StreamingHttpResponse(stream_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def file_stamp() -> str:
    """Now in UTC, as export file names carry it (20261125-1022)."""
    return timezone.now().astimezone(dt.UTC).strftime("%Y%m%d-%H%M")


def csv_response(
    queryset: QuerySet[IntegrationException], user: User, *, filename: str, base_url: str = ""
) -> StreamingHttpResponse:
    """A streaming CSV download of `queryset` as `user` may see it."""
    return streaming_csv(csv_rows(queryset, user, base_url=base_url), filename)


def export_filename(label: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in label) or "exceptions"
    return f"exceptions-{safe}-{file_stamp()}.csv"
