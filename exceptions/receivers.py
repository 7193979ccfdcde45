"""Subscribes the exception queues to the engine's port (integrations.signals)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from integrations.models import Connection, Expectation, PostingBatch, SyncRun, SyncStep
from integrations.signals import (
    entries_posted,
    expectations_met,
    governance_violation,
    poll_failed,
    poll_succeeded,
    posting_rejected,
    runs_succeeded,
    step_failed,
    transaction_stuck,
)
from integrations.workflows.failures import StepFailure

from . import auto_resolve, services
from .choices import ExceptionCode, ExceptionStatus
from .models import IntegrationException


@receiver(step_failed, sender=SyncRun, dispatch_uid="exceptions.step_failed")
def on_step_failed(
    sender: Any, run: SyncRun, step: SyncStep, failure: StepFailure, **kw: Any
) -> None:
    # Exceptions of earlier steps of this run that have since succeeded are resolved.
    stale = [e for e in services.unresolved_for_run(run) if e.step_id and e.step_id != step.pk]
    services.resolve(stale, reason="The step succeeded on a later attempt.")
    services.open_exception(failure, run=run, step=step, key=(run.correlation_id, step.name))


@receiver(runs_succeeded, sender=SyncRun, dispatch_uid="exceptions.runs_succeeded")
def on_runs_succeeded(sender: Any, runs: list[SyncRun], **kw: Any) -> None:
    services.resolve(
        services.unresolved_for_runs(runs), reason="The run succeeded after the retry."
    )
    auto_resolve.after_runs(runs)  # exceptions without a run about the same records


@receiver(entries_posted, sender=PostingBatch, dispatch_uid="exceptions.entries_posted")
def on_entries_posted(sender: Any, batch: PostingBatch, entry_ids: list[str], **kw: Any) -> None:
    auto_resolve.after_posting(batch, entry_ids)


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


@receiver(transaction_stuck, sender=Expectation, dispatch_uid="exceptions.transaction_stuck")
def on_transaction_stuck(sender: Any, expectation: Expectation, **kw: Any) -> None:
    failure = StepFailure(
        kind="business",
        code=f"stuck_{expectation.milestone}",
        message=(
            f"{expectation.milestone.replace('_', ' ').capitalize()} was expected by "
            f"{expectation.due_at:%Y-%m-%d %H:%M} UTC."
        ),
        entity_type="transaction",
        entity_ref=expectation.business_key,
    )
    services.open_exception(
        failure,
        key=(expectation.milestone,),
        region=expectation.region,
        legal_entity_code=expectation.legal_entity_code,
    )


@receiver(expectations_met, sender=Expectation, dispatch_uid="exceptions.expectations_met")
def on_expectations_met(sender: Any, expectations: list[Expectation], **kw: Any) -> None:
    milestones = {e.business_key: e.milestone for e in expectations}
    stuck = IntegrationException.objects.filter(
        code=ExceptionCode.TRANSACTION_STUCK,
        entity_type="transaction",
        entity_ref__in=list(milestones),
    ).exclude(status=ExceptionStatus.RESOLVED)
    for exception in stuck:
        services.resolve(
            [exception], reason=f"The transaction reached {milestones[exception.entity_ref]}."
        )


@receiver(governance_violation, sender=Connection, dispatch_uid="exceptions.governance")
def on_governance_violation(
    sender: Any,
    connection: Connection,
    entity_type: str,
    external_id: str,
    violations: dict[str, str],
    values: dict[str, Any],
    **kw: Any,
) -> None:
    owners = ", ".join(f"{name} (owned by {owner.upper()})" for name, owner in violations.items())
    failure = StepFailure(
        kind="business",
        code=f"sor_violation_{connection.system}",
        message=f"{connection.name} changed {owners} of {entity_type} {external_id}.",
        entity_type=entity_type,
        entity_ref=str(external_id),
        connection_id=connection.pk,
        details={"violations": violations},
        payload={"changed": values},
    )
    services.open_exception(failure, key=(connection.name, *sorted(violations)))


@receiver(posting_rejected, dispatch_uid="exceptions.posting_rejected")
def on_posting_rejected(sender: Any, failure: StepFailure, key: tuple[str, ...], **kw: Any) -> None:
    services.open_exception(failure, key=key)
