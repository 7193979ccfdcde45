"""REST viewsets of the exception queues: read-only exceptions and queues, and the retry
action (the same exceptions.actions.retry the console's button calls)."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from .. import actions
from ..filtersets import IntegrationExceptionFilterSet
from ..models import IntegrationException, Queue
from ..pagination import ExceptionKeysetPagination
from ..queue_counts import with_counts
from .actions import ExceptionActionsMixin
from .serializers import IntegrationExceptionSerializer, QueueSerializer, RetryResultSerializer


class Conflict(APIException):
    """The exception's state forbids the action (already resolved, run already queued)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The exception's state does not allow this action."
    default_code = "conflict"


class IntegrationExceptionViewSet(ExceptionActionsMixin, viewsets.ReadOnlyModelViewSet):
    """Exceptions of every queue, newest activity first, filtered like the queue pages and
    paged by cursor (follow `next`); POST `retry/` re-runs the failed step."""

    queryset = IntegrationException.objects.select_related(
        "queue__team", "run", "resolved_by", "assignee"
    )
    serializer_class = IntegrationExceptionSerializer
    filterset_class = IntegrationExceptionFilterSet
    # keyset pages in one fixed, indexed order (exceptions.pagination): no ?ordering=
    filter_backends = [DjangoFilterBackend]
    pagination_class = ExceptionKeysetPagination

    @extend_schema(
        request=None,
        responses={
            202: RetryResultSerializer,
            403: OpenApiResponse(description="You may not act on this exception's queue."),
            409: OpenApiResponse(description="Already resolved, or its run is already queued."),
        },
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Re-run the failed step (and the rest of the workflow after it)."""
        exc = self.get_object()
        if not actions.can_act(request.user, exc):
            raise PermissionDenied(
                f"Only members of {exc.queue.team} with a resolver role can retry."
            )
        try:
            result = actions.retry(exc, request.user)
        except actions.ActionRefused as refused:
            raise Conflict(str(refused)) from refused
        body = RetryResultSerializer({"status": exc.status, "message": result.message}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


class QueueViewSet(viewsets.ReadOnlyModelViewSet):
    """Queues with their active and SLA-breached counts (as on the queue list page)."""

    queryset = Queue.objects.select_related("team")
    serializer_class = QueueSerializer
    lookup_field = "slug"

    def get_serializer(self, *args: Any, **kwargs: Any) -> BaseSerializer:
        # the counts of the queues answered, in one grouped count over the active work only
        # (exceptions.queue_counts), not a join of each queue with every exception
        if args and args[0] is not None:
            with_counts(args[0] if kwargs.get("many") else [args[0]])
        return super().get_serializer(*args, **kwargs)
