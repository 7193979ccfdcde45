"""REST endpoints for outside systems: the composite services, and the generic inbound event
endpoint. An iPaaS flow or an in-house app hands work here and follows the run it gets back.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from console.choices import Role, TeamKind
from console.models import Team, User

from ..inbound import EVENT_TYPES, EventRejected, accept


def is_integration_client(user: User) -> bool:
    """Superusers, and resolvers or admins of an IT team, may hand work to Throughline."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    teams = Team.objects.filter(kind=TeamKind.IT, memberships__user=user)
    return any(user.can_act_for(team, minimum=Role.RESOLVER) for team in teams)


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


class CreateServiceEngagementSerializer(serializers.Serializer):
    opportunity_id = serializers.CharField(max_length=40)
    crm_connection = serializers.IntegerField(required=False, allow_null=True)


class CreateServiceEngagementView(APIView):
    """The create-service-engagement composite service: ERP customer, PSA project and the ids
    written back to the deal. Idempotent per deal: a repeat returns the same run."""

    permission_classes = [IsIntegrationClient]

    @extend_schema(
        request=CreateServiceEngagementSerializer,
        responses={202: AcceptedSerializer, 200: AcceptedSerializer},
    )
    def post(self, request: Request) -> Response:
        form = CreateServiceEngagementSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            event, created = accept(
                "opportunity.closed_won",
                {
                    "opportunity_id": data["opportunity_id"],
                    "crm_connection": data.get("crm_connection"),
                },
                source=f"api:{request.user.get_username()}",
                idempotency_key=f"create-service-engagement:{data['opportunity_id']}",
            )
        except EventRejected as exc:
            return _rejected(exc)
        return _accepted(event, created)
