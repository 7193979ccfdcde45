"""The engine's public services: the only entry points business apps call (start a run,
resume a failed run). Work is saved first and enqueued after commit; the database, not the
broker, is the record of what happened."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from console import audit
from console.models import User

from . import corrections, outbox, timeline
from .choices import RunStatus, StepStatus, Trigger
from .models import Connection, SyncRun, SyncStep
from .queues import queue_for

logger = logging.getLogger(__name__)


def enqueue_run(run: SyncRun) -> None:
    """Hand a saved run to a worker through the outbox (sent once the transaction commits),
    on the queue of the connection it came from."""
    outbox.enqueue(
        "integrations.run_workflow",
        run.pk,
        queue=queue_for(run.source_connection_id),
        key=run.correlation_id,
    )


@dataclass(frozen=True)
class RunRequest:
    """One business transaction a poll found: what `start_runs` needs to start its run."""

    correlation_id: str
    payload: dict[str, Any]
    title: str = ""
    business_key: str = ""


def start_runs(
    workflow: str,
    requests: list[RunRequest],
    *,
    trigger: str = Trigger.POLL,
    source_connection: Connection | None = None,
) -> list[SyncRun]:
    """`start_run` for many transactions at once (a poll's page): the runs that do not exist
    yet are created in one insert and handed to workers in batches of RUN_BATCH_SIZE, each
    batch one task whose steps serve all its runs together. Returns the runs created."""
    wanted: dict[str, RunRequest] = {}
    for request in requests:
        wanted.setdefault(request.correlation_id, request)
    existing = set(
        SyncRun.objects.filter(workflow=workflow, correlation_id__in=list(wanted)).values_list(
            "correlation_id", flat=True
        )
    )
    new = [
        SyncRun(
            workflow=workflow,
            correlation_id=request.correlation_id,
            trigger=trigger,
            source_connection=source_connection,
            input=request.payload,
            title=request.title[:255],
            business_key=request.business_key or request.correlation_id,
        )
        for request in wanted.values()
        if request.correlation_id not in existing
    ]
    if not new:
        return []
    try:
        with transaction.atomic():
            runs = SyncRun.objects.bulk_create(new)
            _expect_milestones(runs)
            size = max(1, settings.RUN_BATCH_SIZE)
            for start in range(0, len(runs), size):
                chunk = runs[start : start + size]
                outbox.enqueue(
                    "integrations.run_workflows",
                    [run.pk for run in chunk],
                    queue=queue_for(source_connection),
                    key=f"{workflow}:{chunk[0].correlation_id}+{len(chunk) - 1}",
                )
    except IntegrityError:
        # another process started some of them meanwhile: one by one, each once
        started = [
            start_run(
                workflow,
                run.correlation_id,
                trigger=trigger,
                source_connection=source_connection,
                payload=run.input,
                title=run.title,
                business_key=run.business_key,
            )
            for run in new
        ]
        return [run for run, created in started if created]
    return runs


def start_run(
    workflow: str,
    correlation_id: str,
    *,
    trigger: str = Trigger.POLL,
    source_connection: Connection | None = None,
    payload: dict[str, Any] | None = None,
    title: str = "",
    business_key: str = "",
) -> tuple[SyncRun, bool]:
    """Create the run of `workflow` for a business transaction, once; enqueue it if new.

    A second event for the same transaction (a repeat, or the echo of Throughline's own
    write-back) finds the existing run and starts nothing.
    """
    try:
        with transaction.atomic():
            run, created = SyncRun.objects.get_or_create(
                workflow=workflow,
                correlation_id=correlation_id,
                defaults={
                    "trigger": trigger,
                    "source_connection": source_connection,
                    "input": payload or {},
                    "title": title[:255],
                    "business_key": business_key or correlation_id,
                },
            )
            if created:
                _expect_milestone(run)
                enqueue_run(run)
    except IntegrityError:
        run, created = SyncRun.objects.get(workflow=workflow, correlation_id=correlation_id), False
    return run, created


def _expect_milestone(run: SyncRun) -> None:
    _expect_milestones([run])


def _expect_milestones(runs: list[SyncRun]) -> None:
    from .workflows.registry import get_workflow

    for workflow in {run.workflow for run in runs}:
        milestone = get_workflow(workflow).milestone
        seconds = settings.EXPECTATIONS.get(milestone) if milestone else None
        if seconds:
            # keyed by the run's own transaction (one deal has many milestones to invoice)
            timeline.expect_many(
                [run.correlation_id for run in runs if run.workflow == workflow],
                milestone,
                timedelta(seconds=seconds),
            )


def resume_run(run: SyncRun, *, actor: User | None = None, reason: str = "retry") -> bool:
    """Re-run a failed run from its failed step (earlier steps keep their results).

    Returns False when the run is not failed (already running, queued or done).
    """
    return _requeue(
        run,
        again=Q(status=StepStatus.FAILED),
        action="run.resumed",
        summary="resumed",
        actor=actor,
        reason=reason,
    )


def restart_run(run: SyncRun, *, actor: User | None = None, reason: str = "restart") -> bool:
    """Run a failed run's whole workflow again, every step from the first, with the current
    mapping and the run's input as it is now (a person's corrections included).

    Steps keep their attempt counts: a step that ran before looks in its target (by external
    id or reference) before it writes, so a restart never creates a record twice. Returns
    False when the run is not failed (already queued, running or done).
    """
    return _requeue(
        run,
        again=~Q(status=StepStatus.PENDING),
        action="run.restarted",
        summary="restarted from its first step",
        actor=actor,
        reason=reason,
    )


def rerun_steps(
    run: SyncRun, steps: list[str], *, actor: User | None = None, reason: str = "re-sync"
) -> bool:
    """Run the named steps of a finished run again (a re-sync: reconciliation found a
    target out of step with what the run wrote), with the run's input as it is now; steps
    not named keep their results, a failed step runs again too. Each step looks in its
    target before it writes (by external id or binding), so a re-run corrects a record and
    never creates a second one. Returns False when the run is pending or running."""
    from .workflows.registry import get_workflow

    unknown = sorted(set(steps) - set(get_workflow(run.workflow).step_names()))
    if unknown or not steps:
        raise ValueError(f"not steps of {run.workflow}: {', '.join(unknown) or 'none named'}")
    with transaction.atomic():
        run = SyncRun.objects.select_for_update(of=("self",)).get(pk=run.pk)
        if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            return False
        run.steps.filter(Q(name__in=steps) | Q(status=StepStatus.FAILED)).update(
            status=StepStatus.PENDING
        )
        run.status = RunStatus.PENDING
        run.save(update_fields=["status"])
        audit.record(
            "run.rerun",
            f"Run {run.pk} ({run.workflow}) re-running {', '.join(steps)}: {reason}",
            actor=actor,
            obj=run,
            correlation_id=run.correlation_id,
            steps=list(steps),
        )
        enqueue_run(run)
    logger.info("run %s re-running %s (%s)", run.pk, ", ".join(steps), reason)
    return True


def _requeue(
    run: SyncRun, *, again: Q, action: str, summary: str, actor: User | None, reason: str
) -> bool:
    """Put a failed run back in the queue with the steps `again` selects pending; audited."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update(of=("self",)).get(pk=run.pk)
        if run.status != RunStatus.FAILED:
            return False
        run.steps.filter(again).update(status=StepStatus.PENDING)
        run.status = RunStatus.PENDING
        run.save(update_fields=["status"])
        audit.record(
            action,
            f"Run {run.pk} ({run.workflow}) {summary}: {reason}",
            actor=actor,
            obj=run,
            correlation_id=run.correlation_id,
        )
        enqueue_run(run)
    logger.info("run %s %s (%s)", run.pk, summary, reason)
    return True


def resume_runs(
    run_ids: list[int], *, actor: User | None = None, reason: str = "bulk retry"
) -> list[int]:
    """`resume_run` for many runs at once (a bulk retry): the failed ones among `run_ids` go
    back to pending in two updates and are handed to workers RUN_BATCH_SIZE at a time, one
    task per batch, as `start_runs` does. Runs another process holds, and runs that are not
    failed, are left alone. Returns the ids of the runs resumed."""
    with transaction.atomic():
        runs = list(
            SyncRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(run_ids), status=RunStatus.FAILED)
            .only("pk", "workflow", "correlation_id", "source_connection_id")
            .order_by("pk")
        )
        if not runs:
            return []
        ids = [run.pk for run in runs]
        SyncStep.objects.filter(run_id__in=ids, status=StepStatus.FAILED).update(
            status=StepStatus.PENDING
        )
        SyncRun.objects.filter(pk__in=ids).update(status=RunStatus.PENDING)
        audit.record_each(
            "run.resumed",
            [
                (run, f"Run {run.pk} ({run.workflow}) resumed: {reason}", run.correlation_id, {})
                for run in runs
            ],
            actor=actor,
        )
        groups: dict[tuple[str, int | None], list[SyncRun]] = {}
        for run in runs:
            groups.setdefault((run.workflow, run.source_connection_id), []).append(run)
        size = max(1, settings.RUN_BATCH_SIZE)
        for (workflow, connection_id), group in groups.items():
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                outbox.enqueue(
                    "integrations.run_workflows",
                    [run.pk for run in chunk],
                    queue=queue_for(connection_id),
                    key=f"{workflow}:{chunk[0].correlation_id}+{len(chunk) - 1}",
                )
    logger.info("%d runs resumed (%s)", len(ids), reason)
    return ids


def correct_input(
    run: SyncRun,
    payload: dict[str, Any],
    changes: dict[str, Any],
    *,
    actor: User | None = None,
    reason: str = "payload corrected",
) -> bool:
    """Replace a failed run's input with a person's corrected payload; `changes` ({dotted
    path: new value}) are laid over the source record when the run reads it again (see
    integrations.corrections). Returns False when the run is not failed."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update(of=("self",)).get(pk=run.pk)
        if run.status != RunStatus.FAILED:
            return False
        corrections.store(run, payload, changes)
        audit.record(
            "run.input_corrected",
            f"Input of run {run.pk} ({run.workflow}) corrected: {', '.join(sorted(changes))}",
            actor=actor,
            obj=run,
            correlation_id=run.correlation_id,
            fields=sorted(changes),
            reason=reason,
        )
    return True


def look_up_in_targets(run: SyncRun) -> list[Any]:
    """Whether the records `run` writes already exist in their target systems (read-only;
    integrations.preview.TargetLookup items)."""
    from .preview import lookup_targets

    return lookup_targets(run)


def preview_replay(run: SyncRun, *, restart: bool = False) -> list[Any]:
    """What a retry (or a restart) of `run` would send, with the current mapping, without
    writing anything (integrations.preview.StepPreview items)."""
    from .preview import preview_run

    return preview_run(run, restart=restart)


def request_poll(connection: Connection) -> None:
    """Read a connection's change streams again soon (after its failure was fixed)."""
    outbox.enqueue("integrations.poll_closed_won", connection.pk, queue=queue_for(connection))
