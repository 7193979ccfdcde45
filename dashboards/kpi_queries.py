"""Reading the KPIs: series, headline values and a bucket's underlying records.

Series and headline values read the rollups only (dashboards.models.KpiRollup): a period is
covered by daily rows for its whole days and hourly rows for the hours at either end, so a
90-day figure reads a few hundred rows whatever the number of events behind them. A bucket's
underlying records come from the raw records through the same code that feeds the rollups
(dashboards.observations), so they add up to the bucket's figures exactly.

Two kinds are combined when read: a ratio (DSO: its numerator's balance at the end of the
period / its denominator summed over the period x the days in it, per currency; each point of
a series is the ratio over the KPI's window to the bucket's end) and a balance of items
(project margin variance: the running total / the running count). `figure` gives any KPI's
figure over a period: the KPI pages and the API read it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Max, Min, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from console.choices import TeamKind
from console.models import Membership
from exceptions.masking import has_finance_rights

from . import observations
from .kpis import BREACH, NO_DATA, OK, UNRATED, WARNING, Kpi
from .models import KpiRollup
from .rollups import DAY, HOUR, Totals, bucket

GRAIN_STEP = {HOUR: dt.timedelta(hours=1), DAY: dt.timedelta(days=1)}
#: the most buckets one series answers (90 days of hours, ten years of days)
MAX_BUCKETS = {HOUR: 24 * 92, DAY: 3700}


class QueryError(ValueError):
    """A request the KPI queries cannot answer (bad period, grain or filter)."""


@dataclass(frozen=True)
class Filters:
    """Dimensions to narrow a KPI to (None: all)."""

    legal_entity: str | None = None
    region: str | None = None
    connection: int | None = None
    currency: str | None = None

    def apply(self, rows: QuerySet[KpiRollup]) -> QuerySet[KpiRollup]:
        if self.legal_entity is not None:
            rows = rows.filter(legal_entity_code=self.legal_entity)
        if self.region is not None:
            rows = rows.filter(region=self.region)
        if self.connection is not None:
            rows = rows.filter(connection_id=self.connection)
        if self.currency is not None:
            rows = rows.filter(currency=self.currency)
        return rows

    def matches(self, dims: observations.Dims) -> bool:
        return (
            (self.legal_entity is None or dims.legal_entity_code == self.legal_entity)
            and (self.region is None or dims.region == self.region)
            and (self.connection is None or dims.connection_id == self.connection)
            and (self.currency is None or dims.currency == self.currency)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "legal_entity": self.legal_entity,
            "region": self.region,
            "connection": self.connection,
            "currency": self.currency,
        }


def can_see_money(user: Any) -> bool:
    """Money KPIs (backlog, billed) are for finance rights (superusers, finance teams) and
    the leadership team."""
    if has_finance_rights(user):
        return True
    return bool(
        getattr(user, "is_authenticated", False)
        and Membership.objects.filter(user=user, team__kind=TeamKind.LEADERSHIP).exists()
    )


# -- periods --------------------------------------------------------------------------------


def floor(at: dt.datetime, grain: str) -> dt.datetime:
    return bucket(at, grain)


def ceil(at: dt.datetime, grain: str) -> dt.datetime:
    start = bucket(at, grain)
    return start if start == at.astimezone(dt.UTC) else start + GRAIN_STEP[grain]


def period(
    start: dt.datetime | None, end: dt.datetime | None, grain: str, *, days: int = 30
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) aligned to the grain's buckets; defaults: the last `days` to now."""
    if grain not in GRAIN_STEP:
        raise QueryError(f"grain must be {HOUR} or {DAY}")
    end = ceil(end or timezone.now(), grain)
    start = floor(start or end - dt.timedelta(days=days), grain)
    if start >= end:
        raise QueryError("the period is empty: 'from' must be before 'to'")
    if (end - start) / GRAIN_STEP[grain] > MAX_BUCKETS[grain]:
        raise QueryError(
            f"at most {MAX_BUCKETS[grain]} {grain}s in one series: choose a shorter period "
            "or the day grain"
        )
    return start, end


# -- reading the rollups --------------------------------------------------------------------


def _rows(kpi: Kpi | str, grain: str, filters: Filters) -> QuerySet[KpiRollup]:
    """Rollup rows of a KPI (or of one rollup series, by its key)."""
    key = kpi if isinstance(kpi, str) else kpi.key
    return filters.apply(KpiRollup.objects.filter(kpi=key, grain=grain))


def _sum_by_currency(rows: QuerySet[KpiRollup], into: dict[str, Totals]) -> None:
    sums = rows.values("currency").annotate(
        n=Sum("count"), t=Sum("total"), lo=Min("minimum"), hi=Max("maximum")
    )
    for row in sums.order_by():
        totals = into.get(row["currency"])
        if totals is None:
            into[row["currency"]] = Totals(row["n"] or 0, row["t"] or 0, row["lo"], row["hi"])
        else:
            totals.add(row["n"] or 0, row["t"] or 0, row["lo"], row["hi"])


def totals(
    kpi: Kpi | str, start: dt.datetime | None, end: dt.datetime, filters: Filters
) -> dict[str, Totals]:
    """Count, total, min and max of the KPI over [start, end) per currency ("" when not
    money), from daily rows for the whole days and hourly rows for the hours at the ends;
    `start` None: from the first record. `start` and `end` are rounded out to hours."""
    end = ceil(end, HOUR)
    first_day = ceil(start, DAY) if start is not None else None
    last_day = floor(end, DAY)
    out: dict[str, Totals] = {}
    if first_day is None or first_day < last_day:
        days = _rows(kpi, DAY, filters).filter(bucket__lt=last_day)
        if first_day is not None:
            days = days.filter(bucket__gte=first_day)
        _sum_by_currency(days, out)
        hours = [(last_day, end)]
        if start is not None:
            hours.append((floor(start, HOUR), first_day))
    else:
        hours = [(floor(start, HOUR), end)]
    for lo, hi in hours:
        if lo < hi:
            _sum_by_currency(_rows(kpi, HOUR, filters).filter(bucket__gte=lo, bucket__lt=hi), out)
    return out


#: statuses from best to worst (the worst of several currencies is a ratio's status)
_SEVERITY = {OK: 0, WARNING: 1, BREACH: 2}


def _days(start: dt.datetime, end: dt.datetime) -> Decimal:
    return Decimal((end - start).total_seconds()) / Decimal(86400)


def ratio_by_currency(
    kpi: Kpi, start: dt.datetime, end: dt.datetime, filters: Filters
) -> tuple[int, dict[str, Decimal | None]]:
    """A ratio KPI over [start, end) per currency, and how many observations its
    denominator holds (e.g. invoices raised in the period)."""
    numerator, denominator = kpi.parts
    balances = totals(numerator, None, end, filters)
    sums = totals(denominator, start, end, filters)
    days = _days(floor(start, HOUR), ceil(end, HOUR))
    values = {
        cur: kpi.ratio(
            balances[cur].total if cur in balances else 0,
            sums[cur].total if cur in sums else 0,
            days,
        )
        for cur in sorted(set(balances) | set(sums))
    }
    return sum(t.count for t in sums.values()), values


def figure(
    kpi: Kpi, start: dt.datetime | None, end: dt.datetime, filters: Filters | None = None
) -> tuple[int, Decimal | None, dict[str, Decimal | None], str]:
    """The KPI over [start, end) (a balance: as of `end`): observations, value, the value per
    currency for money KPIs and ratios, and its status against the thresholds."""
    filters = filters or Filters()
    if not kpi.live:
        return 0, None, {}, "needs_data"
    if kpi.aggregation == "ratio":
        start = start if start is not None else end - dt.timedelta(days=kpi.window_days)
        count, values = ratio_by_currency(kpi, start, end, filters)
        value = next(iter(values.values())) if len(values) == 1 else None
        known = [kpi.status(v) for v in values.values() if v is not None]
        status = kpi.status(value)
        if len(values) > 1:
            status = max(known, key=lambda s: _SEVERITY.get(s, 0)) if known else NO_DATA
        return count, value, values, status
    since = None if kpi.aggregation == "balance" else start
    by_currency = totals(kpi, since, end, filters)
    count = sum(t.count for t in by_currency.values())
    if kpi.is_money:
        values = {cur: kpi.value(t.count, t.total) for cur, t in sorted(by_currency.items())}
        value = next(iter(values.values())) if len(values) == 1 else None
        status = kpi.status(value)
        if value is None and len(values) > 1:  # amounts in several currencies: no one figure
            status = UNRATED if kpi.thresholds is None else NO_DATA
        return count, value, values, status
    total = sum(t.total for t in by_currency.values())
    value = kpi.value(count, total) if (count or kpi.aggregation == "count") else None
    return count, value, {}, kpi.status(value)


@dataclass
class Point:
    """One bucket of a series (one currency of it, for money KPIs)."""

    bucket: dt.datetime
    currency: str
    count: int
    total: int
    value: Decimal | None
    minimum: Decimal | None
    maximum: Decimal | None
    status: str


@dataclass
class Series:
    kpi: Kpi
    grain: str
    start: dt.datetime
    end: dt.datetime
    filters: Filters
    points: list[Point] = field(default_factory=list)


def series(
    kpi: Kpi,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    grain: str = DAY,
    filters: Filters | None = None,
) -> Series:
    """The KPI per bucket over [start, end), every bucket present (empty ones with count 0
    and no value; a balance carries its running total through them)."""
    filters = filters or Filters()
    if not kpi.live:
        raise QueryError(f"{kpi.name} is not computed yet: it needs {kpi.needs}")
    start, end = period(start, end, grain, days=kpi.window_days)
    if kpi.aggregation == "ratio":
        return _ratio_series(kpi, start, end, grain, filters)
    rows = (
        _rows(kpi, grain, filters)
        .filter(bucket__gte=start, bucket__lt=end)
        .values("bucket", "currency")
        .annotate(n=Sum("count"), t=Sum("total"), lo=Min("minimum"), hi=Max("maximum"))
        .order_by("bucket", "currency")
    )
    found: dict[tuple[dt.datetime, str], dict[str, Any]] = {
        (row["bucket"], row["currency"]): row for row in rows
    }
    balance: dict[str, int] = {}
    items: dict[str, int] = {}
    if kpi.aggregation == "balance":
        before = totals(kpi, None, start, filters)
        balance = {cur: t.total for cur, t in before.items()}
        items = {cur: t.count for cur, t in before.items()}
    currencies = sorted({cur for _, cur in found} | set(balance)) or [filters.currency or ""]
    result = Series(kpi, grain, start, end, filters)
    step = GRAIN_STEP[grain]
    when = start
    while when < end:
        for cur in currencies:
            row = found.get((when, cur))
            n, t = (row["n"], row["t"]) if row else (0, 0)
            if kpi.aggregation == "balance":
                balance[cur] = balance.get(cur, 0) + t
                items[cur] = items.get(cur, 0) + n
                value = kpi.value(items[cur], balance[cur])
            else:
                value = kpi.value(n, t) if (n or kpi.aggregation in ("count", "sum")) else None
            result.points.append(
                Point(
                    bucket=when,
                    currency=cur,
                    count=n,
                    total=t,
                    value=value,
                    minimum=kpi.display(row["lo"]) if row else None,
                    maximum=kpi.display(row["hi"]) if row else None,
                    status=kpi.status(value),
                )
            )
        when += step
    return result


def _bucket_sums(
    key: str, grain: str, start: dt.datetime, end: dt.datetime, filters: Filters
) -> dict[tuple[dt.datetime, str], tuple[int, int]]:
    rows = (
        _rows(key, grain, filters)
        .filter(bucket__gte=start, bucket__lt=end)
        .values("bucket", "currency")
        .annotate(n=Sum("count"), t=Sum("total"))
        .order_by()
    )
    return {(row["bucket"], row["currency"]): (row["n"] or 0, row["t"] or 0) for row in rows}


def _ratio_series(
    kpi: Kpi, start: dt.datetime, end: dt.datetime, grain: str, filters: Filters
) -> Series:
    """Each bucket: the ratio over the `window_days` to the bucket's end (numerator as a
    balance at the bucket's end, denominator summed over the window), per currency; the
    count is the denominator's observations in the bucket."""
    numerator, denominator = kpi.parts
    step = GRAIN_STEP[grain]
    window = dt.timedelta(days=kpi.window_days)
    balance = {cur: t.total for cur, t in totals(numerator, None, start, filters).items()}
    moves = _bucket_sums(numerator, grain, start, end, filters)
    sums = _bucket_sums(denominator, grain, start + step - window, end, filters)
    currencies = sorted(set(balance) | {cur for _, cur in moves} | {cur for _, cur in sums}) or [
        filters.currency or ""
    ]
    days = _days(start, start + window)
    # the denominator over the window to each bucket's end, kept as a running sum
    running = {cur: 0 for cur in currencies}
    for (at, cur), (_, t) in sums.items():
        if at < start:
            running[cur] += t
    result = Series(kpi, grain, start, end, filters)
    when = start
    while when < end:
        for cur in currencies:
            balance[cur] = balance.get(cur, 0) + moves.get((when, cur), (0, 0))[1]
            running[cur] += sums.get((when, cur), (0, 0))[1]
            value = kpi.ratio(balance[cur], running[cur], days)
            result.points.append(
                Point(
                    bucket=when,
                    currency=cur,
                    count=sums.get((when, cur), (0, 0))[0],
                    total=running[cur],
                    value=value,
                    minimum=None,
                    maximum=None,
                    status=kpi.status(value),
                )
            )
            running[cur] -= sums.get((when + step - window, cur), (0, 0))[1]
        when += step
    return result


@dataclass
class Current:
    """A KPI's headline: its value over the last `window_days` (a balance: as of now)."""

    kpi: Kpi
    start: dt.datetime | None
    end: dt.datetime
    count: int
    value: Decimal | None
    status: str
    #: money KPIs: the value per currency (a headline value only when there is one currency)
    by_currency: dict[str, Decimal | None] = field(default_factory=dict)


def current(kpi: Kpi, filters: Filters | None = None, now: dt.datetime | None = None) -> Current:
    filters = filters or Filters()
    end = ceil(now or timezone.now(), HOUR)
    if not kpi.live:
        return Current(kpi, None, end, 0, None, "needs_data")
    start = None if kpi.aggregation == "balance" else end - dt.timedelta(days=kpi.window_days)
    count, value, values, status = figure(kpi, start, end, filters)
    if kpi.is_money:
        status = kpi.status(value)
    return Current(kpi, start, end, count, value, status, values)


# -- a bucket's underlying records ----------------------------------------------------------


@dataclass
class Record:
    """One raw record behind a KPI's figure, with what it contributed."""

    kind: str
    id: int
    at: dt.datetime
    count: int
    value: Decimal | None
    legal_entity_code: str
    region: str
    connection_id: int
    currency: str
    url: str


_URLS = {
    "run": "integrations:run",
    "exception": "exceptions:detail",
    "reconciliation_run": "reconciliation:run-detail",
}


def _url(kind: str, pk: int) -> str:
    name = _URLS.get(kind)
    if name is None:
        return reverse(f"admin:{_ADMIN[kind]}_change", args=[pk])
    return reverse(name, args=[pk])


_ADMIN = {
    "posting_batch": "integrations_postingbatch",
    "milestone_fact": "dashboards_milestonefact",
    "invoice_payment_fact": "dashboards_invoicepaymentfact",
    "earned_revenue_fact": "dashboards_earnedrevenuefact",
    "project_margin_fact": "dashboards_projectmarginfact",
    "extract_run": "reporting_extractrun",
}


def records(
    kpi: Kpi,
    start: dt.datetime,
    end: dt.datetime,
    filters: Filters | None = None,
    *,
    limit: int = 500,
) -> tuple[list[Record], bool]:
    """The raw records behind the KPI's figure over [start, end) (a bucket, or any period),
    newest first, at most `limit`; and whether there were more. A ratio's records are those
    of its numerator (DSO: what was invoiced and paid, in money)."""
    filters = filters or Filters()
    if not kpi.live:
        raise QueryError(f"{kpi.name} is not computed yet: it needs {kpi.needs}")
    key = kpi.rollup_keys[0]
    found = [obs for obs in observations.scan(start, end, kpis={key}) if filters.matches(obs.dims)]
    found.sort(key=lambda obs: (obs.at, obs.ref), reverse=True)
    out = []
    for obs in found[:limit]:
        kind, _, pk = obs.ref.partition(":")
        out.append(
            Record(
                kind=kind,
                id=int(pk),
                at=obs.at,
                count=obs.count,
                value=_record_value(kpi, obs.value),
                legal_entity_code=obs.dims.legal_entity_code,
                region=obs.dims.region,
                connection_id=obs.dims.connection_id,
                currency=obs.dims.currency,
                url=_url(kind, int(pk)),
            )
        )
    return out, len(found) > limit


def _record_value(kpi: Kpi, base: int) -> Decimal | None:
    if kpi.aggregation == "count":
        return Decimal(1)
    if kpi.aggregation == "ratio":  # the numerator's money, in cents
        return (Decimal(base) / 100).quantize(Decimal("0.01"))
    return kpi.display(base)


def by_legal_entity(
    kpi: Kpi, now: dt.datetime | None = None
) -> dict[tuple[str, str], Decimal | None]:
    """The headline value per (legal entity, currency): the leadership table of backlog,
    billed, earned revenue, margin and DSO per legal entity, one consistent set of figures
    from the same rollups."""
    end = ceil(now or timezone.now(), HOUR)
    start = None if kpi.aggregation == "balance" else end - dt.timedelta(days=kpi.window_days)
    entities = (
        KpiRollup.objects.filter(kpi=kpi.rollup_keys[0], grain=DAY)
        .values_list("legal_entity_code", flat=True)
        .distinct()
        .order_by("legal_entity_code")
    )
    out: dict[tuple[str, str], Decimal | None] = {}
    for entity in entities:
        if kpi.aggregation == "ratio" and start is not None:
            _, values = ratio_by_currency(kpi, start, end, Filters(legal_entity=entity))
            out.update({(entity, cur): value for cur, value in values.items()})
            continue
        for cur, t in sorted(totals(kpi, start, end, Filters(legal_entity=entity)).items()):
            out[(entity, cur)] = kpi.value(t.count, t.total)
    return out
