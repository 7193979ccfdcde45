"""What people do to exceptions. Every action checks the actor's role and is audited."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from console import audit
from console.models import User
from integrations import services as engine

from .choices import ExceptionStatus
from .models import IntegrationException


class ActionRefused(Exception):
    """The action is not allowed, or makes no sense in the exception's state."""


class NotAllowed(ActionRefused):
    """The person's role does not allow it (not a resolver of the queue's team, no finance
    rights for a financial field, approving one's own edit)."""


class InvalidInput(ActionRefused):
    """What the person asked for is not valid (an empty comment, a time in the past, JSON
    that does not parse, an assignee who cannot work the queue)."""


@dataclass
class ActionResult:
    ok: bool
    message: str


def can_act(user: User, exc: IntegrationException) -> bool:
    """Resolvers and admins of the queue's team act on it; superusers on every queue."""
    return user.is_authenticated and user.can_act_for(exc.queue.team)


def retry(exc: IntegrationException, user: User) -> ActionResult:
    """Re-run the failed step (and the rest of the workflow after it).

    The run resumes from its failed step with the data as it is now in every system; steps
    that succeeded keep their results, so nothing is created twice. Success resolves the
    exception (the engine reports it; see receivers).
    """
    if not can_act(user, exc):
        raise NotAllowed(f"Only members of {exc.queue.team} with a resolver role can retry.")
    if exc.status == ExceptionStatus.RESOLVED:
        raise ActionRefused("This exception is already resolved.")
    with transaction.atomic():
        if exc.run is not None:
            queued = engine.resume_run(exc.run, actor=user, reason=f"retry of exception #{exc.pk}")
            if not queued:
                raise ActionRefused("The run is already queued or running; wait for its result.")
        elif exc.connection is not None:
            engine.request_poll(exc.connection)
        else:
            raise ActionRefused("Nothing to retry: this exception has no run or connection.")
        IntegrationException.objects.filter(pk=exc.pk).update(status=ExceptionStatus.RETRYING)
        audit.record(
            "exception.retry",
            f"Retry of exception #{exc.pk} requested",
            actor=user,
            obj=exc,
            correlation_id=exc.run.correlation_id if exc.run else "",
        )
    return outcome(exc, "Retried", "Retry queued")


def restart(exc: IntegrationException, user: User) -> ActionResult:
    """Run the whole workflow again from its first step, with the current mapping and the
    run's input as it is now (corrections included).

    Every step runs again, and each looks in its target before it writes (by external id or
    reference), so a restart finds what earlier attempts created instead of duplicating it.
    """
    if not can_act(user, exc):
        raise NotAllowed(f"Only members of {exc.queue.team} with a resolver role can restart.")
    if exc.status == ExceptionStatus.RESOLVED:
        raise ActionRefused("This exception is already resolved.")
    if exc.run is None:
        raise ActionRefused("Nothing to restart: this exception has no workflow run. Use Retry.")
    with transaction.atomic():
        queued = engine.restart_run(exc.run, actor=user, reason=f"restart of exception #{exc.pk}")
        if not queued:
            raise ActionRefused("The run is already queued or running; wait for its result.")
        IntegrationException.objects.filter(pk=exc.pk).update(status=ExceptionStatus.RETRYING)
        audit.record(
            "exception.restart",
            f"Restart of the whole workflow of exception #{exc.pk} requested",
            actor=user,
            obj=exc,
            correlation_id=exc.run.correlation_id,
        )
    return outcome(exc, "Restarted", "Restart queued")


def outcome(exc: IntegrationException, done: str, queued: str) -> ActionResult:
    """What a retry or restart led to (with eager workers, already its result)."""
    exc.refresh_from_db()
    if exc.status == ExceptionStatus.RESOLVED:
        return ActionResult(True, f"{done}: the run succeeded and the exception is resolved.")
    if exc.status == ExceptionStatus.OPEN:
        return ActionResult(False, f"{done}, but it failed again: see the latest error.")
    return ActionResult(True, f"{queued}: a worker is running it now.")
