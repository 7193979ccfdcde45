"""REST API of the leadership view: `GET /api/v1/leadership/?from=&to=` (`&format=csv` for
CSV): backlog (as of `to`), billed, earned revenue, project margin and margin variance per
legal entity and currency, and the totals per currency, from the same KPI machinery as the
page (dashboards.leadership). A figure the catalogue does not compute yet says what it
`needs`; amounts of money KPIs are null and `masked` for users without finance or
leadership rights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from . import kpi_queries, leadership
from .kpi_api import CsvRenderer, _moment
from .kpi_queries import QueryError
from .rollups import DAY


class FigureSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="the KPI's key (/api/v1/kpis/{key}/)")
    name = serializers.CharField()
    unit = serializers.CharField()
    defined = serializers.BooleanField(help_text="false: not in the KPI catalogue yet")
    live = serializers.BooleanField(help_text="false: not computed yet, see needs")
    needs = serializers.CharField(help_text="what Throughline must record first (live: empty)")
    as_of_end = serializers.BooleanField(
        help_text="a balance as of the period's end (the others: over the period)"
    )
    masked = serializers.BooleanField(help_text="amounts withheld (finance and leadership only)")


class CellSerializer(serializers.Serializer):
    value = serializers.DecimalField(
        max_digits=None, decimal_places=None, allow_null=True, help_text="in the KPI's unit"
    )
    status = serializers.CharField(
        help_text="against the KPI's thresholds: ok, warning, breach, unrated (it has none), "
        "no_data (nothing in the period, or masked) or needs_data (not computed yet)"
    )


class RowSerializer(serializers.Serializer):
    legal_entity = serializers.CharField(help_text="legal entity code ('' for none or all)")
    name = serializers.CharField()
    currency = serializers.CharField()
    values = serializers.DictField(child=CellSerializer(), help_text="per figure key")


class LeadershipSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    masked = serializers.BooleanField()
    figures = FigureSerializer(many=True)
    rows = RowSerializer(many=True, help_text="one per legal entity and currency")
    totals = RowSerializer(many=True, help_text="all legal entities, one per currency")


class LeadershipCsvRenderer(CsvRenderer):
    """The leadership table as CSV: `?format=csv`."""

    answer_key = "figures"

    def rows(self, data: dict[str, Any]) -> Iterable[list[Any]]:
        return leadership.csv_table(data)


class LeadershipView(APIView):
    """Backlog, billed, earned revenue and margin per legal entity and currency."""

    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, LeadershipCsvRenderer]

    @extend_schema(
        operation_id="leadership_retrieve",
        parameters=[
            OpenApiParameter(
                "from",
                OpenApiTypes.DATETIME,
                description="start (ISO date or date and time, UTC); default: 30 days back",
            ),
            OpenApiParameter(
                "to", OpenApiTypes.DATETIME, description="end (exclusive); default: today's end"
            ),
        ],
        responses=LeadershipSerializer,
        tags=["kpis"],
    )
    def get(self, request: Request) -> Response:
        default_start, default_end = leadership.default_period()
        start, end = _moment(request, "from"), _moment(request, "to")
        if end is not None and start is None:
            start = end - (default_end - default_start)
        try:
            start, end = kpi_queries.period(start or default_start, end or default_end, DAY)
        except QueryError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        result = leadership.build(start, end, sees_money=kpi_queries.can_see_money(request.user))
        response = Response(LeadershipSerializer(leadership.payload(result)).data)
        if getattr(request, "accepted_renderer", None) is not None and (
            request.accepted_renderer.format == "csv"
        ):
            name = f"leadership-{start:%Y%m%d}-{end:%Y%m%d}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
