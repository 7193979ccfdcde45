"""REST API of the exception actions, calling the same functions as the console's pages:

- `ExceptionActionsMixin` adds to /api/v1/exceptions/{id}/: `preflight/` (GET), `restart/`,
  `assign/`, `unassign/`, `take/`, `start/`, `ignore/`, `reopen/`, `resolve/` (POST),
  `comments/` and `payload-edits/` (GET the list, POST a new one);
- `PayloadEditViewSet`: /api/v1/payload-edits/ and its `approve/` and `reject/`;
- `BulkActionViewSet`: /api/v1/bulk-actions/ (POST starts one and answers 202 at once with
  its id; GET follows its progress) and `preview/` (how many it would touch).

Refusals answer 403 (the role does not allow it), 400 (the request is not valid) or 409
(the exception's state does not allow it now), with the reason in `detail`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from console.models import User

from .. import actions, bulk, lifecycle, payload_edits, preflight
from ..actions import ActionRefused, ActionResult, InvalidInput, NotAllowed
from ..choices import PayloadEditStatus
from ..models import BulkAction, IntegrationException, PayloadEdit
from .action_serializers import (
    ActionResultSerializer,
    AssignRequestSerializer,
    BulkActionRequestSerializer,
    BulkActionSerializer,
    BulkPreviewSerializer,
    CommentSerializer,
    IgnoreRequestSerializer,
    PayloadEditRequestSerializer,
    PayloadEditSerializer,
    PreflightSerializer,
    ResolveRequestSerializer,
)


class StateConflict(APIException):
    """The exception's state does not allow the action now."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The exception's state does not allow this action."
    default_code = "conflict"


def refused(error: ActionRefused) -> APIException:
    """An action's refusal as the API's answer: 403, 400 or 409."""
    if isinstance(error, NotAllowed):
        return PermissionDenied(str(error))
    if isinstance(error, InvalidInput):
        return ValidationError({"detail": str(error)})
    return StateConflict(str(error))


def _do(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except ActionRefused as error:
        raise refused(error) from error


REFUSALS = {
    400: OpenApiResponse(description="The request is not valid (the reason is in detail)."),
    403: OpenApiResponse(description="Your role does not allow it."),
    409: OpenApiResponse(description="The exception's state does not allow it now."),
}


def _result(exc: IntegrationException, result: ActionResult) -> Response:
    exc.refresh_from_db()
    body = ActionResultSerializer(
        {
            "status": exc.status,
            "assignee": exc.assignee.get_username() if exc.assignee else None,
            "message": result.message,
        }
    ).data
    return Response(body)


def _simple(name: str, doc: str, work: Callable[[IntegrationException, User], ActionResult]) -> Any:
    """A POST action without a body (take, unassign, start, reopen)."""

    @extend_schema(request=None, responses={200: ActionResultSerializer, **REFUSALS})
    def view(self: Any, request: Request, pk: str | None = None) -> Response:
        exc = self.get_object()
        return _result(exc, _do(lambda: work(exc, request.user)))

    view.__name__ = name
    view.__doc__ = doc
    return action(detail=True, methods=["post"], filter_backends=[])(view)


class ExceptionActionsMixin:
    """The actions on one exception (mixed into IntegrationExceptionViewSet)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "mode", OpenApiTypes.STR, enum=list(preflight.MODES), default=preflight.RETRY
            )
        ],
        responses={200: PreflightSerializer},
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def preflight(self, request: Request, pk: str | None = None) -> Response:
        """Before a retry (or restart): may it run, was the record created after all (looked
        up in each target system), and what will the next attempt send."""
        exc = self.get_object()
        mode = request.query_params.get("mode", preflight.RETRY)
        if mode not in preflight.MODES:
            raise ValidationError({"mode": f"one of {', '.join(preflight.MODES)}"})
        report = preflight.check(exc, request.user, mode)
        data = {
            "mode": report.mode,
            "allowed": report.allowed,
            "refusal": report.refusal,
            "plan": report.plan,
            "records": report.records,
            "lookups": report.lookups,
            "lookup_note": report.lookup_note,
            "previews": report.previews,
            "problems": report.problems,
        }
        return Response(PreflightSerializer(data).data)

    @extend_schema(request=None, responses={202: ActionResultSerializer, **REFUSALS})
    @action(detail=True, methods=["post"], filter_backends=[])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        """Run the whole workflow again from its first step (with the current mapping)."""
        exc = self.get_object()
        response = _result(exc, _do(lambda: actions.restart(exc, request.user)))
        response.status_code = status.HTTP_202_ACCEPTED
        return response

    @extend_schema(
        request=AssignRequestSerializer, responses={200: ActionResultSerializer, **REFUSALS}
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Assign to a resolver of the queue's team (routing rules never change it)."""
        exc = self.get_object()
        body = AssignRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        assignee = User.objects.filter(username=body.validated_data["assignee"]).first()
        if assignee is None:
            raise ValidationError({"assignee": "No such user."})
        return _result(exc, _do(lambda: lifecycle.assign(exc, request.user, assignee)))

    take = _simple("take", "Assign to yourself.", lifecycle.take)
    unassign = _simple("unassign", "Leave it with nobody, on purpose.", lifecycle.unassign)
    start = _simple("start", "Mark it in progress (and yours, when unassigned).", lifecycle.start)
    reopen = _simple("reopen", "Open an ignored or resolved exception again.", lifecycle.reopen)

    @extend_schema(
        request=IgnoreRequestSerializer, responses={200: ActionResultSerializer, **REFUSALS}
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def ignore(self, request: Request, pk: str | None = None) -> Response:
        """Ignore it, with a reason: for good, until a time, or until it happens again."""
        exc = self.get_object()
        body = IgnoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        return _result(
            exc,
            _do(
                lambda: lifecycle.ignore(
                    exc,
                    request.user,
                    data["reason"],
                    until=data.get("until"),
                    until_it_happens_again=data["until_it_happens_again"],
                )
            ),
        )

    @extend_schema(
        request=ResolveRequestSerializer, responses={200: ActionResultSerializer, **REFUSALS}
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Resolve by hand, with a note saying how."""
        exc = self.get_object()
        body = ResolveRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = body.validated_data["note"]
        return _result(exc, _do(lambda: lifecycle.resolve(exc, request.user, note)))

    @extend_schema(methods=["GET"], request=None, responses={200: CommentSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=CommentSerializer,
        responses={201: CommentSerializer, **REFUSALS},
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def comments(self, request: Request, pk: str | None = None) -> Response:
        """The comment thread (GET), or a new comment (POST)."""
        exc = self.get_object()
        if request.method == "GET":
            rows = exc.comments.select_related("author")
            return Response(CommentSerializer(rows, many=True).data)
        body = CommentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = _do(lambda: lifecycle.comment(exc, request.user, body.validated_data["body"]))
        return Response(CommentSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], request=None, responses={200: PayloadEditSerializer(many=True)})
    @extend_schema(
        methods=["POST"],
        request=PayloadEditRequestSerializer,
        responses={201: PayloadEditSerializer, **REFUSALS},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="payload-edits",
        filter_backends=[],
        pagination_class=None,
    )
    def payload_edits(self, request: Request, pk: str | None = None) -> Response:
        """The payload's edits (GET), or a new edit (POST): applied and replayed at once, or,
        when it touches financial fields, waiting for a second person's approval."""
        exc = self.get_object()
        context = {"request": request}
        if request.method == "GET":
            rows = exc.payload_edits.select_related("author", "decided_by")
            return Response(PayloadEditSerializer(rows, many=True, context=context).data)
        body = PayloadEditRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        edit = _do(lambda: payload_edits.propose(exc, request.user, body.validated_data["payload"]))
        return Response(
            PayloadEditSerializer(edit, context=context).data, status=status.HTTP_201_CREATED
        )


class PayloadEditFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=PayloadEditStatus.choices)

    class Meta:
        model = PayloadEdit
        fields = ["exception", "status"]


class PayloadEditViewSet(viewsets.ReadOnlyModelViewSet):
    """Payload edits of every exception (filter `status=pending` for those waiting for
    approval); POST `approve/` (a second resolver: applies and replays) or `reject/`."""

    queryset = PayloadEdit.objects.select_related(
        "author", "decided_by", "exception__queue__team", "exception__run"
    ).order_by("-created_at", "-id")
    serializer_class = PayloadEditSerializer
    filterset_class = PayloadEditFilterSet
    filter_backends = [DjangoFilterBackend]

    def _decide(self, work: Callable[[PayloadEdit, User], ActionResult]) -> Response:
        edit = self.get_object()
        _do(lambda: work(edit, self.request.user))
        edit.refresh_from_db()
        return Response(PayloadEditSerializer(edit, context={"request": self.request}).data)

    @extend_schema(request=None, responses={200: PayloadEditSerializer, **REFUSALS})
    @action(detail=True, methods=["post"], filter_backends=[])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve someone else's edit: it is applied and the workflow replayed."""
        return self._decide(payload_edits.approve)

    @extend_schema(request=None, responses={200: PayloadEditSerializer, **REFUSALS})
    @action(detail=True, methods=["post"], filter_backends=[])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Reject an edit waiting for approval (its author may withdraw it)."""
        return self._decide(payload_edits.reject)


class BulkActionViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Bulk retry, resolve, assign or ignore over the exceptions a filter selects. POST
    answers 202 at once with the action's id: a worker runs it in chunks; GET it to follow
    its progress."""

    queryset = BulkAction.objects.select_related("created_by").order_by("-created_at", "-id")
    serializer_class = BulkActionSerializer
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[BulkAction]:
        if self.request.query_params.get("mine") in ("1", "true"):
            return self.queryset.filter(created_by=self.request.user)
        return self.queryset

    @extend_schema(
        request=BulkActionRequestSerializer,
        responses={202: BulkActionSerializer, 400: REFUSALS[400]},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = BulkActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        created = _do(
            lambda: bulk.create(data["kind"], data["query"], data["params"], request.user)
        )
        return Response(BulkActionSerializer(created).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=BulkActionRequestSerializer, responses={200: BulkPreviewSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """How many exceptions the action would touch, and how many you may act on."""
        body = BulkActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        counts = _do(lambda: bulk.preview(data["kind"], data["query"], request.user))
        return Response(BulkPreviewSerializer(counts).data)
