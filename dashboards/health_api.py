"""REST API of connector health: `GET /api/v1/health/?window=15m|1h|24h`, the figures of the
health page (dashboards.health) as JSON."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import health


class LatencySerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text="milliseconds")
    p95 = serializers.FloatField(allow_null=True, help_text="milliseconds")
    p99 = serializers.FloatField(allow_null=True, help_text="milliseconds")
    avg = serializers.FloatField(allow_null=True, help_text="milliseconds")
    max = serializers.FloatField(allow_null=True, help_text="milliseconds")
    sample_size = serializers.IntegerField(help_text="calls the percentiles were computed over")
    method = serializers.ChoiceField(
        choices=["database", "sample"],
        help_text="database: percentile_cont over every call of the window (PostgreSQL); "
        "sample: the newest calls of the window, in Python (SQLite)",
    )


class RateLimitSerializer(serializers.Serializer):
    remaining = serializers.IntegerField()
    limit = serializers.IntegerField()
    headroom = serializers.FloatField(allow_null=True, help_text="remaining / limit, 0 to 1")
    header = serializers.CharField(help_text="the vendor header it was read from")
    observed_at = serializers.DateTimeField(allow_null=True)
    daily = serializers.BooleanField(help_text="the limit is the vendor's daily API budget")


class ApiBudgetSerializer(serializers.Serializer):
    remaining = serializers.IntegerField()
    max = serializers.IntegerField()
    share_left = serializers.FloatField(allow_null=True, help_text="remaining / max, 0 to 1")
    source = serializers.CharField()
    observed_at = serializers.DateTimeField(allow_null=True)


class WatermarkSerializer(serializers.Serializer):
    stream = serializers.CharField()
    value = serializers.CharField()
    updated_at = serializers.DateTimeField()


class ConnectionHealthSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    vendor = serializers.CharField()
    system = serializers.CharField()
    queue = serializers.CharField(help_text="the Celery queue of the connection's work")
    verdict = serializers.ChoiceField(choices=[health.GREEN, health.AMBER, health.RED])
    reasons = serializers.ListField(child=serializers.CharField())
    calls = serializers.IntegerField(help_text="calls in the window (a bulk call counts once)")
    failed_calls = serializers.IntegerField(
        help_text="connector faults: transient, rate limited, auth, bad response, unclassified"
    )
    refused_calls = serializers.IntegerField(
        help_text="the vendor refused the data (validation, not found, conflict)"
    )
    auth_failures = serializers.IntegerField()
    rate_limited_calls = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True, help_text="failed_calls / calls")
    recent_calls = serializers.IntegerField(help_text="calls in the last minute")
    recent_failed = serializers.IntegerField()
    recent_error_rate = serializers.FloatField(allow_null=True)
    latency = LatencySerializer()
    retried_calls = serializers.IntegerField(help_text="calls that took more than one attempt")
    extra_attempts = serializers.IntegerField(help_text="attempts beyond the first, summed")
    rate_limit = RateLimitSerializer(allow_null=True)
    budget = ApiBudgetSerializer(allow_null=True, help_text="remaining daily API budget")
    circuit = serializers.ChoiceField(
        choices=[health.CLOSED, health.HALF_OPEN, health.OPEN],
        help_text="derived from the latest calls, not read from a breaker",
    )
    last_call_at = serializers.DateTimeField(allow_null=True)
    last_error_kind = serializers.CharField(allow_blank=True)
    last_error = serializers.CharField(allow_blank=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_sync_at = serializers.DateTimeField(allow_null=True)
    watermarks = WatermarkSerializer(many=True)
    backlog = serializers.IntegerField(allow_null=True, help_text="messages in its queue")


class QueueBacklogSerializer(serializers.Serializer):
    name = serializers.CharField()
    backlog = serializers.IntegerField(allow_null=True)
    consumers = serializers.ListField(child=serializers.CharField())
    connection_id = serializers.IntegerField(allow_null=True)
    connection = serializers.CharField(allow_blank=True, help_text="the connection's name")


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())


class WorkerStatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["ok", "down", "stale", "unknown"])
    up = serializers.IntegerField()
    checked_at = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True)
    workers = WorkerSerializer(many=True)
    error = serializers.CharField(allow_blank=True)


class HealthReportSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    window = serializers.ChoiceField(choices=list(health.WINDOWS))
    window_seconds = serializers.IntegerField()
    verdict = serializers.ChoiceField(
        choices=[health.GREEN, health.AMBER, health.RED], help_text="the worst connection's"
    )
    summary = serializers.CharField()
    connections = ConnectionHealthSerializer(many=True)
    queues = QueueBacklogSerializer(many=True)
    broker = serializers.CharField()
    broker_error = serializers.CharField(allow_blank=True)
    outbox_unsent = serializers.IntegerField()
    outbox_oldest_unsent_at = serializers.DateTimeField(allow_null=True)
    workers = WorkerStatusSerializer()
    thresholds = serializers.DictField(child=serializers.FloatField())


class HealthView(APIView):
    """Connector health: per enabled connection, latency percentiles, error rate, retries,
    rate-limit headroom, daily API budget, circuit state, last successful sync and a verdict;
    plus queue backlog, unsent outbox messages and Celery workers."""

    @extend_schema(
        operation_id="health_retrieve",
        parameters=[
            OpenApiParameter(
                "window",
                OpenApiTypes.STR,
                enum=list(health.WINDOWS),
                description="the window of the figures (default 15m)",
            )
        ],
        responses=HealthReportSerializer,
    )
    def get(self, request: Request) -> Response:
        report = health.build_report(health.window_of(request.query_params.get("window")))
        return Response(HealthReportSerializer(report).data)
