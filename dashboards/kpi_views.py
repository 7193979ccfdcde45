"""KPI pages for people: `/dashboards/kpis/` (one tile per KPI over a period, narrowed by
legal entity, region and connection), `/dashboards/kpis/<key>/` (definition, formula, a trend
chart and the same series as a table, with its CSV export) and `/dashboards/kpis/<key>/records/`
(the raw records behind a bucket).

Everything is read through dashboards.kpi_queries, the same code as the KPI API, and the chart
data is the API's own series payload (dashboards.kpi_api.series_payload), so a page and
`/api/v1/kpis/{key}/series/` with the same parameters show the same figures. Amounts of money
KPIs are masked for users without finance rights, as the API does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_GET

from console.choices import TeamKind
from integrations.choices import Region
from integrations.models import Connection, LegalEntity

from . import kpi_queries, kpis, threshold_views
from .kpi_api import series_payload
from .kpi_queries import Filters, QueryError
from .rollups import DAY, HOUR

#: period presets of the pages: key -> (days, label)
PERIODS: dict[str, tuple[int, str]] = {
    "7d": (7, "Last 7 days"),
    "30d": (30, "Last 30 days"),
    "90d": (90, "Last 90 days"),
}
DEFAULT_PERIOD = "30d"
#: the filter parameters, named as in the API
FILTER_NAMES = ("legal_entity", "region", "connection")
STATUS_LABELS = {
    kpis.OK: "On target",
    kpis.WARNING: "Warning",
    kpis.BREACH: "Breach",
    kpis.NO_DATA: "No data in the period",
    kpis.UNRATED: "No threshold",
    "needs_data": "Needs data",
}


@dataclass
class PageQuery:
    """What a KPI page was asked for: a period, a grain and the filters."""

    period: str
    start: dt.datetime
    end: dt.datetime
    grain: str
    filters: Filters
    #: the query string to pass on (period and filters, as given)
    params: dict[str, str]
    error: str = ""

    def query_string(self, **extra: str) -> str:
        return urlencode({**self.params, **extra})


def _moment(raw: str | None) -> dt.datetime | None:
    if not raw:
        return None
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise QueryError(f"{raw!r} is not a date (YYYY-MM-DD) or an ISO date and time")
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def page_query(request: HttpRequest, *, now: dt.datetime | None = None) -> PageQuery:
    """The period (a preset, or `from`/`to` as in the API), grain and filters of a page;
    a bad value is reported in `error` and the defaults are used instead."""
    params = {name: request.GET[name] for name in FILTER_NAMES if request.GET.get(name)}
    error = ""
    connection: int | None = None
    if params.get("connection"):
        try:
            connection = int(params["connection"])
        except ValueError:
            error = "The connection must be chosen from the list."
            params.pop("connection")
    filters = Filters(
        legal_entity=params.get("legal_entity"),
        region=params.get("region"),
        connection=connection,
    )
    grain = request.GET.get("grain") or DAY
    if grain not in (HOUR, DAY):
        error, grain = "The grain is hour or day.", DAY
    end = kpi_queries.ceil(now or timezone.now(), HOUR)
    period = request.GET.get("period") or ""
    try:
        start_at, end_at = _moment(request.GET.get("from")), _moment(request.GET.get("to"))
    except QueryError as exc:
        error, start_at, end_at = str(exc), None, None
    if start_at is not None or end_at is not None:
        period = ""
        end = end_at or end
        start = start_at or end - dt.timedelta(days=PERIODS[DEFAULT_PERIOD][0])
        for name in ("from", "to"):
            if request.GET.get(name):
                params[name] = request.GET[name]
    else:
        if period not in PERIODS:
            period = DEFAULT_PERIOD
        start = end - dt.timedelta(days=PERIODS[period][0])
        params["period"] = period
    if grain == HOUR:
        params["grain"] = HOUR
    try:
        start, end = kpi_queries.period(start, end, grain)
    except QueryError as exc:
        error = str(exc)
        grain = DAY
        params.pop("grain", None)
        end = kpi_queries.ceil(now or timezone.now(), HOUR)
        start, end = kpi_queries.period(end - dt.timedelta(days=30), end, DAY)
    return PageQuery(period, start, end, grain, filters, params, error)


def figure(
    kpi: kpis.Kpi, start: dt.datetime, end: dt.datetime, filters: Filters
) -> tuple[int, Decimal | None, dict[str, Decimal | None], str]:
    """The KPI over [start, end) (a balance: as of `end`): observations, value, the value per
    currency for money KPIs and ratios, and its status against the thresholds: the same code
    as the API and the leadership view (dashboards.kpi_queries.figure)."""
    return kpi_queries.figure(kpi, start, end, filters)


def sparkline(values: list[Decimal | None], width: int = 120, height: int = 28) -> str:
    """SVG polyline points of a tiny trend ("" when fewer than two values)."""
    known = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return ""
    low = min(v for _, v in known)
    high = max(v for _, v in known)
    span = (high - low) or 1.0
    last = max(len(values) - 1, 1)
    return " ".join(
        f"{i * width / last:.1f},{height - 2 - (v - low) * (height - 4) / span:.1f}"
        for i, v in known
    )


def _choices() -> dict[str, Any]:
    """What the filters offer: the legal entities and connections Throughline knows and the
    regions (reference tables: a scan of the rollups for their distinct values grew with
    the data)."""
    return {
        "legal_entities": list(LegalEntity.objects.order_by("code").values_list("code", flat=True)),
        "regions": [value for value, _label in Region.choices],
        "connections": list(Connection.objects.order_by("name").values("id", "name")),
        "periods": [(key, label) for key, (_, label) in PERIODS.items()],
    }


def _tile(kpi: kpis.Kpi, query: PageQuery, masked: bool) -> dict[str, Any]:
    count, value, by_currency, status = figure(kpi, query.start, query.end, query.filters)
    trend = ""
    if kpi.live and count and not masked and len(by_currency) <= 1:
        points = kpi_queries.series(kpi, query.start, query.end, DAY, query.filters).points
        trend = sparkline([p.value for p in points])
    return {
        "kpi": kpi,
        "count": count,
        "value": None if masked else value,
        "by_currency": {} if masked else by_currency,
        "masked": masked,
        "status": status,
        "status_label": STATUS_LABELS.get(status, status),
        "trend": trend,
        "url": reverse("dashboards:kpi", args=[kpi.key]) + "?" + query.query_string(),
    }


def _kpi_or_404(key: str) -> kpis.Kpi:
    try:
        return kpis.get(key)
    except KeyError:
        raise Http404(f"no KPI {key!r}") from None


@require_GET
@login_required
def kpi_overview(request: HttpRequest) -> HttpResponse:
    """Every KPI as a tile: its figure over the period, coloured by its thresholds."""
    query = page_query(request)
    can_see_money = kpi_queries.can_see_money(request.user)
    tiles = [_tile(kpi, query, kpi.is_money and not can_see_money) for kpi in kpis.KPIS]
    return render(
        request,
        "dashboards/kpis.html",
        {
            "query": query,
            "live_tiles": [t for t in tiles if t["kpi"].live],
            "needs_tiles": [t for t in tiles if not t["kpi"].live],
            "api_url": reverse("dashboards:api-kpis")
            + "?"
            + urlencode({k: v for k, v in query.params.items() if k in FILTER_NAMES}),
            **_choices(),
        },
    )


@require_GET
@login_required
def kpi_detail(request: HttpRequest, key: str) -> HttpResponse:
    """One KPI: what it means, its trend as a chart and a table, and the records behind it."""
    kpi = _kpi_or_404(key)
    query = page_query(request)
    masked = kpi.is_money and not kpi_queries.can_see_money(request.user)
    context: dict[str, Any] = {
        "kpi": kpi,
        "query": query,
        "masked": masked,
        "owner": TeamKind(kpi.owner).label if kpi.owner in TeamKind.values else kpi.owner,
        "thresholds": kpi.thresholds.bands(kpi.direction, kpi.unit) if kpi.thresholds else None,
        **_choices(),
    }
    if kpi.live:
        api_params = {
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            "grain": query.grain,
            **{k: v for k, v in query.params.items() if k in FILTER_NAMES},
        }
        series_url = reverse("dashboards:api-kpi-series", args=[kpi.key])
        result = kpi_queries.series(kpi, query.start, query.end, query.grain, query.filters)
        payload = series_payload(kpi, result, request.user)
        count, value, by_currency, status = figure(kpi, query.start, query.end, query.filters)
        step = kpi_queries.GRAIN_STEP[query.grain]
        records_base = reverse("dashboards:kpi-records", args=[kpi.key])
        filter_params = {k: v for k, v in query.params.items() if k in FILTER_NAMES}
        rows = [
            {
                "point": point,
                "status_label": STATUS_LABELS.get(point.status, point.status),
                "value": raw["value"],
                "minimum": raw["minimum"],
                "maximum": raw["maximum"],
                "records_url": records_base
                + "?"
                + urlencode(
                    {
                        "from": point.bucket.isoformat(),
                        "to": (point.bucket + step).isoformat(),
                        **filter_params,
                        **({"currency": point.currency} if point.currency else {}),
                    }
                ),
            }
            for point, raw in zip(result.points, payload["points"], strict=True)
        ]
        context.update(
            {
                "chart_data": {
                    **payload,
                    "chart": "bar" if kpi.aggregation in ("count", "sum") else "line",
                    "thresholds": (
                        {
                            "warning": str(kpi.thresholds.warning),
                            "breach": str(kpi.thresholds.breach),
                        }
                        if kpi.thresholds
                        else None
                    ),
                },
                "rows": rows,
                "has_data": any(p.count for p in result.points),
                "csv_url": series_url + "?" + urlencode({**api_params, "format": "csv"}),
                "json_url": series_url + "?" + urlencode(api_params),
                "records_url": records_base
                + "?"
                + urlencode(
                    {"from": query.start.isoformat(), "to": query.end.isoformat(), **filter_params}
                ),
                "count": count,
                "value": None if masked else value,
                "by_currency": {} if masked else by_currency,
                "status": status,
                "status_label": STATUS_LABELS.get(status, status),
            }
        )
    else:
        context.update({"status": "needs_data", "status_label": STATUS_LABELS["needs_data"]})
    # the teams' thresholds on it and its recent alerts (dashboards.threshold_views)
    context.update(threshold_views.kpi_section(request, kpi))
    return render(request, "dashboards/kpi_detail.html", context)


#: the most records one page lists
RECORDS_LIMIT = 500


@require_GET
@login_required
def kpi_records(request: HttpRequest, key: str) -> HttpResponse:
    """The raw records behind a KPI's figure over `from`-`to` (a bucket, or the period)."""
    kpi = _kpi_or_404(key)
    query = page_query(request)
    masked = kpi.is_money and not kpi_queries.can_see_money(request.user)
    context: dict[str, Any] = {"kpi": kpi, "query": query, "masked": masked}
    if kpi.live:
        currency = (request.GET.get("currency") or "").upper() or None
        filters = Filters(
            legal_entity=query.filters.legal_entity,
            region=query.filters.region,
            connection=query.filters.connection,
            currency=currency,
        )
        found, truncated = kpi_queries.records(
            kpi, query.start, query.end, filters, limit=RECORDS_LIMIT
        )
        api_params = {
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            **{k: v for k, v in query.params.items() if k in FILTER_NAMES},
            **({"currency": currency} if currency else {}),
        }
        context.update(
            {
                "records": found,
                "truncated": truncated,
                "limit": RECORDS_LIMIT,
                "currency": currency,
                "api_url": reverse("dashboards:api-kpi-records", args=[kpi.key])
                + "?"
                + urlencode(api_params),
                "detail_url": reverse("dashboards:kpi", args=[kpi.key])
                + "?"
                + query.query_string(),
            }
        )
    return render(request, "dashboards/kpi_records.html", context)
