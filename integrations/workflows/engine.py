"""Runs a workflow's steps for one SyncRun: claims the run, skips steps that already
succeeded (resumable), records each step's outcome and telemetry, and reports failures
through the `step_failed` port. Vendor calls happen outside database transactions."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from integrations import timeline
from integrations.choices import RunStatus, StepStatus
from integrations.models import SyncRun, SyncStep
from integrations.signals import run_succeeded, step_failed
from integrations.telemetry import CallBuffer

from .base import StepContext
from .failures import describe_failure
from .registry import get_workflow

logger = logging.getLogger(__name__)


def claim(run_id: int) -> SyncRun | None:
    """Take a pending run (or one whose worker vanished past its lease); None if taken."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.RUN_LEASE_SECONDS)
    claimed = (
        SyncRun.objects.filter(pk=run_id)
        .filter(Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, claimed_at__lt=stale))
        .update(
            status=RunStatus.RUNNING,
            claimed_at=now,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), now),
            finished_at=None,
        )
    )
    if not claimed:
        return None
    return SyncRun.objects.select_related("source_connection").get(pk=run_id)


def execute_run(run_id: int) -> SyncRun | None:
    """Run (or resume) a run to success or to its first failed step."""
    run = claim(run_id)
    if run is None:
        logger.info("run %s is not pending; nothing to do", run_id)
        return None
    workflow = get_workflow(run.workflow)
    ctx = StepContext(run=run)
    try:
        for position, step in enumerate(workflow.steps):
            record, _ = SyncStep.objects.get_or_create(
                run=run, name=step.name, defaults={"position": position}
            )
            if record.status == StepStatus.SUCCEEDED:
                ctx.outputs[step.name] = record.output
                continue
            record.status = StepStatus.RUNNING
            record.attempts += 1
            record.started_at = timezone.now()
            record.finished_at = None
            record.error = {}
            record.save(update_fields=["status", "attempts", "started_at", "finished_at", "error"])
            buffer = CallBuffer(run=run, step=record)
            ctx.on_call = buffer
            try:
                output = step.run(ctx) or {}
            except Exception as exc:
                buffer.flush()
                _fail(run, record, step, ctx, exc)
                return run
            buffer.flush()
            record.status = StepStatus.SUCCEEDED
            record.output = output
            record.finished_at = timezone.now()
            with transaction.atomic():
                record.save(update_fields=["status", "output", "finished_at"])
                ctx.outputs[step.name] = output
                run.context = {**run.context, step.name: output}
                run.save(
                    update_fields=[
                        "context",
                        "legal_entity_code",
                        "region",
                        "title",
                        "business_key",
                    ]
                )
        with transaction.atomic():
            run.status = RunStatus.SUCCEEDED
            run.error = {}
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
            if workflow.milestone:
                timeline.meet(run.correlation_id, workflow.milestone)
            run_succeeded.send(sender=SyncRun, run=run)
        logger.info("run %s (%s %s) succeeded", run.pk, run.workflow, run.correlation_id)
        return run
    finally:
        ctx.close()


def _fail(run: SyncRun, record: SyncStep, step, ctx: StepContext, exc: Exception) -> None:
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
        logger.exception("run %s step %s failed unexpectedly", run.pk, step.name)
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
        run.save(
            update_fields=[
                "status",
                "error",
                "finished_at",
                "legal_entity_code",
                "region",
                "title",
                "business_key",
            ]
        )
        step_failed.send(sender=SyncRun, run=run, step=record, failure=failure)
