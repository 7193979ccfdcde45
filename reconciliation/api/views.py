"""REST viewsets of reconciliation (the same actions as the pages: reconciliation.actions).

- `definitions/`: list, retrieve, update (PUT/PATCH) the tolerances, what is compared and
  the schedule (finance resolvers, IT admins, superusers; audited);
- `runs/`: list (filter by definition, status...), retrieve, POST to start one (202);
  `runs/{id}/differences/`: the run's differences, filtered like the run page, by cursor,
  most money at risk first; `?format=csv` streams them all as CSV;
- `differences/{id}/`: one difference; POST `resync/`, `open-exception/`, `accept/` on one,
  or on several by ids at `differences/resync/`, `differences/open-exception/`,
  `differences/accept/`;
- `acceptances/`: the accepted differences.

Refusals answer 403 (the role does not allow it), 400 (the request is not valid) or 409 (the
state does not allow it), with the reason in `detail`, like the exception queues' API.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, mixins, permissions, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from exceptions.api.actions import StateConflict, refused
from exceptions.saved_views import normalise_query

from .. import actions, export
from ..filtersets import AcceptanceFilterSet, DifferenceFilterSet, RunFilterSet
from ..models import Acceptance, Definition, Difference, Run
from ..pagination import DifferencePagination
from .serializers import (
    AcceptanceSerializer,
    AcceptRequestSerializer,
    BulkAcceptRequestSerializer,
    DefinitionSerializer,
    DifferenceIdsSerializer,
    DifferenceSerializer,
    OutcomesSerializer,
    RunSerializer,
    StartRunSerializer,
)

PERMISSIONS = [permissions.IsAuthenticated, actions.CanActOrReadOnly]
REFUSALS = {
    400: OpenApiResponse(description="The request is not valid (the reason is in detail)."),
    403: OpenApiResponse(description="Your role does not allow it."),
    409: OpenApiResponse(
        description="The difference's state does not allow it (already accepted, already "
        "has an exception...): the reason is in detail."
    ),
}
DIFFERENCE_RELATED = (
    "run__definition__source",
    "run__definition__target",
    "acceptance__accepted_by",
    "exception",
)


class CSVRenderer(renderers.BaseRenderer):
    """Lets `?format=csv` through content negotiation; the view streams the file itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):  # type: ignore[no-untyped-def]
        return b"" if data is None else str(data).encode()


def _run_actions(work: Any) -> Any:
    try:
        return work()
    except actions.ActionRefused as error:
        raise refused(error) from error


class DefinitionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Reconciliation definitions with their last run and next scheduled run; PUT/PATCH
    changes the tolerances, `compare_status`, `schedule` (crontab, UTC), `full_pull_every`
    and `enabled` (audited)."""

    queryset = Definition.objects.select_related("source", "target", "periodic_task__crontab")
    serializer_class = DefinitionSerializer
    permission_classes = PERMISSIONS
    filter_backends: list[Any] = []
    pagination_class = None

    def perform_update(self, serializer: DefinitionSerializer) -> None:
        definition = Definition.objects.get(pk=serializer.instance.pk)
        changes = {
            name: value
            for name, value in serializer.validated_data.items()
            if name in actions.EDITABLE
        }
        try:
            actions.update_definition(definition, self.request.user, changes)
        except actions.InvalidInput as error:
            raise ValidationError({"detail": str(error)}) from error
        except actions.ActionRefused as error:
            raise refused(error) from error
        serializer.instance = definition


class RunViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Reconciliation runs, newest first; POST starts one (queued: follow its `status`,
    `phase` and records pulled); `{id}/differences/` lists what a run found."""

    queryset = Run.objects.select_related("definition", "requested_by")
    serializer_class = RunSerializer
    permission_classes = PERMISSIONS
    filterset_class = RunFilterSet
    filter_backends = [DjangoFilterBackend]

    @extend_schema(
        request=StartRunSerializer,
        responses={
            202: RunSerializer,
            403: REFUSALS[403],
            409: OpenApiResponse(description="A run of the definition is still in progress."),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start a run of a definition now (incremental unless `full`)."""
        body = StartRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        definition = body.validated_data["definition"]
        full = body.validated_data["full"]
        run = _run_actions(lambda: actions.start_run(definition, request.user, full=full))
        data = RunSerializer(run, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_202_ACCEPTED)


class RunDifferenceListView(generics.ListAPIView):
    """The run's differences, filtered (class, state, legal entity, key), most money at risk
    first, by cursor; `?format=csv` streams the CSV file of all of them (not one page)."""

    serializer_class = DifferenceSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_class = DifferenceFilterSet
    filter_backends = [DjangoFilterBackend]
    pagination_class = DifferencePagination
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer]

    def get_queryset(self) -> QuerySet[Difference]:
        if getattr(self, "swagger_fake_view", False):  # the schema: no run
            return Difference.objects.none()
        return Difference.objects.filter(run_id=self.kwargs["pk"]).select_related(
            *DIFFERENCE_RELATED
        )

    @extend_schema(
        operation_id="reconciliation_runs_differences_list",
        responses={
            (200, "application/json"): DifferenceSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="With ?format=csv: every matching difference, one header row "
                "then a row each; amounts masked without finance rights.",
            ),
            404: OpenApiResponse(description="No such run."),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        run = get_object_or_404(Run.objects.select_related("definition"), pk=kwargs["pk"])
        if request.accepted_renderer.format != CSVRenderer.format:
            return self.list(request, *args, **kwargs)
        return export.audited_csv_response(
            self.filter_queryset(self.get_queryset()),
            request.user,
            run=run,
            query=normalise_query(request.query_params),
            base_url=request.build_absolute_uri("/"),
            through="the API",
        )


def _one(name: str, doc: str, request_serializer: Any = None) -> Any:
    """POST an action on one difference (409 with the reason when it is refused)."""

    def view(self: Any, request: Request, pk: str | None = None) -> Response:
        diff = self.get_object()
        reason = None
        if request_serializer is not None:
            body = request_serializer(data=request.data)
            body.is_valid(raise_exception=True)
            reason = body.validated_data["reason"]
        outcomes = _run_actions(lambda: actions.act(name, [diff], request.user, reason))
        if not outcomes[0].ok:
            raise StateConflict(outcomes[0].message)
        return Response(OutcomesSerializer.of(outcomes))

    view.__name__ = name
    view.__doc__ = doc
    url = name.replace("_", "-")
    # @extend_schema goes on the action (applied before it, the action would drop it)
    return extend_schema(
        request=request_serializer, responses={200: OutcomesSerializer, **REFUSALS}
    )(action(detail=True, methods=["post"], url_path=url, url_name=url)(view))


def _bulk(name: str, doc: str, request_serializer: Any) -> Any:
    """POST an action on several differences by id (each refused one says why)."""

    def view(self: Any, request: Request) -> Response:
        body = request_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = body.validated_data["ids"]
        found = list(self.get_queryset().filter(pk__in=ids))
        missing = sorted(set(ids) - {d.pk for d in found})
        if missing:
            raise ValidationError({"ids": f"No such differences: {missing[:20]}"})
        reason = body.validated_data.get("reason")
        outcomes = _run_actions(lambda: actions.act(name, found, request.user, reason))
        return Response(OutcomesSerializer.of(outcomes))

    view.__name__ = f"bulk_{name}"
    view.__doc__ = doc
    url = name.replace("_", "-")
    return extend_schema(
        operation_id=f"reconciliation_differences_bulk_{name}",
        request=request_serializer,
        responses={200: OutcomesSerializer, **REFUSALS},
    )(action(detail=False, methods=["post"], url_path=url, url_name=f"bulk-{url}")(view))


class DifferenceViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One difference; the actions on it or on several at once."""

    queryset = Difference.objects.select_related(*DIFFERENCE_RELATED)
    serializer_class = DifferenceSerializer
    permission_classes = PERMISSIONS
    filter_backends: list[Any] = []
    pagination_class = None

    resync = _one(
        "resync",
        "Re-sync the record through the comparison's re-syncer (state resync_queued when it "
        "was accepted).",
    )
    open_exception = _one(
        "open_exception",
        "Open an exception in the owning team's queue for the difference (linked both ways).",
    )
    accept = _one(
        "accept",
        "Accept the difference as it is, with the reason (later runs with the same values "
        "count it accepted).",
        AcceptRequestSerializer,
    )
    bulk_resync = _bulk("resync", "Re-sync several differences by id.", DifferenceIdsSerializer)
    bulk_open_exception = _bulk(
        "open_exception", "Open exceptions for several differences by id.", DifferenceIdsSerializer
    )
    bulk_accept = _bulk(
        "accept", "Accept several differences by id, with one reason.", BulkAcceptRequestSerializer
    )


class AcceptanceViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Differences accepted with their reason, newest first."""

    queryset = Acceptance.objects.select_related("definition", "accepted_by")
    serializer_class = AcceptanceSerializer
    permission_classes = PERMISSIONS
    filterset_class = AcceptanceFilterSet
    filter_backends = [DjangoFilterBackend]
