"""Subscribes the exception queues to the engine's port (integrations.signals)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from integrations.models import Connection, SyncRun, SyncStep
from integrations.signals import poll_failed, poll_succeeded, run_succeeded, step_failed
from integrations.workflows.failures import StepFailure

from . import services
from .choices import ExceptionStatus
from .models import IntegrationException


@receiver(step_failed, sender=SyncRun, dispatch_uid="exceptions.step_failed")
def on_step_failed(
    sender: Any, run: SyncRun, step: SyncStep, failure: StepFailure, **kw: Any
) -> None:
    # Exceptions of earlier steps of this run that have since succeeded are resolved.
    stale = [e for e in services.unresolved_for_run(run) if e.step_id and e.step_id != step.pk]
    services.resolve(stale, reason="The step succeeded on a later attempt.")
    services.open_exception(failure, run=run, step=step, key=(run.correlation_id, step.name))


@receiver(run_succeeded, sender=SyncRun, dispatch_uid="exceptions.run_succeeded")
def on_run_succeeded(sender: Any, run: SyncRun, **kw: Any) -> None:
    services.resolve(services.unresolved_for_run(run), reason="The run succeeded after the retry.")


@receiver(poll_failed, sender=Connection, dispatch_uid="exceptions.poll_failed")
def on_poll_failed(
    sender: Any, connection: Connection, stream: str, failure: StepFailure, **kw: Any
) -> None:
    services.open_exception(failure, key=(connection.name, stream))


@receiver(poll_succeeded, sender=Connection, dispatch_uid="exceptions.poll_succeeded")
def on_poll_succeeded(sender: Any, connection: Connection, stream: str, **kw: Any) -> None:
    stale = list(
        IntegrationException.objects.filter(
            run__isnull=True, connection=connection, entity_type="connection"
        ).exclude(status=ExceptionStatus.RESOLVED)
    )
    if stale:
        services.resolve(stale, reason=f"Reading {stream} from {connection} works again.")
