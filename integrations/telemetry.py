"""API-call telemetry: calls are buffered in memory and written in one bulk insert, because a
database row per call costs more than the call (see DESIGN.md, measured figures)."""

from __future__ import annotations

import threading

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
        rows = [
            ApiCall(
                connection_id=r.connection_id,
                run=self.run,
                step=self.step,
                operation=r.operation[:80],
                method=r.method,
                path=r.path[:500],
                status_code=r.status,
                latency_ms=r.latency_ms,
                attempts=r.attempts,
                idempotency_key=r.idempotency_key or "",
                error_kind=r.error_kind,
                error_message=r.error_message[:500],
                rate_limit=r.rate_limit,
                started_at=r.started_at,
            )
            for r in records
            if r.connection_id is not None
        ]
        ApiCall.objects.bulk_create(rows, batch_size=500)
        return len(rows)
