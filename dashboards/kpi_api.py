"""REST API of the KPIs (mounted under /api/v1/kpis/ by dashboards.urls):

- `GET /api/v1/kpis/`: every KPI with its definition, formula, unit, direction, thresholds and
  its current value against them (`legal_entity`, `region`, `connection` narrow it);
- `GET /api/v1/kpis/{key}/`: one of them;
- `GET /api/v1/kpis/{key}/series/?from=&to=&grain=hour|day&legal_entity=&region=&connection=
  &currency=`: the KPI per bucket, from the rollups; `&format=csv` exports it as CSV;
- `GET /api/v1/kpis/{key}/records/?from=&to=&...`: the raw records behind the figure of a
  bucket (or any period), newest first.

Money KPIs (backlog, billed) show their amounts only to users with finance rights and to the
leadership team; everyone else gets `masked: true` and no amounts.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any

from django.urls import reverse
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from . import kpi_queries, kpis
from .kpi_queries import Filters, QueryError
from .rollups import DAY, HOUR

# -- serializers ----------------------------------------------------------------------------


def _number(**kwargs: Any) -> serializers.DecimalField:
    """A Decimal shown as it is (a string, no rounding added)."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class ThresholdsSerializer(serializers.Serializer):
    warning = _number()
    breach = _number()
    bands = serializers.DictField(
        child=serializers.CharField(), help_text="ok, warning and breach in words"
    )


class CurrentSerializer(serializers.Serializer):
    start = serializers.DateTimeField(
        allow_null=True, help_text="start of the window (null: from the first record)"
    )
    end = serializers.DateTimeField()
    count = serializers.IntegerField(help_text="observations in the window")
    value = _number(allow_null=True, help_text="in the KPI's unit")
    status = serializers.ChoiceField(
        choices=[kpis.OK, kpis.WARNING, kpis.BREACH, kpis.NO_DATA, kpis.UNRATED, "needs_data"]
    )
    by_currency = serializers.DictField(
        child=_number(allow_null=True),
        help_text="money KPIs: the value per currency",
    )
    masked = serializers.BooleanField(help_text="amounts withheld (finance and leadership only)")


class KpiSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    definition = serializers.CharField()
    formula = serializers.CharField()
    computed_from = serializers.CharField(help_text="the records and timestamps it is built from")
    unit = serializers.CharField()
    direction = serializers.ChoiceField(choices=["lower", "higher", "none"])
    aggregation = serializers.ChoiceField(choices=["average", "rate", "sum", "count", "balance"])
    connection_means = serializers.CharField()
    owner = serializers.CharField()
    window_days = serializers.IntegerField(help_text="days the current value covers")
    live = serializers.BooleanField(help_text="false: not computed yet, see needs")
    needs = serializers.CharField(help_text="what Throughline must record first (live: empty)")
    thresholds = ThresholdsSerializer(allow_null=True)
    current = CurrentSerializer()
    series_url = serializers.CharField(allow_null=True)


class PointSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField(help_text="start of the hour or day, UTC")
    currency = serializers.CharField()
    count = serializers.IntegerField()
    value = _number(allow_null=True)
    minimum = _number(allow_null=True)
    maximum = _number(allow_null=True)
    status = serializers.ChoiceField(
        choices=[kpis.OK, kpis.WARNING, kpis.BREACH, kpis.NO_DATA, kpis.UNRATED],
        help_text="against the thresholds (unrated: the KPI has none)",
    )


class FiltersSerializer(serializers.Serializer):
    legal_entity = serializers.CharField(allow_null=True)
    region = serializers.CharField(allow_null=True)
    connection = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField(allow_null=True)


class SeriesSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    unit = serializers.CharField()
    grain = serializers.ChoiceField(choices=[HOUR, DAY])
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    filters = FiltersSerializer()
    masked = serializers.BooleanField()
    points = PointSerializer(many=True)


class RecordSerializer(serializers.Serializer):
    kind = serializers.CharField(
        help_text="the raw record: run, exception, posting_batch, milestone_fact, "
        "invoice_payment_fact, earned_revenue_fact, project_margin_fact, extract_run, "
        "reconciliation_run"
    )
    id = serializers.IntegerField()
    at = serializers.DateTimeField(help_text="when it counts for the KPI")
    count = serializers.IntegerField(help_text="items it stands for (entries of a batch)")
    value = _number(allow_null=True)
    legal_entity_code = serializers.CharField()
    region = serializers.CharField()
    connection_id = serializers.IntegerField()
    currency = serializers.CharField()
    url = serializers.CharField()


class RecordsSerializer(serializers.Serializer):
    key = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    truncated = serializers.BooleanField(help_text="more records than `limit`")
    masked = serializers.BooleanField()
    records = RecordSerializer(many=True)


# -- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = ["bucket", "currency", "count", "value", "minimum", "maximum", "status"]


class CsvRenderer(BaseRenderer):
    """An answer as CSV (`?format=csv`): the table `rows` makes of an answer that carries
    `answer_key`; an error, its message."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"
    answer_key = ""

    def rows(self, data: dict[str, Any]) -> Iterable[list[Any]]:
        raise NotImplementedError

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out)
        if isinstance(data, dict) and self.answer_key in data:
            writer.writerows(self.rows(data))
        else:  # an error: its message
            writer.writerow(["detail"])
            detail = data.get("detail", data) if isinstance(data, dict) else data
            writer.writerow([str(detail)])
        return out.getvalue().encode(self.charset)


class KpiSeriesCsvRenderer(CsvRenderer):
    """A series as CSV, one row per bucket (and currency): `?format=csv`."""

    answer_key = "points"

    def rows(self, data: dict[str, Any]) -> Iterable[list[Any]]:
        yield CSV_COLUMNS
        for point in data["points"]:
            yield ["" if point[c] is None else point[c] for c in CSV_COLUMNS]


# -- parameters -----------------------------------------------------------------------------

FILTER_PARAMETERS = [
    OpenApiParameter("legal_entity", str, description="legal entity code, e.g. UK01"),
    OpenApiParameter("region", str, description="region, e.g. emea"),
    OpenApiParameter("connection", int, description="connection id (see each KPI's meaning)"),
]
PERIOD_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.DATETIME,
        description="start (ISO date or date and time, UTC); default: the KPI's window back",
    ),
    OpenApiParameter("to", OpenApiTypes.DATETIME, description="end (exclusive); default: now"),
    OpenApiParameter("grain", str, enum=[HOUR, DAY], description="bucket size; default: day"),
    OpenApiParameter("currency", str, description="money KPIs: one currency"),
]


def _moment(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise ValidationError({name: "an ISO date or date and time"})
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _filters(request: Request) -> Filters:
    params = request.query_params
    connection = params.get("connection")
    if connection not in (None, ""):
        try:
            connection_id: int | None = int(connection)
        except ValueError:
            raise ValidationError({"connection": "a connection id"}) from None
    else:
        connection_id = None
    return Filters(
        legal_entity=params.get("legal_entity") or None,
        region=params.get("region") or None,
        connection=connection_id,
        currency=(params.get("currency") or "").upper() or None,
    )


def _kpi(key: str) -> kpis.Kpi:
    try:
        return kpis.get(key)
    except KeyError:
        raise NotFound(f"no KPI {key!r}") from None


def _describe(kpi: kpis.Kpi, request: Request, filters: Filters) -> dict[str, Any]:
    masked = kpi.is_money and not kpi_queries.can_see_money(request.user)
    now = kpi_queries.current(kpi, filters)
    return {
        "key": kpi.key,
        "name": kpi.name,
        "definition": kpi.definition,
        "formula": kpi.formula,
        "computed_from": kpi.computed_from,
        "unit": kpi.unit,
        "direction": kpi.direction,
        "aggregation": kpi.aggregation,
        "connection_means": kpi.connection_means,
        "owner": kpi.owner,
        "window_days": kpi.window_days,
        "live": kpi.live,
        "needs": kpi.needs,
        "thresholds": (
            {
                "warning": kpi.thresholds.warning,
                "breach": kpi.thresholds.breach,
                "bands": kpi.thresholds.bands(kpi.direction, kpi.unit),
            }
            if kpi.thresholds
            else None
        ),
        "current": {
            "start": now.start,
            "end": now.end,
            "count": now.count,
            "value": None if masked else now.value,
            "status": now.status,
            "by_currency": {} if masked else now.by_currency,
            "masked": masked,
        },
        "series_url": (
            request.build_absolute_uri(reverse("dashboards:api-kpi-series", args=[kpi.key]))
            if kpi.live
            else None
        ),
    }


def series_payload(kpi: kpis.Kpi, result: kpi_queries.Series, user: Any) -> dict[str, Any]:
    """A series as the API answers it (amounts masked for users without finance rights);
    the KPI pages embed the same for their charts."""
    masked = kpi.is_money and not kpi_queries.can_see_money(user)
    data = {
        "key": kpi.key,
        "name": kpi.name,
        "unit": kpi.unit,
        "grain": result.grain,
        "start": result.start,
        "end": result.end,
        "filters": result.filters.as_dict(),
        "masked": masked,
        "points": [
            {
                "bucket": p.bucket,
                "currency": p.currency,
                "count": p.count,
                "value": None if masked else p.value,
                "minimum": None if masked else p.minimum,
                "maximum": None if masked else p.maximum,
                "status": p.status,
            }
            for p in result.points
        ],
    }
    return SeriesSerializer(data).data


# -- views ----------------------------------------------------------------------------------


class KpiListView(APIView):
    """Every KPI: definition, formula, thresholds and current value."""

    @extend_schema(
        operation_id="kpis_list",
        parameters=FILTER_PARAMETERS,
        responses=KpiSerializer(many=True),
        tags=["kpis"],
    )
    def get(self, request: Request) -> Response:
        filters = _filters(request)
        described = [_describe(kpi, request, filters) for kpi in kpis.KPIS]
        return Response(KpiSerializer(described, many=True).data)


class KpiDetailView(APIView):
    """One KPI: definition, formula, thresholds and current value."""

    @extend_schema(
        operation_id="kpis_retrieve",
        parameters=FILTER_PARAMETERS,
        responses=KpiSerializer,
        tags=["kpis"],
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(KpiSerializer(_describe(_kpi(key), request, _filters(request))).data)


class KpiSeriesView(APIView):
    """A KPI per hour or day over a period, from the rollups; `?format=csv` for CSV."""

    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, KpiSeriesCsvRenderer]

    @extend_schema(
        operation_id="kpis_series",
        parameters=[*PERIOD_PARAMETERS, *FILTER_PARAMETERS],
        responses=SeriesSerializer,
        tags=["kpis"],
    )
    def get(self, request: Request, key: str) -> Response:
        kpi = _kpi(key)
        grain = request.query_params.get("grain") or DAY
        try:
            result = kpi_queries.series(
                kpi, _moment(request, "from"), _moment(request, "to"), grain, _filters(request)
            )
        except QueryError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        response = Response(series_payload(kpi, result, request.user))
        if getattr(request, "accepted_renderer", None) is not None and (
            request.accepted_renderer.format == "csv"
        ):
            name = f"{kpi.key}-{result.grain}-{result.start:%Y%m%d}-{result.end:%Y%m%d}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class KpiRecordsView(APIView):
    """The raw records behind a KPI's figure in a bucket (or any period)."""

    @extend_schema(
        operation_id="kpis_records",
        parameters=[
            *PERIOD_PARAMETERS,
            *FILTER_PARAMETERS,
            OpenApiParameter("limit", int, description="at most this many (default 500)"),
        ],
        responses=RecordsSerializer,
        tags=["kpis"],
    )
    def get(self, request: Request, key: str) -> Response:
        kpi = _kpi(key)
        grain = request.query_params.get("grain") or HOUR
        try:
            limit = max(1, min(int(request.query_params.get("limit") or 500), 5000))
        except ValueError:
            raise ValidationError({"limit": "a number"}) from None
        start = _moment(request, "from")
        end = _moment(request, "to")
        try:
            if start is not None and end is None:  # one bucket: from its start
                end = start + kpi_queries.GRAIN_STEP.get(grain, kpi_queries.GRAIN_STEP[HOUR])
            start, end = kpi_queries.period(start, end, grain, days=1)
            found, truncated = kpi_queries.records(kpi, start, end, _filters(request), limit=limit)
        except QueryError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        masked = kpi.is_money and not kpi_queries.can_see_money(request.user)
        data = {
            "key": kpi.key,
            "start": start,
            "end": end,
            "truncated": truncated,
            "masked": masked,
            "records": [{**vars(r), "value": None if masked else r.value} for r in found],
        }
        return Response(RecordsSerializer(data).data)
