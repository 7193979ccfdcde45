"""KPI rollups: hourly and daily aggregates of the observations (dashboards.observations),
kept up to date incrementally and recomputable from the raw records.

- `record` / `record_many` add observations to their hour's and day's rows with one upsert
  (`INSERT ... ON CONFLICT DO UPDATE SET count = count + excluded.count, ...`) for the whole
  batch, in the caller's transaction: the rollup moves exactly when the facts commit. Rows
  are written in key order so concurrent writers lock them in the same order (no deadlock on
  PostgreSQL); the database adds, so concurrent writers never lose an increment.
- `rebuild(since)` recomputes every row from the raw records (from the start of `since`'s
  day) and replaces the stored ones; `check(since)` computes the same and lists every
  difference with the stored rows. They must agree exactly: values are integers (seconds,
  cents, 0/1), so no rounding differs between the two paths or between databases.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

from .models import KpiRollup
from .observations import Dims, Observation, scan

logger = logging.getLogger(__name__)

HOUR, DAY = KpiRollup.Grain.HOUR.value, KpiRollup.Grain.DAY.value
GRAINS = (HOUR, DAY)
#: (kpi, grain, bucket, legal entity, region, connection id, currency)
RowKey = tuple[str, str, dt.datetime, str, str, int, str]
#: rows per INSERT statement (11 parameters each: well under SQLite's limit)
ROWS_PER_STATEMENT = 500


def bucket(at: dt.datetime, grain: str) -> dt.datetime:
    """The start (UTC) of the hour or day `at` falls in."""
    utc = at.astimezone(dt.UTC)
    if grain == HOUR:
        return utc.replace(minute=0, second=0, microsecond=0)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Totals:
    """One rollup row's figures."""

    count: int
    total: int
    minimum: int
    maximum: int

    def add(self, count: int, total: int, minimum: int, maximum: int) -> None:
        self.count += count
        self.total += total
        self.minimum = min(self.minimum, minimum)
        self.maximum = max(self.maximum, maximum)


def aggregate(
    observations: Iterable[Observation], into: dict[RowKey, Totals] | None = None
) -> dict[RowKey, Totals]:
    """Sum observations into rollup rows (both grains)."""
    rows: dict[RowKey, Totals] = {} if into is None else into
    for obs in observations:
        d = obs.dims
        for grain in GRAINS:
            key = (
                obs.kpi,
                grain,
                bucket(obs.at, grain),
                d.legal_entity_code,
                d.region,
                d.connection_id,
                d.currency,
            )
            row = rows.get(key)
            if row is None:
                rows[key] = Totals(obs.count, obs.value * obs.count, obs.value, obs.value)
            else:
                row.add(obs.count, obs.value * obs.count, obs.value, obs.value)
    return rows


def record(
    kpi: str, at: dt.datetime, value: int, dims: Dims | None = None, *, count: int = 1
) -> int:
    """Add one observation (`count` items of `value` base units at `at`) to its hour and day."""
    return record_many([Observation(kpi, at, value, dims or Dims(), count=count)])


def record_many(observations: Iterable[Observation]) -> int:
    """Add observations to their rows: one upsert for all of them; returns the rows touched."""
    rows = aggregate(observations)
    if rows:
        _upsert(rows)
    return len(rows)


_COLUMNS = (
    "kpi",
    "grain",
    "bucket",
    "legal_entity_code",
    "region",
    "connection_id",
    "currency",
    "count",
    "total",
    "minimum",
    "maximum",
)


def _upsert(rows: dict[RowKey, Totals]) -> None:
    table = connection.ops.quote_name(KpiRollup._meta.db_table)
    if connection.vendor == "postgresql":
        least, greatest = "LEAST", "GREATEST"
    elif connection.vendor == "sqlite":
        least, greatest = "MIN", "MAX"
    else:  # pragma: no cover - the project runs on PostgreSQL and SQLite
        raise NotImplementedError(f"rollup upserts on {connection.vendor}")
    q = connection.ops.quote_name
    columns = ", ".join(q(c) for c in _COLUMNS)
    conflict = ", ".join(q(c) for c in _COLUMNS[:7])
    update = (
        f"{q('count')} = {table}.{q('count')} + excluded.{q('count')}, "
        f"{q('total')} = {table}.{q('total')} + excluded.{q('total')}, "
        f"{q('minimum')} = {least}({table}.{q('minimum')}, excluded.{q('minimum')}), "
        f"{q('maximum')} = {greatest}({table}.{q('maximum')}, excluded.{q('maximum')})"
    )
    placeholders = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    ordered = sorted(rows.items())  # one lock order for every writer
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), ROWS_PER_STATEMENT):
            part = ordered[start : start + ROWS_PER_STATEMENT]
            params: list[object] = []
            for (kpi, grain, when, entity, region, conn, currency), t in part:
                params += [
                    kpi,
                    grain,
                    connection.ops.adapt_datetimefield_value(when),
                    entity,
                    region,
                    conn,
                    currency,
                    t.count,
                    t.total,
                    t.minimum,
                    t.maximum,
                ]
            # only quoted identifiers and placeholders are formatted in: the values are params
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
                f"{', '.join([placeholders] * len(part))} "
                f"ON CONFLICT ({conflict}) DO UPDATE SET {update}",
                params,
            )


# -- rebuild and check ----------------------------------------------------------------------


def start_of_day(since: dt.datetime | None) -> dt.datetime | None:
    return None if since is None else bucket(since, DAY)


def compute(since: dt.datetime | None = None) -> dict[RowKey, Totals]:
    """Every rollup row from the start of `since`'s day (None: all time), from the raw
    records alone."""
    return aggregate(scan(start_of_day(since)))


def stored(since: dt.datetime | None = None) -> dict[RowKey, Totals]:
    """The rollup rows as they are stored, from the start of `since`'s day."""
    rows = KpiRollup.objects.all()
    start = start_of_day(since)
    if start is not None:
        rows = rows.filter(bucket__gte=start)
    return {
        (r[0], r[1], r[2], r[3], r[4], r[5], r[6]): Totals(r[7], r[8], r[9], r[10])
        for r in rows.values_list(*_COLUMNS).iterator(chunk_size=5000)
    }


@dataclass(frozen=True)
class Difference:
    """A rollup row the raw records and the stored rollups disagree on (None: missing)."""

    key: RowKey
    expected: Totals | None
    stored: Totals | None

    def __str__(self) -> str:
        kpi, grain, when, entity, region, conn, currency = self.key
        where = ", ".join(
            part
            for part in (
                entity and f"legal entity {entity}",
                region and f"region {region}",
                conn and f"connection {conn}",
                currency,
            )
            if part
        )
        return (
            f"{kpi} {grain} {when:%Y-%m-%d %H:%M}Z{' (' + where + ')' if where else ''}: "
            f"raw records say {_figures(self.expected)}, rollup has {_figures(self.stored)}"
        )


def _figures(t: Totals | None) -> str:
    if t is None:
        return "nothing"
    return f"count {t.count}, total {t.total}, min {t.minimum}, max {t.maximum}"


def differences(expected: dict[RowKey, Totals], actual: dict[RowKey, Totals]) -> list[Difference]:
    out = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key), actual.get(key)
        if e != a:
            out.append(Difference(key, e, a))
    return out


def check(since: dt.datetime | None = None) -> list[Difference]:
    """Compare the stored rollups with a recomputation from the raw records (read in one
    consistent snapshot on PostgreSQL, without blocking writers)."""
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if snapshot:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return differences(compute(since), stored(since))


@dataclass(frozen=True)
class RebuildResult:
    since: dt.datetime | None
    deleted: int
    written: int


def rebuild(since: dt.datetime | None = None) -> RebuildResult:
    """Recompute every rollup row from the start of `since`'s day (None: all) from the raw
    records, and replace the stored rows with them, in one transaction.

    Writers of new facts wait while it runs (on PostgreSQL the table is locked against
    writes first; on SQLite the delete takes the write lock first), so an event recorded
    meanwhile is counted exactly once: in the rebuild if it committed before, by its own
    upsert after."""
    start = start_of_day(since)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                table = connection.ops.quote_name(KpiRollup._meta.db_table)
                cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        rows = KpiRollup.objects.all()
        if start is not None:
            rows = rows.filter(bucket__gte=start)
        deleted, _ = rows.delete()
        computed = compute(start)
        KpiRollup.objects.bulk_create(
            [
                KpiRollup(
                    kpi=kpi,
                    grain=grain,
                    bucket=when,
                    legal_entity_code=entity,
                    region=region,
                    connection_id=conn,
                    currency=currency,
                    count=t.count,
                    total=t.total,
                    minimum=t.minimum,
                    maximum=t.maximum,
                )
                for (kpi, grain, when, entity, region, conn, currency), t in sorted(
                    computed.items()
                )
            ],
            batch_size=1000,
        )
    logger.info("rollups rebuilt since %s: %d rows replaced by %d", start, deleted, len(computed))
    return RebuildResult(start, deleted, len(computed))
