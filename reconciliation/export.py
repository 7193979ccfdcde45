"""CSV export of a run's (filtered) differences, for the run page and the API alike.

Streamed row by row like the exception export (exceptions.export: the same writer, the same
guard against spreadsheet formulas), read from the database in chunks, so an export of a
million-record run's differences holds neither the rows nor the file in memory. Amounts are
masked for people without finance rights, as on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse

from console import audit
from exceptions.export import CHUNK_ROWS, file_stamp, streaming_csv, table_rows

from . import display
from .actions.permissions import can_see_amounts
from .models import Difference, Run
from .pagination import ORDERING

Column = tuple[str, Callable[[Difference, dict[str, Any]], Any]]


def _what_differs(diff: Difference, context: dict[str, Any]) -> str:
    return "; ".join(
        f"{row['field']}: {row['source'] or '—'} → {row['target'] or '—'}"
        for row in display.field_differences(diff, context["allowed"])
    )


COLUMNS: list[Column] = [
    ("Difference", lambda d, c: d.pk),
    ("Link", lambda d, c: c["base_url"] + reverse("reconciliation:difference", args=[d.pk])),
    ("Run", lambda d, c: d.run_id),
    ("Definition", lambda d, c: d.run.definition.name),
    ("Key", lambda d, c: d.key),
    ("Class", lambda d, c: d.get_kind_display()),
    ("Duplicated in", lambda d, c: d.get_side_display() if d.side else ""),
    ("Legal entity", lambda d, c: d.legal_entity),
    ("Currency", lambda d, c: d.currency),
    ("Source record", lambda d, c: d.source_id),
    ("Target record", lambda d, c: d.target_id),
    ("Source amount", lambda d, c: display.shown(d.source_amount, c["allowed"])),
    ("Target amount", lambda d, c: display.shown(d.target_amount, c["allowed"])),
    ("Amount at risk", lambda d, c: display.shown(d.amount_at_risk, c["allowed"])),
    ("Source status", lambda d, c: d.source_status),
    ("Target status", lambda d, c: d.target_status),
    ("What differs", _what_differs),
    ("State", lambda d, c: d.get_state_display()),
    ("Exception", lambda d, c: d.exception_id or ""),
    ("Accepted because", lambda d, c: d.acceptance.reason if d.acceptance_id else ""),
]


def csv_rows(queryset: QuerySet[Difference], user: Any, *, base_url: str = "") -> Iterator[list]:
    """The header, then one row per difference (as `user` may see it), most at risk first."""
    context = {"allowed": can_see_amounts(user), "base_url": base_url.rstrip("/")}
    rows = queryset.select_related("run__definition", "acceptance").order_by(*ORDERING)
    return table_rows(rows.iterator(chunk_size=CHUNK_ROWS), COLUMNS, context)


def filename(run: Run) -> str:
    return f"reconciliation-{run.definition.name}-run{run.pk}-{file_stamp()}.csv"


def csv_response(
    queryset: QuerySet[Difference], user: Any, *, run: Run, base_url: str = ""
) -> StreamingHttpResponse:
    """A streaming CSV download of `queryset` as `user` may see it."""
    return streaming_csv(csv_rows(queryset, user, base_url=base_url), filename(run))


def audited_csv_response(
    queryset: QuerySet[Difference],
    user: Any,
    *,
    run: Run,
    query: str,
    base_url: str = "",
    through: str = "",
) -> StreamingHttpResponse:
    """`csv_response`, with the export in the audit trail: the run, the filters (`query`) and
    where it was asked for (`through`: "" for the page, "the API")."""
    audit.record(
        "reconciliation.exported",
        f"CSV export of reconciliation run #{run.pk} ({run.definition.name})"
        f"{f' through {through}' if through else ''}: {query or 'no filters'}",
        actor=user,
        obj=run,
        query=query,
    )
    return csv_response(queryset, user, run=run, base_url=base_url)
