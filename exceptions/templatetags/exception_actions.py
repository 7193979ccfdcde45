"""The detail page's action panels, as inclusion tags so the page's view stays as it is:
`{% load exception_actions %}` then `{% exception_retry exc %}`, `{% exception_actions exc %}`,
`{% exception_payload_edits exc %}` and `{% exception_comments exc %}`."""

from __future__ import annotations

from typing import Any

from django import template

from exceptions import ignoring, payload_edits
from exceptions.action_forms import AssignForm, CommentForm, IgnoreForm, ResolveForm
from exceptions.actions import can_act
from exceptions.choices import PayloadEditStatus
from exceptions.models import IntegrationException

register = template.Library()


def _base(context: template.Context, exc: IntegrationException) -> dict[str, Any]:
    request = context["request"]
    return {
        "exc": exc,
        "request": request,
        "user": request.user,
        "csrf_token": context.get("csrf_token"),
        "user_can_act": can_act(request.user, exc),
    }


@register.inclusion_tag("exceptions/_retry_links.html", takes_context=True)
def exception_retry(context: template.Context, exc: IntegrationException) -> dict[str, Any]:
    """Retry and restart, each through its pre-flight check."""
    return _base(context, exc)


@register.inclusion_tag("exceptions/_actions.html", takes_context=True)
def exception_actions(context: template.Context, exc: IntegrationException) -> dict[str, Any]:
    """Assign, take, start, ignore, reopen, resolve, edit the payload."""
    data = _base(context, exc)
    user = data["user"]
    data.update(
        ignored=ignoring.describe(exc),
        payload_refusal=payload_edits.why_not_editable(exc, user),
    )
    if data["user_can_act"]:
        data.update(
            assign_form=AssignForm(team=exc.queue.team, auto_id="assign_%s"),
            ignore_form=IgnoreForm(auto_id="ignore_%s"),
            resolve_form=ResolveForm(auto_id="resolve_%s"),
            is_mine=exc.assignee_id == user.pk,
        )
    return data


@register.inclusion_tag("exceptions/_payload_edits.html", takes_context=True)
def exception_payload_edits(context: template.Context, exc: IntegrationException) -> dict[str, Any]:
    """The history of payload edits, and the ones waiting for approval."""
    data = _base(context, exc)
    user = data["user"]
    edits = list(exc.payload_edits.select_related("author", "decided_by"))
    for edit in edits:
        edit.visible_changes = payload_edits.visible_changes(edit, user)
        pending = edit.status == PayloadEditStatus.PENDING
        edit.can_approve = pending and data["user_can_act"] and edit.author_id != user.pk
        edit.can_withdraw = pending and data["user_can_act"] and edit.author_id == user.pk
    data.update(edits=edits, pending=[e for e in edits if e.status == PayloadEditStatus.PENDING])
    return data


@register.inclusion_tag("exceptions/_comments.html", takes_context=True)
def exception_comments(context: template.Context, exc: IntegrationException) -> dict[str, Any]:
    """The comment thread and its form."""
    data = _base(context, exc)
    data.update(
        comments=list(exc.comments.select_related("author")),
        comment_form=CommentForm(auto_id="comment_%s"),
    )
    return data
