"""REST viewsets of the engine: connections (IT admins write), runs and API-call telemetry
(read-only). Filtering reuses the FilterSets of the console pages."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from console.choices import Role, TeamKind
from console.models import User

from ..filtersets import ApiCallFilterSet, ConnectionFilterSet, SyncRunFilterSet
from ..models import ApiCall, Connection, SyncRun
from ..telemetry import calls_of_runs
from .serializers import (
    ApiCallSerializer,
    ConnectionSerializer,
    SyncRunDetailSerializer,
    SyncRunSerializer,
)


def can_manage_connections(user: User) -> bool:
    """Superusers and admins of an IT team create and change connections."""
    return user.is_authenticated and user.acts_for_team_kind(TeamKind.IT, Role.ADMIN)


class CanManageConnectionsOrReadOnly(permissions.BasePermission):
    """Every signed-in user reads connections; only connection managers write."""

    message = "Only superusers and admins of an IT team may create or change connections."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_manage_connections(request.user)


class ConnectionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Connections: list, retrieve, create and PATCH (no delete, no PUT)."""

    queryset = Connection.objects.all()
    serializer_class = ConnectionSerializer
    filterset_class = ConnectionFilterSet
    permission_classes = [permissions.IsAuthenticated, CanManageConnectionsOrReadOnly]
    http_method_names = ["get", "post", "patch", "head", "options"]


class SyncRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Sync runs; the detail adds steps and exception ids, `calls/` the run's API calls."""

    queryset = SyncRun.objects.all()
    serializer_class = SyncRunSerializer
    filterset_class = SyncRunFilterSet

    def get_queryset(self) -> QuerySet[SyncRun]:
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("steps", "exceptions")
        return queryset

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "retrieve":
            return SyncRunDetailSerializer
        return super().get_serializer_class()

    @extend_schema(responses=ApiCallSerializer(many=True))
    @action(detail=True, serializer_class=ApiCallSerializer, filter_backends=[])
    def calls(self, request: Request, pk: str | None = None) -> Response:
        """The API-call telemetry of one run, oldest first."""
        run = self.get_object()
        calls = calls_of_runs([run.pk]).select_related("step").order_by("started_at", "id")
        page = self.paginate_queryset(calls)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ApiCallViewSet(viewsets.ReadOnlyModelViewSet):
    """API-call telemetry of every connection."""

    queryset = ApiCall.objects.select_related("step")
    serializer_class = ApiCallSerializer
    filterset_class = ApiCallFilterSet
