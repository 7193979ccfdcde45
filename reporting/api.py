"""REST API of the reporting extracts (mounted under /api/v1/extracts/ by reporting.urls):

- `GET /api/v1/extracts/`: every extract with its schedule, watermark, last run and next run;
- `POST /api/v1/extracts/`: create one (IT admins; its PeriodicTask is created with it);
- `GET /api/v1/extracts/{id}/`: one extract;
- `POST /api/v1/extracts/{id}/run/`: run it now (IT admins; queued, answers 202).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from . import schedules, services
from .extracts import parquet_available
from .models import Extract, ExtractRun
from .permissions import CanManageExtractsOrReadOnly


class ExtractRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExtractRun
        fields = [
            "id",
            "status",
            "started_at",
            "finished_at",
            "rows",
            "file_path",
            "bytes",
            "watermark_from",
            "watermark_to",
            "error",
            "triggered_by",
        ]


class ExtractSerializer(serializers.ModelSerializer):
    folder = serializers.SerializerMethodField(help_text="absolute folder the files go to")
    last_run = serializers.SerializerMethodField()
    next_run = serializers.SerializerMethodField(help_text="null: disabled")
    periodic_task = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Extract
        fields = [
            "id",
            "name",
            "dataset",
            "format",
            "destination",
            "folder",
            "schedule",
            "enabled",
            "watermark_at",
            "watermark_id",
            "periodic_task",
            "last_run",
            "next_run",
        ]
        read_only_fields = ["watermark_at", "watermark_id"]

    def get_folder(self, obj: Extract) -> str:
        return str(obj.folder)

    @extend_schema_field(ExtractRunSerializer(allow_null=True))
    def get_last_run(self, obj: Extract) -> dict[str, Any] | None:
        run = obj.runs.first()
        return ExtractRunSerializer(run).data if run else None

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_next_run(self, obj: Extract) -> str | None:
        when = schedules.next_run(obj)
        return when.isoformat() if when else None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = Extract(**attrs)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        if attrs.get("format") == Extract.Format.PARQUET and not parquet_available():
            raise serializers.ValidationError({"format": "Parquet needs pyarrow: use CSV."})
        return attrs


class ExtractViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Reporting extracts: list, retrieve, create; `run/` runs one now."""

    queryset = Extract.objects.select_related("periodic_task__crontab")
    serializer_class = ExtractSerializer
    permission_classes = [permissions.IsAuthenticated, CanManageExtractsOrReadOnly]
    filter_backends: list[Any] = []
    pagination_class = None

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = services.create_extract(
            self.request.user, **serializer.validated_data
        )

    @extend_schema(request=None, responses={202: ExtractSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Run the extract now (queued; the result shows as its last run)."""
        extract = self.get_object()
        services.request_run(extract, request.user)
        extract.refresh_from_db()
        return Response(self.get_serializer(extract).data, status=status.HTTP_202_ACCEPTED)
