"""REST endpoints for outside systems: the composite services, and the generic inbound event
endpoint. An iPaaS flow or an in-house app hands work here and follows the run it gets back.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console.choices import Role, TeamKind
from console.models import User

from .. import postings_api
from ..inbound import EVENT_TYPES, EventRejected, accept


def is_integration_client(user: User) -> bool:
    """Superusers, and resolvers or admins of an IT team, may hand work to Throughline."""
    return user.is_authenticated and user.acts_for_team_kind(TeamKind.IT, Role.RESOLVER)


class IsIntegrationClient(permissions.BasePermission):
    message = "Only IT resolvers and admins may hand work to Throughline."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_integration_client(request.user)


class InboundEventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=sorted(EVENT_TYPES))
    idempotency_key = serializers.CharField(max_length=200)
    source = serializers.CharField(max_length=120, required=False, default="api")
    data = serializers.JSONField()


AcceptedSerializer = inline_serializer(
    "AcceptedWork",
    {
        "event": serializers.IntegerField(),
        "run": serializers.IntegerField(allow_null=True),
        "run_url": serializers.CharField(allow_null=True),
        "status": serializers.CharField(),
        "duplicate": serializers.BooleanField(),
    },
)


def _accepted(event: Any, created: bool) -> Response:
    run = event.run
    body = {
        "event": event.pk,
        "run": run.pk if run else None,
        "run_url": reverse("integrations-api:syncrun-detail", args=[run.pk]) if run else None,
        "status": run.status if run else event.status,
        "duplicate": not created,
    }
    return Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


def _rejected(exc: EventRejected) -> Response:
    return Response(
        {"detail": str(exc), "problems": exc.problems}, status=status.HTTP_400_BAD_REQUEST
    )


class InboundEventView(APIView):
    """POST a canonical event: `{"type", "idempotency_key", "source", "data"}`."""

    permission_classes = [IsIntegrationClient]

    @extend_schema(
        request=InboundEventSerializer,
        responses={
            202: AcceptedSerializer,
            200: OpenApiResponse(AcceptedSerializer, description="a repeat of an earlier key"),
            400: OpenApiResponse(description="the event is not valid; `problems` says why"),
        },
    )
    def post(self, request: Request) -> Response:
        form = InboundEventSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            event, created = accept(
                form.validated_data["type"],
                form.validated_data["data"],
                source=form.validated_data["source"],
                idempotency_key=form.validated_data["idempotency_key"],
            )
        except EventRejected as exc:
            return _rejected(exc)
        return _accepted(event, created)


class CompositeServiceView(APIView):
    """A composite service as an endpoint: the request is validated by `serializer`, then
    handed over as the inbound event `event_type` under an idempotency key made from it, so
    a repeat returns the first outcome."""

    permission_classes = [IsIntegrationClient]
    serializer: type[serializers.Serializer]
    event_type: str

    def idempotency_key(self, data: dict[str, Any]) -> str:
        raise NotImplementedError

    def post(self, request: Request) -> Response:
        form = self.serializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        try:
            event, created = accept(
                self.event_type,
                data,
                source=f"api:{request.user.get_username()}",
                idempotency_key=self.idempotency_key(data),
            )
        except EventRejected as exc:
            return _rejected(exc)
        return _accepted(event, created)


class CreateServiceEngagementSerializer(serializers.Serializer):
    opportunity_id = serializers.CharField(max_length=40)
    crm_connection = serializers.IntegerField(required=False, allow_null=True)


@extend_schema_view(
    post=extend_schema(
        request=CreateServiceEngagementSerializer,
        responses={202: AcceptedSerializer, 200: AcceptedSerializer},
    )
)
class CreateServiceEngagementView(CompositeServiceView):
    """The create-service-engagement composite service: ERP customer, PSA project and the ids
    written back to the deal. Idempotent per deal: a repeat returns the same run."""

    serializer = CreateServiceEngagementSerializer
    event_type = "opportunity.closed_won"

    def idempotency_key(self, data: dict[str, Any]) -> str:
        return f"create-service-engagement:{data['opportunity_id']}"


class UpdateBillingPlanSerializer(serializers.Serializer):
    amendment_id = serializers.CharField(max_length=40)
    opportunity_id = serializers.CharField(max_length=40, required=False, default="")
    crm_connection = serializers.IntegerField(required=False, allow_null=True)


@extend_schema_view(
    post=extend_schema(
        request=UpdateBillingPlanSerializer,
        responses={202: AcceptedSerializer, 200: AcceptedSerializer},
    )
)
class UpdateBillingPlanView(CompositeServiceView):
    """The update-billing-plan composite service for an approved contract amendment: PSA
    budget and milestones, ERP billing plan and revenue schedule. Idempotent per amendment."""

    serializer = UpdateBillingPlanSerializer
    event_type = "contract_amendment.approved"

    def idempotency_key(self, data: dict[str, Any]) -> str:
        return f"update-billing-plan:{data['amendment_id']}"


class ReleaseMilestoneBillingSerializer(serializers.Serializer):
    psa_connection = serializers.IntegerField()
    story_id = serializers.CharField(max_length=40)


@extend_schema_view(
    post=extend_schema(
        request=ReleaseMilestoneBillingSerializer,
        responses={202: AcceptedSerializer, 200: AcceptedSerializer},
    )
)
class ReleaseMilestoneBillingView(CompositeServiceView):
    """The release-milestone-billing composite service for a completed milestone: the
    event fans out (invoice, analytics, notifications); follow the billing run under
    /api/v1/runs/?correlation_id=milestone:<psa connection>:<story id>."""

    serializer = ReleaseMilestoneBillingSerializer
    event_type = "milestone.completed"

    def idempotency_key(self, data: dict[str, Any]) -> str:
        return f"release-milestone-billing:{data['psa_connection']}:{data['story_id']}"


class PostTimeAndExpenseSerializer(serializers.Serializer):
    psa_connection = serializers.IntegerField()


class PsaJobView(APIView):
    """Run one of the PSA's scheduled jobs now for a PSA connection (audited)."""

    permission_classes = [IsIntegrationClient]
    job: Any  # (psa connection, requested_by=user) -> None, from integrations.postings_api

    def post(self, request: Request) -> Response:
        from ..models import Connection

        form = PostTimeAndExpenseSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        psa = Connection.objects.filter(
            pk=form.validated_data["psa_connection"], system="psa", enabled=True
        ).first()
        if psa is None:
            return Response(
                {"detail": "no enabled PSA connection with this id"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        self.job(psa, requested_by=request.user)
        return Response({"status": "queued", "psa_connection": psa.pk}, status=202)


@extend_schema_view(
    post=extend_schema(
        request=PostTimeAndExpenseSerializer,
        responses={202: OpenApiResponse(description="collection queued")},
    )
)
class PostTimeAndExpenseView(PsaJobView):
    """The post-time-and-expense composite service: read the PSA's approved time and
    expenses now (instead of at the next scheduled minute) and post them in batches; follow
    the batches in the admin (Posting batches) or the run telemetry."""

    job = staticmethod(postings_api.queue_collection)


@extend_schema_view(
    post=extend_schema(
        request=PostTimeAndExpenseSerializer,
        responses={202: OpenApiResponse(description="synchronization queued")},
    )
)
class SynchronizeResourceAssignmentView(PsaJobView):
    """The synchronize-resource-assignment composite service: the PSA's assignments to the
    ERP's project resource allocations now (instead of at the next five-minute run)."""

    job = staticmethod(postings_api.queue_assignment_sync)
