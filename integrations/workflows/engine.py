"""Runs a workflow's steps for one SyncRun, or for a batch of runs of the same workflow:
claims the runs, skips steps that already succeeded (resumable), records each step's outcome
and telemetry, and reports failures through the `step_failed` port. A failure stops its own
run only; the rest of the batch goes on. Vendor calls happen outside database transactions.

A batch runs step by step: each step gets the runs that reached it together (`run_many`),
so a step whose vendor has bulk APIs serves a hundred deals with a few calls, and the
engine's own bookkeeping is a few bulk queries per step rather than a few per run.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations import timeline
from integrations.choices import RunStatus, StepStatus
from integrations.models import SyncRun, SyncStep
from integrations.rowupdates import save_rows
from integrations.signals import runs_succeeded, step_failed
from integrations.telemetry import StepCalls

from .base import Batch, Step, StepContext, Workflow
from .failures import describe_failure
from .registry import get_workflow

logger = logging.getLogger(__name__)

#: what a successful step saves of its run (steps may route the run or name it)
RUN_FIELDS = ["context", "legal_entity_code", "region", "title", "business_key"]


def claim(run_ids: Iterable[int]) -> list[SyncRun]:
    """Take the pending runs among `run_ids` (and those whose worker vanished past its
    lease); runs another worker holds are left out."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RUN_LEASE_SECONDS)
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, claimed_at__lt=stale)
    with transaction.atomic():
        runs = list(
            SyncRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=list(run_ids))
            .filter(claimable)
            .select_related("source_connection")
            .order_by("pk")
        )
        SyncRun.objects.filter(pk__in=[run.pk for run in runs]).update(
            status=RunStatus.RUNNING,
            claimed_at=now,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), now),
            finished_at=None,
        )
    for run in runs:
        run.status = RunStatus.RUNNING
        run.claimed_at = now
        run.attempts += 1
        run.started_at = run.started_at or now
        run.finished_at = None
    return runs


def execute_run(run_id: int) -> SyncRun | None:
    """Run (or resume) one run to success or to its first failed step."""
    runs = execute_runs([run_id])
    if not runs:
        logger.info("run %s is not pending; nothing to do", run_id)
        return None
    return runs[0]


def execute_runs(run_ids: Iterable[int]) -> list[SyncRun]:
    """Run (or resume) a batch of runs, each to success or to its first failed step; return
    the runs this call claimed (those already taken or done are skipped)."""
    by_workflow: dict[str, list[SyncRun]] = defaultdict(list)
    claimed = claim(run_ids)
    for run in claimed:
        by_workflow[run.workflow].append(run)
    for name, runs in by_workflow.items():
        _execute(get_workflow(name), runs)
    return claimed


def _step_records(runs: list[SyncRun], workflow: Workflow) -> dict[tuple[int, str], SyncStep]:
    """Every run's step records, created (pending) where missing, in two queries."""
    existing = {
        (s.run_id, s.name): s
        for s in SyncStep.objects.filter(run__in=runs, name__in=workflow.step_names())
    }
    missing = [
        SyncStep(run=run, name=step.name, position=position)
        for run in runs
        for position, step in enumerate(workflow.steps)
        if (run.pk, step.name) not in existing
    ]
    if missing:
        SyncStep.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {
            (s.run_id, s.name): s
            for s in SyncStep.objects.filter(run__in=runs, name__in=workflow.step_names())
        }
    by_pk = {run.pk: run for run in runs}
    for record in existing.values():
        record.run = by_pk[record.run_id]  # no query when telemetry or signals read it
    return existing


def _execute(workflow: Workflow, runs: list[SyncRun]) -> None:
    batch = Batch()
    ctxs = {run.pk: StepContext(run=run, batch=batch) for run in runs}
    records = _step_records(runs, workflow)
    alive = list(runs)
    batch_key = uuid.uuid4().hex[:32]
    try:
        for position, step in enumerate(workflow.steps):
            todo: list[SyncRun] = []
            for run in alive:
                record = records[(run.pk, step.name)]
                if record.status == StepStatus.SUCCEEDED:
                    ctxs[run.pk].outputs[step.name] = record.output
                else:
                    todo.append(run)
            if not todo:
                continue
            failed = _run_step(step, position, [ctxs[r.pk] for r in todo], records, batch_key)
            alive = [run for run in alive if run.pk not in failed]
            if not alive:
                return
        _succeed(workflow, alive)
    finally:
        batch.close()


def _run_step(
    step: Step,
    position: int,
    ctxs: list[StepContext],
    records: dict[tuple[int, str], SyncStep],
    batch_key: str,
) -> set[int]:
    """Run one step for the given runs; record outcomes; return the ids of runs that failed."""
    now = timezone.now()
    steps = {ctx.run.pk: records[(ctx.run.pk, step.name)] for ctx in ctxs}
    key = f"{batch_key}-{position}" if len(steps) > 1 else ""
    SyncStep.objects.filter(pk__in=[r.pk for r in steps.values()]).update(
        status=StepStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        finished_at=None,
        error={},
        batch_key=key,
    )
    for record in steps.values():
        record.status = StepStatus.RUNNING
        record.attempts += 1
        record.started_at = now
        record.finished_at = None
        record.error = {}
        record.batch_key = key
    for ctx in ctxs:
        ctx.attempt = steps[ctx.run.pk].attempts
    calls = StepCalls(steps, f"{batch_key}-{position}")
    batch = ctxs[0].batch
    batch.on_call = calls
    try:
        results = step.run_many(ctxs)
    except Exception as exc:  # the step failed as a whole: every run in it failed
        results = [exc] * len(ctxs)
    finally:
        batch.on_call = None
        calls.flush()
    if len(results) != len(ctxs):
        raise RuntimeError(f"step {step.name} answered {len(results)} results for {len(ctxs)}")
    done: list[tuple[StepContext, dict[str, Any]]] = []
    failed: set[int] = set()
    for ctx, result in zip(ctxs, results, strict=True):
        if isinstance(result, Exception):
            failed.add(ctx.run.pk)
            _fail(ctx.run, steps[ctx.run.pk], step, ctx, result)
        else:
            done.append((ctx, result))
    if done:
        finished = timezone.now()
        for ctx, output in done:
            record = steps[ctx.run.pk]
            record.status = StepStatus.SUCCEEDED
            record.output = output
            record.finished_at = finished
            ctx.outputs[step.name] = output
            ctx.run.context = {**ctx.run.context, step.name: output}
        with transaction.atomic():
            save_rows([steps[ctx.run.pk] for ctx, _ in done], ["status", "output", "finished_at"])
            save_rows([ctx.run for ctx, _ in done], RUN_FIELDS)
    return failed


def _succeed(workflow: Workflow, runs: list[SyncRun]) -> None:
    now = timezone.now()
    with transaction.atomic():
        SyncRun.objects.filter(pk__in=[run.pk for run in runs]).update(
            status=RunStatus.SUCCEEDED, error={}, finished_at=now
        )
        for run in runs:
            run.status = RunStatus.SUCCEEDED
            run.error = {}
            run.finished_at = now
        if workflow.milestone:
            timeline.meet_many([run.correlation_id for run in runs], workflow.milestone)
        runs_succeeded.send(sender=SyncRun, runs=runs)
    for run in runs:
        logger.info("run %s (%s %s) succeeded", run.pk, run.workflow, run.correlation_id)


def _fail(run: SyncRun, record: SyncStep, step: Step, ctx: StepContext, exc: Exception) -> None:
    connection_id = None
    if step.system:
        try:
            connection_id = step.connection(ctx).pk
        except Exception:  # no connection: the failure itself says so
            connection_id = None
    failure = describe_failure(
        exc,
        entity_type=step.entity_type,
        entity_ref=step.entity_ref(ctx),
        connection_id=connection_id,
        rejection_code=step.rejection_code,
        payload=run.input,
    )
    if failure.kind == "internal":
        logger.error("run %s step %s failed unexpectedly", run.pk, step.name, exc_info=exc)
    else:
        logger.warning(
            "run %s step %s failed: %s (%s)", run.pk, step.name, failure.code, failure.message
        )
    now = timezone.now()
    with transaction.atomic():
        record.status = StepStatus.FAILED
        record.error = failure.as_dict()
        record.finished_at = now
        record.save(update_fields=["status", "error", "finished_at"])
        run.status = RunStatus.FAILED
        run.error = {"step": step.name, **failure.as_dict()}
        run.finished_at = now
        run.save(update_fields=["status", "error", "finished_at", *RUN_FIELDS[1:]])
        step_failed.send(sender=SyncRun, run=run, step=record, failure=failure)
