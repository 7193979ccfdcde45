"""Running an extract: the rows of its dataset changed since its watermark, written as one CSV
or Parquet file (a temporary file renamed into place, `<dataset>-<UTC stamp>.csv|parquet`),
then the watermark advanced in the same transaction as the run's record. A run that finds
nothing new writes no file; a failed run leaves the watermark where it was."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console import audit
from console.models import User

from . import datasets
from .datasets import BOOLEAN, DATE, INTEGER, MONEY, QUANTITY, TIMESTAMP, Column, Row
from .models import Extract, ExtractRun

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")

try:  # Parquet needs pyarrow (a dependency; CSV works without it)
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover
    pa = pq = None


def parquet_available() -> bool:
    return pa is not None


# -- values ----------------------------------------------------------------------------------
def utc_iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def csv_value(column: Column, value: Any) -> str:
    if value is None:
        return ""
    if column.kind in (MONEY, QUANTITY):
        return str(Decimal(str(value)).quantize(CENT))
    if column.kind == TIMESTAMP:
        return utc_iso(value)
    if column.kind == DATE:
        return value.isoformat()
    if column.kind == BOOLEAN:
        return "true" if value else "false"
    return str(value)


def _arrow_type(kind: str) -> Any:
    return {
        MONEY: pa.decimal128(18, 2),
        QUANTITY: pa.decimal128(12, 2),
        TIMESTAMP: pa.timestamp("us", tz="UTC"),
        DATE: pa.date32(),
        INTEGER: pa.int64(),
        BOOLEAN: pa.bool_(),
    }.get(kind, pa.string())


def _arrow_value(column: Column, value: Any) -> Any:
    if value is None:
        return None
    if column.kind in (MONEY, QUANTITY):
        return Decimal(str(value)).quantize(CENT)
    if column.kind == TIMESTAMP:
        return value.astimezone(dt.UTC)
    if column.kind == INTEGER:
        return int(value)
    if column.kind in (DATE, BOOLEAN):
        return value
    return str(value)


# -- files -----------------------------------------------------------------------------------
def write_csv(path: Path, columns: tuple[Column, ...], rows: list[Row]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.name for c in columns])
        for row in rows:
            writer.writerow([csv_value(c, row.values.get(c.name)) for c in columns])


def write_parquet(path: Path, columns: tuple[Column, ...], rows: list[Row]) -> None:
    if pa is None:
        raise RuntimeError("Parquet needs pyarrow, which is not installed: use CSV.")
    schema = pa.schema([pa.field(c.name, _arrow_type(c.kind)) for c in columns])
    data = {c.name: [_arrow_value(c, row.values.get(c.name)) for row in rows] for c in columns}
    pq.write_table(pa.Table.from_pydict(data, schema=schema), path)


def write_file(extract: Extract, rows: list[Row], now: dt.datetime) -> Path:
    """Write `rows` to a new file in the extract's folder; return its path."""
    dataset = datasets.DATASETS[extract.dataset]
    folder = extract.folder
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{extract.dataset}-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    final = folder / f"{stem}.{extract.format}"
    n = 1
    while final.exists():
        n += 1
        final = folder / f"{stem}-{n}.{extract.format}"
    handle, temp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=folder)
    os.close(handle)
    temp = Path(temp_name)
    try:
        if extract.format == Extract.Format.PARQUET:
            write_parquet(temp, dataset.columns, rows)
        else:
            write_csv(temp, dataset.columns, rows)
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return final


# -- running ---------------------------------------------------------------------------------
def run_extract(
    extract: Extract, *, actor: User | None = None, now: dt.datetime | None = None
) -> ExtractRun:
    """Run `extract` once: rows changed since its watermark to a new file. Never raises for a
    failed extract: the run records the error (the watermark stays)."""
    started = now or timezone.now()
    label = actor.get_username() if actor is not None else "schedule"
    written: Path | None = None
    try:
        with transaction.atomic():
            locked = Extract.objects.select_for_update().get(pk=extract.pk)
            after = (locked.watermark_at, locked.watermark_id) if locked.watermark_at else None
            until = started - dt.timedelta(seconds=settings.EXTRACTS_SETTLE_SECONDS)
            rows = datasets.changed_rows(locked.dataset, after, until)
            run = ExtractRun(
                extract=locked,
                started_at=started,
                watermark_from=locked.watermark_at,
                triggered_by=label,
            )
            if rows:
                written = write_file(locked, rows, started)
                last = rows[-1]
                locked.watermark_at, locked.watermark_id = last.position
                locked.save(update_fields=["watermark_at", "watermark_id", "updated_at"])
                run.status = ExtractRun.Status.SUCCEEDED
                run.rows = len(rows)
                run.file_path = str(written)
                run.bytes = written.stat().st_size
            else:
                run.status = ExtractRun.Status.EMPTY
            run.watermark_to = locked.watermark_at
            run.finished_at = timezone.now()
            run.save()
    except Exception as exc:
        if written is not None:  # the transaction rolled back: the file is not extracted
            written.unlink(missing_ok=True)
        logger.exception("extract %s failed", extract.name)
        run = ExtractRun.objects.create(
            extract=extract,
            started_at=started,
            finished_at=timezone.now(),
            status=ExtractRun.Status.FAILED,
            watermark_from=extract.watermark_at,
            watermark_to=extract.watermark_at,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            triggered_by=label,
        )
    audit.record(
        "reporting.extract.run",
        summary_of(run),
        actor=actor,
        obj=extract,
        status=run.status,
        rows=run.rows,
        file=run.file_path,
    )
    return run


def summary_of(run: ExtractRun) -> str:
    name = run.extract.name
    if run.status == ExtractRun.Status.SUCCEEDED:
        return f"Extract {name}: {run.rows} changed rows written to {Path(run.file_path).name}"
    if run.status == ExtractRun.Status.EMPTY:
        return f"Extract {name}: nothing changed since the last extract, no file written"
    return f"Extract {name} failed: {run.error[:200]}"
