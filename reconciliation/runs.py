"""A reconciliation run from start to finish: pull both sides into their snapshots (with the
progress shown as it goes), classify set-wise, keep the summary."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from console import audit
from integrations.telemetry import CallBuffer

from . import catalogue, compare
from .conversion import Converter
from .models import IN_PROGRESS, Definition, Run, Side
from .pulling import PullContext
from .signals import run_finished
from .snapshots import SnapshotSink

logger = logging.getLogger(__name__)

#: re-read a little before the watermark: a record changed in the same second is not lost
OVERLAP = dt.timedelta(minutes=5)


def request_run(
    definition: Definition,
    *,
    full: bool = False,
    trigger: str = "manual",
    user: AbstractBaseUser | None = None,
) -> Run:
    """Queue a run (a worker executes it after this transaction commits). While a run of the
    definition is queued or working, that run is returned instead: two runs would pull into
    the same snapshot at once."""
    from .tasks import run_reconciliation

    definition.refresh_from_db()  # the watermarks decide the mode: never a stale copy
    active = active_run(definition)
    if active is not None:
        return active
    mode = Run.Mode.FULL if full or _due_for_full(definition, trigger) else Run.Mode.INCREMENTAL
    run = Run.objects.create(
        definition=definition,
        mode=mode,
        trigger=trigger,
        requested_by=user if user is not None and user.is_authenticated else None,
        phase="queued",
    )
    audit.record(
        "reconciliation.run_requested",
        f"{mode} reconciliation run {run.pk} of {definition.name} requested ({trigger})",
        actor=user,
        obj=run,
        definition=definition.name,
        mode=mode,
    )
    transaction.on_commit(lambda: run_reconciliation.delay(run.pk))
    return run


#: a run queued or working for longer than this is taken for abandoned (its worker died)
ABANDONED_AFTER = dt.timedelta(hours=2)


def active_run(definition: Definition) -> Run | None:
    """The definition's run still in progress, if any; older ones are marked abandoned."""
    cutoff = timezone.now() - ABANDONED_AFTER
    runs = Run.objects.filter(definition=definition, status__in=IN_PROGRESS)
    runs.filter(created_at__lt=cutoff).update(
        status=Run.Status.FAILED,
        phase="abandoned",
        error="abandoned: no worker finished it within 2 hours",
        finished_at=timezone.now(),
    )
    return runs.filter(created_at__gte=cutoff).order_by("-created_at").first()


def _due_for_full(definition: Definition, trigger: str) -> bool:
    """A first run pulls everything; a scheduled run does every `full_pull_every`th time (only
    a full pull sees records deleted in their system); other runs pull what changed."""
    if definition.source_watermark is None or definition.target_watermark is None:
        return True
    if trigger != "schedule" or not definition.full_pull_every:
        return False
    earlier = Run.objects.filter(definition=definition, trigger="schedule").count()
    return earlier % definition.full_pull_every == 0


def execute(run_id: int) -> Run:
    """Pull, compare and summarise one run (idempotent: a redelivered run starts over)."""
    run = Run.objects.select_related("definition__source", "definition__target").get(pk=run_id)
    if run.status == Run.Status.DONE:
        return run
    definition = run.definition
    comparison = catalogue.get(definition.kind)
    _update(run, status=Run.Status.PULLING, started_at=timezone.now(), error="")
    try:
        converter = Converter(
            definition.target if comparison.target_system == "erp" else definition.source
        )
        full = run.mode == Run.Mode.FULL
        for side in (Side.SOURCE, Side.TARGET):
            _pull_side(run, comparison, converter, side, full=full)
        _update(run, status=Run.Status.COMPARING, phase="comparing both sides")
        started = time.perf_counter()
        outcome = compare.classify(run, source_records=run.source_records)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        with transaction.atomic():
            # done and its consequences (the KPI rollups) commit together
            _update(
                run,
                status=Run.Status.DONE,
                phase="done",
                finished_at=timezone.now(),
                compare_ms=elapsed_ms,
                **compare.summary(run, outcome),
            )
            run_finished.send(sender=Run, run=run, error=None)
    except Exception as exc:
        logger.exception("reconciliation run %s failed", run.pk)
        _update(
            run,
            status=Run.Status.FAILED,
            phase=f"failed while {run.phase}"[:200],
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        run_finished.send(sender=Run, run=run, error=exc)
        raise
    return run


def _pull_side(
    run: Run, comparison: catalogue.Comparison, converter: Converter, side: str, *, full: bool
) -> None:
    definition = run.definition
    connection = definition.source if side == Side.SOURCE else definition.target
    mark_field = f"{side}_watermark"
    watermark = getattr(definition, mark_field)
    since = None if full or watermark is None else watermark - OVERLAP
    counter = f"{side}_pulled"
    label = f"pulling {side} ({connection.name})"
    _update(run, phase=f"{label}: 0 records", **{counter: 0})

    def progress(pulled: int) -> None:
        _update(run, phase=f"{label}: {pulled:,} records", **{counter: pulled})

    sink = SnapshotSink(definition, side, run.pk, comparison, converter, on_progress=progress)
    calls = CallBuffer()
    context = PullContext(
        definition=definition,
        side=side,
        connection=connection,
        since=since,
        emit=sink.add,
        on_call=calls,
    )
    try:
        newest = comparison.puller(side)(context)
        sink.finish(full=since is None)
    finally:
        if "client" in context.__dict__:  # built on first use (a cached property)
            context.client.close()
        calls.flush()
    progress(sink.pulled)
    records = sink.records_now()
    _update(run, **{f"{side}_records": records})
    if newest is not None and (watermark is None or newest > watermark or since is None):
        setattr(definition, mark_field, newest)
        Definition.objects.filter(pk=definition.pk).update(**{mark_field: newest})


def _update(run: Run, **fields: object) -> None:
    """Save progress at once (outside any transaction: the page polling it sees it)."""
    for name, value in fields.items():
        setattr(run, name, value)
    Run.objects.filter(pk=run.pk).update(**fields)
