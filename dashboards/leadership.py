"""The leadership view: one consistent set of figures per legal entity and currency over a
period — backlog (contracted, not yet billed), billed, earned revenue, project margin and
margin variance; balances (backlog, a margin over projects' latest figures) as of the
period's end, the others over the period.

Every figure is a KPI of the catalogue (dashboards.kpis) read by the same code as the KPI
pages and the API (dashboards.kpi_queries.figure, from the rollups): the leadership row of
a legal entity shows exactly what that KPI's page shows filtered to the legal entity over
the same period, and the total per currency what it shows unfiltered. Nothing is computed a
second way. The view is written against the catalogue, not against data: a KPI that is not
live yet (`needs`), or not defined yet, is a column that says so; as soon as the catalogue
marks it live, its figures appear.

Amounts are per currency (no conversion). Money KPIs are shown only to finance and
leadership (dashboards.kpi_queries.can_see_money), as everywhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

from integrations.models import LegalEntity

from . import kpi_queries, kpis
from .kpi_queries import Filters, figure
from .kpi_views import DEFAULT_PERIOD, PERIODS
from .models import KpiRollup
from .rollups import DAY, HOUR

#: the leadership figures, in the table's order: (KPI key, label when not in the catalogue)
FIGURES: tuple[tuple[str, str], ...] = (
    ("backlog", "Backlog (contracted, not yet billed)"),
    ("billed_amount", "Billed"),
    ("earned_revenue", "Earned revenue"),
    ("project_margin", "Project margin"),
    ("project_margin_variance", "Project margin variance"),
)
#: a row's legal entity when the records carry none
NO_ENTITY = ""


def default_period(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The KPI pages' default period (the last 30 days, in whole days to the end of today)."""
    end = kpi_queries.ceil(now or timezone.now(), HOUR)
    return kpi_queries.period(end - dt.timedelta(days=PERIODS[DEFAULT_PERIOD][0]), end, DAY)


@dataclass(frozen=True)
class Column:
    """One leadership figure: its KPI, and whether it can be shown."""

    key: str
    name: str
    unit: str
    kpi: kpis.Kpi | None
    #: a balance: shown as of the period's end (the others: over the period)
    as_of_end: bool
    #: amounts withheld from this user
    masked: bool

    @property
    def defined(self) -> bool:
        return self.kpi is not None

    @property
    def live(self) -> bool:
        return self.kpi is not None and self.kpi.live

    @property
    def needs(self) -> str:
        if self.kpi is None:
            return "a definition in the KPI catalogue (dashboards/kpis.py)"
        return self.kpi.needs

    @property
    def shown(self) -> bool:
        return self.live and not self.masked


@dataclass(frozen=True)
class Cell:
    """One figure of one row (None: no data, not live, or masked)."""

    value: Decimal | None
    status: str


@dataclass
class Row:
    """One legal entity in one currency (or, for the totals, all legal entities)."""

    legal_entity: str
    name: str
    currency: str
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class Leadership:
    start: dt.datetime
    end: dt.datetime
    columns: list[Column]
    rows: list[Row]
    totals: list[Row]

    @property
    def masked(self) -> bool:
        return any(c.masked for c in self.columns)


def columns(sees_money: bool) -> list[Column]:
    """The leadership figures as the catalogue defines them now."""
    out = []
    for key, label in FIGURES:
        kpi = kpis.BY_KEY.get(key)
        out.append(
            Column(
                key=key,
                name=kpi.name if kpi is not None else label,
                unit=kpi.unit if kpi is not None else "",
                kpi=kpi,
                as_of_end=kpi is not None and kpi.aggregation == "balance",
                masked=kpi is not None and kpi.is_money and not sees_money,
            )
        )
    return out


def _entities(live: list[Column]) -> dict[str, str]:
    """Code -> name of the legal entities to show: every legal entity known, and any other
    code the rollups of the live figures carry."""
    names = dict(LegalEntity.objects.order_by("code").values_list("code", "name"))
    keys = [c.key for c in live]
    if keys:
        seen = (
            KpiRollup.objects.filter(kpi__in=keys, grain=DAY)
            .order_by()
            .values_list("legal_entity_code", flat=True)
            .distinct()
        )
        for code in seen:
            names.setdefault(code, "")
    return names


@dataclass
class _Figures:
    """One KPI's figure for one scope: per currency (money) or one value."""

    by_currency: dict[str, Decimal | None]
    value: Decimal | None
    count: int


def _read(column: Column, start: dt.datetime, end: dt.datetime, filters: Filters) -> _Figures:
    assert column.kpi is not None
    count, value, by_currency, _status = figure(column.kpi, start, end, filters)
    return _Figures(by_currency, value, count)


def _cell(column: Column, found: _Figures | None, currency: str) -> Cell:
    if not column.live:
        return Cell(None, "needs_data")
    if column.masked or found is None:
        return Cell(None, kpis.NO_DATA)
    assert column.kpi is not None
    value = found.by_currency.get(currency) if column.kpi.is_money else found.value
    return Cell(value, column.kpi.status(value))


def _rows(
    shown: list[Column],
    all_columns: list[Column],
    by_scope: dict[str, dict[str, _Figures]],
    entity: str,
    name: str,
    default_currency: str,
) -> list[Row]:
    """The rows of one scope (a legal entity, or all): one per currency its money figures
    carry (its own currency when they carry none)."""
    currencies = sorted(
        {cur for c in shown if c.kpi and c.kpi.is_money for cur in by_scope[c.key].by_currency}
    ) or [default_currency]
    return [
        Row(
            legal_entity=entity,
            name=name,
            currency=currency,
            cells={c.key: _cell(c, by_scope.get(c.key), currency) for c in all_columns},
        )
        for currency in currencies
    ]


def _has_data(figures: dict[str, _Figures]) -> bool:
    return any(f.count for f in figures.values())


def build(start: dt.datetime, end: dt.datetime, *, sees_money: bool) -> Leadership:
    """The leadership figures over [start, end) (balances as of `end`) for a user who may
    (or may not) see amounts."""
    cols = columns(sees_money)
    shown = [c for c in cols if c.shown]
    currencies = dict(LegalEntity.objects.values_list("code", "currency"))
    rows: list[Row] = []
    entities = _entities([c for c in cols if c.live])
    for code in sorted(entities, key=lambda code: (code == NO_ENTITY, code)):  # none: last
        name = entities[code] if code else "No legal entity"
        found = {c.key: _read(c, start, end, Filters(legal_entity=code)) for c in shown}
        if not code and not _has_data(found):
            continue  # no records without a legal entity: no such row
        rows += _rows(shown, cols, found, code, name, currencies.get(code, ""))
    overall = {c.key: _read(c, start, end, Filters()) for c in shown}
    totals = _rows(shown, cols, overall, NO_ENTITY, "All legal entities", "")
    return Leadership(start, end, cols, rows, totals)


# -- the shapes the page, the API and the CSV share ---------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def payload(result: Leadership) -> dict[str, Any]:
    """The figures as the API answers them (values as strings, None when absent)."""

    def row(r: Row) -> dict[str, Any]:
        return {
            "legal_entity": r.legal_entity,
            "name": r.name,
            "currency": r.currency,
            "values": {
                key: {"value": _text(cell.value), "status": cell.status}
                for key, cell in r.cells.items()
            },
        }

    return {
        "start": result.start,
        "end": result.end,
        "masked": result.masked,
        "figures": [
            {
                "key": c.key,
                "name": c.name,
                "unit": c.unit,
                "defined": c.defined,
                "live": c.live,
                "needs": "" if c.live else c.needs,
                "as_of_end": c.as_of_end,
                "masked": c.masked,
            }
            for c in result.columns
        ],
        "rows": [row(r) for r in result.rows],
        "totals": [row(r) for r in result.totals],
    }


def csv_table(data: dict[str, Any]) -> list[list[str]]:
    """A payload as CSV rows: one per legal entity and currency, then the totals; a figure
    that is not live or is masked has empty cells (the API says why)."""
    keys = [f["key"] for f in data["figures"]]
    table = [["row", "legal_entity", "legal_entity_name", "currency", *keys]]
    for kind, rows in (("legal_entity", data["rows"]), ("total", data["totals"])):
        for r in rows:
            table.append(
                [
                    kind,
                    r["legal_entity"],
                    r["name"],
                    r["currency"],
                    *[r["values"][key]["value"] or "" for key in keys],
                ]
            )
    return table


def chart(result: Leadership) -> dict[str, Any]:
    """Chart data per currency: the legal entities (labels) and one bar series per money
    figure shown; figures in another unit (margin variance) as a line on their own axis."""
    shown = [c for c in result.columns if c.shown]
    per_currency: dict[str, list[Row]] = {}
    for r in result.rows:
        per_currency.setdefault(r.currency, []).append(r)
    charts = []
    for currency, rows in sorted(per_currency.items()):
        series = [
            {
                "key": c.key,
                "label": c.name,
                "unit": currency if c.kpi and c.kpi.is_money else c.unit,
                "money": bool(c.kpi and c.kpi.is_money),
                "values": [_text(r.cells[c.key].value) for r in rows],
            }
            for c in shown
        ]
        if any(v is not None for s in series for v in s["values"]):
            charts.append(
                {
                    "currency": currency,
                    "labels": [r.legal_entity or "No legal entity" for r in rows],
                    "series": series,
                }
            )
    return {"charts": charts}
