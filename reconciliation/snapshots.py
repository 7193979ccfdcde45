"""Writing a side's pulled records into its snapshot, in bulk, and keeping `copies` right.

An incremental pull upserts the records that changed (by native id); a full pull also removes
the rows it did not see (a record deleted in its system). After either, the keys touched get
their `copies` recounted, so duplicates are known before the comparison.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import Count

from .catalogue import Comparison
from .conversion import Converter, RateMissing
from .models import Definition, SnapshotRecord
from .records import PulledRecord, comparison_hash, day_number, digest, minor_units

BATCH = 1000

UPDATE_FIELDS = [
    "key",
    "legal_entity",
    "currency",
    "amount",
    "cmp_amount",
    "status",
    "day",
    "digest",
    "cmp_hash",
    "fields",
    "modified_at",
    "seen_in_run",
]


class SnapshotSink:
    """Collects one side's records for a run and writes them BATCH at a time."""

    def __init__(
        self,
        definition: Definition,
        side: str,
        run_id: int,
        comparison: Comparison,
        converter: Converter,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.definition = definition
        self.side = side
        self.run_id = run_id
        self.comparison = comparison
        self.converter = converter
        self.on_progress = on_progress
        self.pulled = 0
        self._rows: list[SnapshotRecord] = []
        self._keys: set[str] = set()

    def add(self, record: PulledRecord) -> None:
        self._rows.append(self._row(record))
        self._keys.add(record.key)
        if len(self._rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        # the same native id twice in one pull (a page overlap): the later one wins
        unique = {row.native_id: row for row in self._rows}
        SnapshotRecord.objects.bulk_create(
            list(unique.values()),
            update_conflicts=True,
            unique_fields=["definition", "side", "native_id"],
            update_fields=UPDATE_FIELDS,
        )
        self.pulled += len(self._rows)
        self._rows = []
        if self.on_progress is not None:
            self.on_progress(self.pulled)

    def finish(self, *, full: bool) -> None:
        """Write what is left; after a full pull drop the rows not seen; recount copies."""
        self.flush()
        rows = SnapshotRecord.objects.filter(definition=self.definition, side=self.side)
        with transaction.atomic():
            if full:
                gone = rows.exclude(seen_in_run=self.run_id)
                self._keys.update(gone.values_list("key", flat=True).distinct())
                gone.delete()
            recount_copies(self.definition, self.side, self._keys if not full else None)

    def records_now(self) -> int:
        """Records this side's snapshot holds after the pull."""
        return SnapshotRecord.objects.filter(definition=self.definition, side=self.side).count()

    def _row(self, record: PulledRecord) -> SnapshotRecord:
        cmp_amount = None
        currency = record.currency
        if record.amount is not None:
            try:
                converted, currency = self.converter.to_entity_currency(
                    record.amount, record.currency, record.legal_entity, record.day
                )
            except RateMissing as exc:
                # compared as unconvertible: shown as a mismatch with the reason, not dropped
                converted = None
                record.fields.setdefault("conversion", str(exc))
            cmp_amount = minor_units(converted)
        status = record.status[:40]
        day = day_number(record.day)
        fingerprint = digest(record.fields, self.comparison.extra_fields)
        return SnapshotRecord(
            definition=self.definition,
            side=self.side,
            key=record.key[:160],
            native_id=record.native_id[:120],
            legal_entity=record.legal_entity[:20],
            currency=(currency or "")[:3],
            amount=minor_units(record.amount),
            cmp_amount=cmp_amount,
            status=status,
            day=day,
            digest=fingerprint,
            cmp_hash=comparison_hash(cmp_amount, status, day, fingerprint),
            fields={
                **record.fields,
                **(
                    {"amount": str(record.amount), "currency": record.currency}
                    if record.amount is not None
                    else {}
                ),
            },
            modified_at=record.modified_at,
            seen_in_run=self.run_id,
        )


def recount_copies(definition: Definition, side: str, keys: set[str] | None) -> None:
    """Set `copies` of the rows with these keys (all rows when None) to the key's count."""
    rows = SnapshotRecord.objects.filter(definition=definition, side=side)
    scope = rows if keys is None else rows.filter(key__in=keys)
    if keys is not None and not keys:
        return
    if keys is not None and len(keys) > 5000:
        scope = rows  # cheaper than a huge IN list
    counts = scope.values("key").annotate(n=Count("id")).filter(n__gt=1).values_list("key", "n")
    multiple = dict(counts)
    # rows no longer duplicated go back to 1, duplicated ones get their count
    scope.exclude(copies=1).exclude(key__in=list(multiple)).update(copies=1)
    by_count: dict[int, list[str]] = {}
    for key, n in multiple.items():
        by_count.setdefault(n, []).append(key)
    for n, keys_of_n in by_count.items():
        for start in range(0, len(keys_of_n), 500):
            rows.filter(key__in=keys_of_n[start : start + 500]).update(copies=n)
