"""`GET /api/v1/exceptions/export.csv`: the exception list's filters, as a streamed CSV file
(the same columns and masking as the queue page's export)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from console import audit

from ..export import csv_response, export_filename
from ..filtersets import IntegrationExceptionFilterSet
from ..models import IntegrationException
from ..saved_views import normalise_query


class ExceptionExportView(GenericAPIView):
    """Every exception matching the filters, newest activity first, as CSV."""

    queryset = IntegrationException.objects.all()
    filterset_class = IntegrationExceptionFilterSet
    filter_backends = [DjangoFilterBackend]
    pagination_class = None

    @extend_schema(
        operation_id="exceptions_export_csv",
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="One header row (business column names), then one row per "
                "exception; amounts masked for users without finance rights.",
            ),
            400: OpenApiResponse(description="A filter value is not valid."),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        """Export the filtered exceptions as a CSV file (streamed)."""
        queryset = self.filter_queryset(self.get_queryset())
        query = normalise_query(request.query_params)
        audit.record(
            "exception.exported",
            f"CSV export through the API: {query or 'no filters'}",
            actor=request.user,
            query=query,
        )
        return csv_response(
            queryset,
            request.user,
            filename=export_filename(request.query_params.get("queue") or "all"),
            base_url=request.build_absolute_uri("/"),
        )
