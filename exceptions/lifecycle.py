"""The lifecycle of an exception, by people: assign, take, start, comment, ignore, reopen,
resolve by hand. (Retry and restart are in exceptions.actions; payload edits in
exceptions.payload_edits.)

Every action checks the actor's role (resolvers of the queue's team, and superusers), checks
the exception's state and says in plain words why it refuses (ActionRefused), locks the row
while it changes it, and writes one audit record.

Assignment: a manual assignment (or a manual unassignment) sets `assigned_manually`, and
routing rules never overrule it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from console import audit
from console.models import User

from . import ignoring, incidents, services
from .actions import ActionRefused, ActionResult, InvalidInput, NotAllowed, can_act
from .choices import ExceptionStatus
from .models import Comment, IntegrationException

COMMENT_MAX_CHARS = 5000
REASON_MAX_CHARS = 300


def require_actor(user: User, exc: IntegrationException, verb: str) -> None:
    """Refuse unless `user` may act on the exception's queue."""
    if not can_act(user, exc):
        raise NotAllowed(
            f"Only members of {exc.queue.team} with a resolver role can {verb} this exception."
        )


@contextmanager
def _locked(exc: IntegrationException, user: User, verb: str) -> Iterator[IntegrationException]:
    """The exception's row, locked for the change, after the role check."""
    require_actor(user, exc, verb)
    with transaction.atomic():
        yield (
            IntegrationException.objects.select_for_update(of=("self",))
            .select_related("queue__team", "run", "assignee")
            .get(pk=exc.pk)
        )
    exc.refresh_from_db()


def _record(action: str, summary: str, user: User, exc: IntegrationException, **data) -> None:
    audit.record(
        action,
        summary,
        actor=user,
        obj=exc,
        correlation_id=exc.run.correlation_id if exc.run_id else "",
        **data,
    )


def _not_resolved(exc: IntegrationException, what: str) -> None:
    if exc.status == ExceptionStatus.RESOLVED:
        raise ActionRefused(f"This exception is resolved; reopen it before you {what}.")


def _name(user: User | None) -> str:
    return user.get_username() if user is not None else "nobody"


def assign(exc: IntegrationException, user: User, assignee: User) -> ActionResult:
    """Give the exception to `assignee`, a resolver of the queue's team."""
    with _locked(exc, user, "assign") as current:
        _not_resolved(current, "assign it")
        if not assignee.is_active or not assignee.can_act_for(current.queue.team):
            raise InvalidInput(
                f"{assignee.get_username()} is not a resolver of {current.queue.team}, so "
                "cannot work this exception."
            )
        if current.assignee_id == assignee.pk and current.assigned_manually:
            raise ActionRefused(f"It is already assigned to {assignee.get_username()}.")
        previous = current.assignee
        current.assignee = assignee
        current.assigned_manually = True
        current.save(update_fields=["assignee", "assigned_manually"])
        _record(
            "exception.assigned",
            f"Exception #{current.pk} assigned to {assignee.get_username()}"
            f" (was {_name(previous)})",
            user,
            current,
            assignee=assignee.get_username(),
            previous=_name(previous),
        )
    return ActionResult(True, f"Assigned to {assignee.get_username()}.")


def take(exc: IntegrationException, user: User) -> ActionResult:
    """Assign the exception to oneself."""
    result = assign(exc, user, user)
    return ActionResult(result.ok, "It is yours now.")


def unassign(exc: IntegrationException, user: User) -> ActionResult:
    """Leave the exception with nobody, on purpose (rules do not assign it again)."""
    with _locked(exc, user, "unassign") as current:
        _not_resolved(current, "unassign it")
        if current.assignee_id is None:
            raise ActionRefused("Nobody is assigned to this exception.")
        previous = current.assignee
        current.assignee = None
        current.assigned_manually = True
        current.save(update_fields=["assignee", "assigned_manually"])
        _record(
            "exception.unassigned",
            f"Exception #{current.pk} unassigned (was {_name(previous)})",
            user,
            current,
            previous=_name(previous),
        )
    return ActionResult(True, f"{_name(previous)} is no longer assigned.")


def start(exc: IntegrationException, user: User) -> ActionResult:
    """Say someone is working on it (in progress); an unassigned exception becomes the
    starter's."""
    with _locked(exc, user, "start work on") as current:
        if current.status != ExceptionStatus.OPEN:
            raise ActionRefused(
                f"Only an open exception can be started; this one is "
                f"{current.get_status_display().lower()}."
            )
        current.status = ExceptionStatus.IN_PROGRESS
        fields = ["status"]
        if current.assignee_id is None:
            current.assignee, current.assigned_manually = user, True
            fields += ["assignee", "assigned_manually"]
        current.save(update_fields=fields)
        _record(
            "exception.started",
            f"Work on exception #{current.pk} started by {user.get_username()}",
            user,
            current,
        )
    return ActionResult(True, "In progress.")


def clean_text(text: str, *, what: str, limit: int) -> str:
    """`text` stripped; refused when empty or longer than `limit` characters."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput(f"Write {what}.")
    if len(text) > limit:
        raise InvalidInput(f"{what.capitalize()} is {len(text)} characters; at most {limit}.")
    return text


def comment(exc: IntegrationException, user: User, body: str) -> Comment:
    """Add a comment (in any state: a resolved exception can still be discussed)."""
    body = clean_text(body, what="a comment", limit=COMMENT_MAX_CHARS)
    with _locked(exc, user, "comment on") as current:
        note = Comment.objects.create(exception=current, author=user, body=body)
        _record(
            "exception.commented",
            f"Comment on exception #{current.pk} by {user.get_username()}",
            user,
            current,
            comment=note.pk,
        )
    return note


def ignore(
    exc: IntegrationException,
    user: User,
    reason: str,
    *,
    until: dt.datetime | None = None,
    until_it_happens_again: bool = False,
) -> ActionResult:
    """Ignore the exception: for good (no `until`), until a time, or until it happens
    again (see exceptions.ignoring for what each means)."""
    reason = clean_text(reason, what="why you ignore it", limit=REASON_MAX_CHARS)
    if until is not None and until_it_happens_again:
        raise InvalidInput("Ignore until a time or until it happens again, not both.")
    if until is not None:
        if timezone.is_naive(until):
            raise InvalidInput("Give the time with its time zone (UTC).")
        if until <= timezone.now():
            raise InvalidInput("The time to ignore it until has already passed.")
    if until_it_happens_again:
        until = ignoring.UNTIL_IT_HAPPENS_AGAIN
    with _locked(exc, user, "ignore") as current:
        _not_resolved(current, "ignore it")
        if current.status == ExceptionStatus.IGNORED:
            raise ActionRefused("It is already ignored; reopen it first to change that.")
        if current.status == ExceptionStatus.RETRYING:
            raise ActionRefused("A retry is running; wait for its result.")
        current.status = ExceptionStatus.IGNORED
        current.ignored_reason = reason
        current.ignored_until = until
        current.save(update_fields=["status", "ignored_reason", "ignored_until"])
        how = ignoring.describe(current)
        _record(
            "exception.ignored",
            f"Exception #{current.pk}: {how.lower()}: {reason}",
            user,
            current,
            reason=reason,
            until=until.isoformat() if until is not None else None,
        )
    return ActionResult(True, f"{how}.")


def reopen(exc: IntegrationException, user: User) -> ActionResult:
    """Open an ignored or resolved exception again."""
    with _locked(exc, user, "reopen") as current:
        if current.status not in (ExceptionStatus.IGNORED, ExceptionStatus.RESOLVED):
            raise ActionRefused("Only an ignored or resolved exception can be reopened.")
        if current.status == ExceptionStatus.RESOLVED:
            newer = (
                IntegrationException.objects.filter(fingerprint=current.fingerprint)
                .exclude(status=ExceptionStatus.RESOLVED)
                .values_list("pk", flat=True)
                .first()
            )
            if newer is not None:
                raise ActionRefused(
                    f"The same failure is open as exception #{newer}; work on that one."
                )
        was = current.get_status_display().lower()
        current.status = ExceptionStatus.OPEN
        current.ignored_reason, current.ignored_until = "", None
        current.resolved_at, current.resolved_by, current.resolution = None, None, ""
        current.save(
            update_fields=[
                "status",
                "ignored_reason",
                "ignored_until",
                "resolved_at",
                "resolved_by",
                "resolution",
            ]
        )
        incidents.reattach(current)  # a resolved incident's exception joins an open one
        _record(
            "exception.reopened", f"Exception #{current.pk} reopened (was {was})", user, current
        )
    return ActionResult(True, "Open again.")


def resolve(exc: IntegrationException, user: User, note: str) -> ActionResult:
    """Resolve by hand, with a note saying how it was resolved (e.g. fixed in the target
    system directly)."""
    note = clean_text(note, what="how it was resolved", limit=REASON_MAX_CHARS)
    with _locked(exc, user, "resolve") as current:
        if current.status == ExceptionStatus.RESOLVED:
            raise ActionRefused("This exception is already resolved.")
        services.resolve([current], reason=note, actor=user)
    return ActionResult(True, "Resolved.")
