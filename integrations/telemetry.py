"""API-call telemetry: calls are buffered in memory and written in one bulk insert, because a
database row per call costs more than the call (see DESIGN.md, measured figures)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db.models import Q, QuerySet

from .connectors.http import CallRecord
from .models import ApiCall, SyncRun, SyncStep


class CallBuffer:
    """Collects CallRecords (the client's `on_call` sink) and writes them with `flush()`."""

    def __init__(self, run: SyncRun | None = None, step: SyncStep | None = None) -> None:
        self.run = run
        self.step = step
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()

    def __call__(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def flush(self) -> int:
        with self._lock:
            records, self._records = self._records, []
        rows = [call_row(r, run=self.run, step=self.step) for r in records]
        ApiCall.objects.bulk_create([r for r in rows if r is not None], batch_size=500)
        return len(rows)


def call_row(
    record: CallRecord,
    *,
    run: SyncRun | None = None,
    step: SyncStep | None = None,
    batch_key: str = "",
    runs_served: int = 1,
) -> ApiCall | None:
    if record.connection_id is None:
        return None
    return ApiCall(
        connection_id=record.connection_id,
        run=run,
        step=step,
        batch_key=batch_key,
        runs_served=runs_served,
        operation=record.operation[:80],
        method=record.method,
        path=record.path[:500],
        status_code=record.status,
        latency_ms=record.latency_ms,
        attempts=record.attempts,
        idempotency_key=record.idempotency_key or "",
        error_kind=record.error_kind,
        error_message=record.error_message[:500],
        rate_limit=record.rate_limit,
        started_at=record.started_at,
    )


class StepCalls:
    """Telemetry of one step executed for several runs at once.

    A call made while runs have the focus (`focus(run_ids)`) belongs to them: with one run,
    to that run's step. A call made for the whole batch, or for several runs (one bulk call
    serving them), is stored once, with the batch step's key (`SyncStep.batch_key`), so that
    each run's trace shows it and connector health counts it once.
    """

    def __init__(self, steps: dict[int, SyncStep], batch_key: str) -> None:
        self.steps = steps  # run id -> its step record
        self.batch_key = batch_key
        self._focus: tuple[int, ...] | None = None
        self._rows: list[ApiCall] = []
        self._lock = threading.Lock()

    @contextmanager
    def focus(self, run_ids: Iterable[int]) -> Iterator[None]:
        previous, self._focus = self._focus, tuple(run_ids)
        try:
            yield
        finally:
            self._focus = previous

    def __call__(self, record: CallRecord) -> None:
        served = self._focus if self._focus is not None else tuple(self.steps)
        if len(served) == 1:
            step = self.steps[served[0]]
            row = call_row(record, step=step)
            if row is not None:
                row.run_id = step.run_id
        else:
            row = call_row(record, batch_key=self.batch_key, runs_served=len(served))
        if row is not None:
            with self._lock:
                self._rows.append(row)

    def flush(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
        ApiCall.objects.bulk_create(rows, batch_size=500)
        return len(rows)


def calls_of_runs(run_ids: Iterable[int]) -> QuerySet[ApiCall]:
    """Every call made for these runs: their own, and the bulk calls their steps shared."""
    ids = list(run_ids)
    shared = SyncStep.objects.filter(run_id__in=ids).exclude(batch_key="").values("batch_key")
    return ApiCall.objects.filter(Q(run_id__in=ids) | Q(batch_key__in=shared))
