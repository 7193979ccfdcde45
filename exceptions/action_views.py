"""Console pages and form posts of the exception actions: the lifecycle (assign, take, start,
ignore, reopen, resolve, comment), retry or restart through the pre-flight check, payload
edits with their diff and approval, and bulk actions with their confirmation and progress.

Each post goes through exceptions.lifecycle / actions / payload_edits / bulk (the REST API
calls the same functions) and comes back to the page with a message in plain words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from . import actions, bulk, lifecycle, payload_edits, preflight
from .action_forms import (
    UNTIL_REPEAT,
    AssignForm,
    BulkParamsForm,
    CommentForm,
    IgnoreForm,
    PayloadForm,
    ResolveForm,
)
from .actions import ActionRefused, ActionResult, InvalidInput
from .choices import BulkKind, BulkStatus, PayloadEditStatus
from .models import BulkAction, IntegrationException, PayloadEdit, Queue


def _exceptions() -> QuerySet[IntegrationException]:
    return IntegrationException.objects.select_related(
        "queue__team", "run", "step", "connection", "assignee"
    )


def _form_errors(form: Any) -> str:
    return " ".join(f"{error}" for errors in form.errors.values() for error in errors)


def _valid(form: Any) -> Any:
    if not form.is_valid():
        raise InvalidInput(_form_errors(form))
    return form.cleaned_data


def _assign(request: HttpRequest, exc: IntegrationException) -> ActionResult:
    data = _valid(AssignForm(request.POST, team=exc.queue.team))
    return lifecycle.assign(exc, request.user, data["assignee"])


def _ignore(request: HttpRequest, exc: IntegrationException) -> ActionResult:
    data = _valid(IgnoreForm(request.POST))
    return lifecycle.ignore(
        exc,
        request.user,
        data["reason"],
        until=data["until"],
        until_it_happens_again=data["mode"] == UNTIL_REPEAT,
    )


def _resolve(request: HttpRequest, exc: IntegrationException) -> ActionResult:
    return lifecycle.resolve(exc, request.user, _valid(ResolveForm(request.POST))["note"])


ACTIONS: dict[str, Callable[[HttpRequest, IntegrationException], ActionResult]] = {
    "assign": _assign,
    "take": lambda request, exc: lifecycle.take(exc, request.user),
    "unassign": lambda request, exc: lifecycle.unassign(exc, request.user),
    "start": lambda request, exc: lifecycle.start(exc, request.user),
    "ignore": _ignore,
    "reopen": lambda request, exc: lifecycle.reopen(exc, request.user),
    "resolve": _resolve,
}


def _back_to(exc: IntegrationException, anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(exc.get_absolute_url() + (f"#{anchor}" if anchor else ""))


@require_POST
@login_required
def act(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """One lifecycle action on one exception (form post), then back to its page."""
    exc = get_object_or_404(_exceptions(), pk=pk)
    handler = ACTIONS.get(action)
    if handler is None:
        messages.error(request, f"Unknown action {action!r}.")
        return _back_to(exc)
    try:
        result = handler(request, exc)
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, result.message)
    return _back_to(exc, "actions")


@require_POST
@login_required
def comment(request: HttpRequest, pk: int) -> HttpResponse:
    exc = get_object_or_404(_exceptions(), pk=pk)
    try:
        lifecycle.comment(exc, request.user, _valid(CommentForm(request.POST))["body"])
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, "Comment added.")
    return _back_to(exc, "comments")


@require_http_methods(["GET", "POST"])
@login_required
def replay(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the pre-flight check of a retry (or, with mode=restart, a restart). POST: do it."""
    exc = get_object_or_404(_exceptions(), pk=pk)
    source = request.POST if request.method == "POST" else request.GET
    mode = source.get("mode", preflight.RETRY)
    if mode not in preflight.MODES:
        mode = preflight.RETRY
    if request.method == "POST":
        perform = actions.restart if mode == preflight.RESTART else actions.retry
        try:
            result = perform(exc, request.user)
        except ActionRefused as refused:
            messages.error(request, str(refused))
        else:
            level = messages.SUCCESS if result.ok else messages.WARNING
            messages.add_message(request, level, result.message)
        return _back_to(exc)
    report = preflight.check(exc, request.user, mode)
    return render(request, "exceptions/replay.html", {"exc": exc, "report": report})


@require_http_methods(["GET", "POST"])
@login_required
def payload(request: HttpRequest, pk: int) -> HttpResponse:
    """The payload editor: GET the JSON; POST `review` shows the diff; POST `save` records the
    edit (applied and replayed at once, or waiting for a second person's approval)."""
    exc = get_object_or_404(_exceptions(), pk=pk)
    user = request.user
    refusal = payload_edits.why_not_editable(exc, user)
    shown = payload_edits.for_editor(exc.payload, user)
    form = PayloadForm(
        request.POST or None,
        initial={"payload": json.dumps(shown, indent=2, ensure_ascii=False, default=str)},
    )
    context: dict[str, Any] = {
        "exc": exc,
        "form": form,
        "refusal": refusal,
        "fields": [
            (path, payload_edits.is_financial(path)) for path in payload_edits.editable_fields(exc)
        ],
        "finance_rights": payload_edits.has_finance_rights(user),
    }
    if request.method == "POST" and not refusal and form.is_valid():
        text = form.cleaned_data["payload"]
        try:
            if request.POST.get("step") == "save":
                edit = payload_edits.propose(exc, user, text)
                _say_edit(request, exc, edit)
                return _back_to(exc, "payload-edits")
            context["review"] = payload_edits.review(exc, user, text)
            context["review_changes"] = [
                {**c.as_dict(), "financial": payload_edits.is_financial(c.path)}
                for c in context["review"].changes
            ]
        except ActionRefused as refused:
            context["error"] = str(refused)
    return render(request, "exceptions/payload_edit.html", context)


def _say_edit(request: HttpRequest, exc: IntegrationException, edit: PayloadEdit) -> None:
    if edit.status == PayloadEditStatus.PENDING:
        messages.info(
            request,
            f"Edit #{edit.pk} saved. It changes financial fields, so another resolver of "
            f"{exc.queue.team} must approve it before it is replayed.",
        )
        return
    result = actions.outcome(exc, "Edit applied and replayed", "Edit applied, replay queued")
    messages.add_message(
        request, messages.SUCCESS if result.ok else messages.WARNING, result.message
    )


@require_POST
@login_required
def decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    """Approve (and replay) or reject a payload edit waiting for approval."""
    edit = get_object_or_404(
        PayloadEdit.objects.select_related("exception__queue__team", "exception__run"), pk=pk
    )
    try:
        if decision == "approve":
            result = payload_edits.approve(edit, request.user)
        elif decision == "reject":
            result = payload_edits.reject(edit, request.user)
        else:
            raise InvalidInput(f"Unknown decision {decision!r}.")
    except ActionRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.add_message(
            request, messages.SUCCESS if result.ok else messages.WARNING, result.message
        )
    return _back_to(edit.exception, "payload-edits")


# -- bulk -----------------------------------------------------------------------------------


def _bulk_query(source: QueryDict) -> tuple[dict[str, Any], Queue | None]:
    """The filter of a bulk action: the queue page's query string plus its queue."""
    query = bulk.query_from(QueryDict(source.get("query", "")))
    queue = None
    slug = source.get("queue", "")
    if slug:
        queue = get_object_or_404(Queue.objects.select_related("team"), slug=slug)
        query["queue"] = queue.slug
    return query, queue


@require_http_methods(["GET", "POST"])
@login_required
def bulk_new(request: HttpRequest) -> HttpResponse:
    """The confirmation step of a bulk action: how many exceptions it touches (and how many
    of them the user may act on), what it needs; POST saves it and enqueues it."""
    source = request.POST if request.method == "POST" else request.GET
    query, queue = _bulk_query(source)
    team = queue.team if queue is not None else None
    kind = source.get("kind") or BulkKind.RETRY
    if request.method == "POST":
        form = BulkParamsForm(request.POST, team=team)
    else:
        form = BulkParamsForm(initial={"kind": kind}, team=team)
    if kind not in BulkKind.values:
        kind = BulkKind.RETRY
    context: dict[str, Any] = {
        "form": form,
        "kind": kind,
        "kind_label": BulkKind(kind).label,
        "queue": queue,
        "query": source.get("query", ""),
        "back_url": (queue.get_absolute_url() if queue else reverse("exceptions:queues"))
        + (f"?{source.get('query')}" if source.get("query") else ""),
    }
    try:
        context["preview"] = bulk.preview(kind, query, request.user)
    except ActionRefused as refused:
        context["error"] = str(refused)
    if request.method == "POST" and "error" not in context:
        if form.is_valid():
            try:
                action = bulk.create(kind, query, form.params(), request.user)
            except ActionRefused as refused:
                context["error"] = str(refused)
            else:
                messages.info(
                    request,
                    f"Bulk {action.get_kind_display().lower()} of {action.total} exceptions "
                    "started; this page shows its progress.",
                )
                return HttpResponseRedirect(reverse("exceptions:bulk", args=[action.pk]))
        else:
            context["error"] = _form_errors(form)
    return render(request, "exceptions/bulk_new.html", context)


@login_required
def bulk_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A bulk action's progress (refreshes itself while it runs) and outcome."""
    action = get_object_or_404(BulkAction.objects.select_related("created_by"), pk=pk)
    running = action.status in (BulkStatus.QUEUED, BulkStatus.RUNNING)
    return render(
        request,
        "exceptions/bulk_detail.html",
        {
            "action": action,
            "params": bulk.public_params(action),
            "running": running,
            "api_url": reverse("exceptions-api:bulkaction-detail", args=[action.pk]),
        },
    )
