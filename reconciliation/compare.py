"""The comparison: both sides' snapshots joined set-wise in the database (one FULL OUTER JOIN
on the canonical key), every key classified in the same statement that stores the differences.

Nothing is loaded into Python but the counts, so the run's memory does not grow with the
number of records: a million invoices a side are compared by PostgreSQL (or SQLite, which has
FULL OUTER JOIN since 3.39) while the worker waits.

Classes, per key:
- duplicate: a side holds more than one record for the key (one difference per such side);
- missing in target / missing in source: only one side has it;
- field mismatch: both have it, and the amount differs by more than the tolerance (after
  conversion into the legal entity's currency), the status differs, the date differs by more
  than the tolerance, or the other compared fields differ (their digest);
- matched: the rest (counted, not stored).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from . import catalogue
from .differences import signature
from .models import Acceptance, Definition, Difference, Kind, Run, Side, SnapshotRecord

SNAPSHOT = SnapshotRecord._meta.db_table
DIFFERENCE = Difference._meta.db_table

COLUMNS = (
    "run_id, key, kind, side, legal_entity, currency, source_id, target_id, source_amount, "
    "target_amount, amount_at_risk, source_status, target_status, source_day, target_day, "
    "source_fields, target_fields, state, updated_at"
)

#: PostgreSQL: the keys of both sides joined by a merge of two index-only scans of
#: `snapshot_key` (key order; OFFSET 0 keeps the planner from flattening the sub-queries,
#: which would hide that order from the FULL JOIN)
PAIRS_FULL_JOIN = """
    SELECT s.id AS sid, t.id AS tid
    FROM (SELECT id, key, copies, cmp_hash FROM {table}
          WHERE definition_id = %s AND side = 'source' ORDER BY key OFFSET 0) s
    FULL OUTER JOIN
         (SELECT id, key, copies, cmp_hash FROM {table}
          WHERE definition_id = %s AND side = 'target' ORDER BY key OFFSET 0) t
    ON s.key = t.key
    WHERE COALESCE(s.copies, 1) = 1 AND COALESCE(t.copies, 1) = 1
      AND (s.id IS NULL OR t.id IS NULL OR s.cmp_hash <> t.cmp_hash)
"""

#: SQLite (FULL JOIN since 3.39, but it materialises a sub-query side without an index, in
#: time that grows with the square of the records): the same pairs as a LEFT JOIN through
#: the index plus the target's keys the source lacks
PAIRS_LEFT_JOIN = """
    SELECT s.id AS sid, t.id AS tid
    FROM {table} s
    LEFT JOIN {table} t
      ON t.definition_id = s.definition_id AND t.side = 'target' AND t.key = s.key
    WHERE s.definition_id = %s AND s.side = 'source' AND s.copies = 1
      AND COALESCE(t.copies, 1) = 1 AND (t.id IS NULL OR s.cmp_hash <> t.cmp_hash)
    UNION ALL
    SELECT NULL, t.id
    FROM {table} t
    WHERE t.definition_id = %s AND t.side = 'target' AND t.copies = 1
      AND NOT EXISTS (
          SELECT 1 FROM {table} s
          WHERE s.definition_id = t.definition_id AND s.side = 'source' AND s.key = t.key
      )
"""


@dataclass(frozen=True)
class Outcome:
    matched: int
    missing_in_target: int
    missing_in_source: int
    field_mismatch: int
    duplicate: int
    accepted: int
    in_flight: int = 0

    def counts(self) -> dict[str, int]:
        """{class: how many}, named as the Run's fields."""
        return asdict(self)


def mismatch_condition(definition: Definition, comparison: catalogue.Comparison) -> str:
    """SQL true when two present, single records differ in a compared value."""
    tests = []
    if comparison.compares_amount:
        tolerance = int(definition.amount_tolerance_cents)
        tests.append(
            "(s.cmp_amount IS NULL) <> (t.cmp_amount IS NULL) "
            f"OR ABS(s.cmp_amount - t.cmp_amount) > {tolerance}"
        )
    if definition.compare_status:
        tests.append("s.status <> t.status")
    if comparison.compares_date:
        days = int(definition.date_tolerance_days)
        tests.append(f"(s.day IS NULL) <> (t.day IS NULL) OR ABS(s.day - t.day) > {days}")
    if comparison.extra_fields:
        tests.append("s.digest <> t.digest")
    return " OR ".join(f"({test})" for test in tests) or "1 = 0"


def pairs_sql() -> str:
    """The keys that are not plainly equal: (source id, target id) of each key held once on
    each side whose compared values' hashes differ, or held by one side only (its other id
    NULL). Keys held more than once on a side are left to the duplicates."""
    table = connection.ops.quote_name(SNAPSHOT)
    template = PAIRS_FULL_JOIN if connection.vendor == "postgresql" else PAIRS_LEFT_JOIN
    return template.format(table=table)


def classification_sql(definition: Definition, comparison: catalogue.Comparison) -> str:
    """One INSERT … SELECT storing every non-matching, non-duplicate key of the definition:
    the narrow join of the keys (pairs_sql), then the full rows of the few that differ, read
    by id, compared value by value with the definition's tolerances."""
    table = connection.ops.quote_name(SNAPSHOT)
    mismatch = mismatch_condition(definition, comparison)
    # only quoted table names and integer tolerances are formatted in; values are parameters
    return f"""
        INSERT INTO {connection.ops.quote_name(DIFFERENCE)} ({COLUMNS})
        SELECT %s, COALESCE(s.key, t.key),
               CASE WHEN t.id IS NULL THEN 'missing_in_target'
                    WHEN s.id IS NULL THEN 'missing_in_source'
                    ELSE 'field_mismatch' END,
               '', COALESCE(s.legal_entity, t.legal_entity), COALESCE(s.currency, t.currency),
               COALESCE(s.native_id, ''), COALESCE(t.native_id, ''),
               s.cmp_amount, t.cmp_amount,
               CASE WHEN t.id IS NULL THEN ABS(COALESCE(s.cmp_amount, 0))
                    WHEN s.id IS NULL THEN ABS(COALESCE(t.cmp_amount, 0))
                    ELSE COALESCE(ABS(s.cmp_amount - t.cmp_amount),
                                  ABS(COALESCE(s.cmp_amount, t.cmp_amount, 0))) END,
               COALESCE(s.status, ''), COALESCE(t.status, ''), s.day, t.day,
               s.fields, t.fields,
               CASE WHEN s.modified_at > %s OR t.modified_at > %s THEN 'in_flight'
                    ELSE 'open' END,
               %s
        FROM ({pairs_sql()}) p
        LEFT JOIN {table} s ON s.id = p.sid
        LEFT JOIN {table} t ON t.id = p.tid
        WHERE p.sid IS NULL OR p.tid IS NULL OR {mismatch}
    """  # noqa: S608


def duplicates_sql() -> str:
    """One difference per key and side holding more than one record; at risk: every copy but
    one (billed twice)."""
    return f"""
        INSERT INTO {connection.ops.quote_name(DIFFERENCE)} ({COLUMNS})
        SELECT %s, key, 'duplicate', side, MIN(legal_entity), MIN(currency),
               CASE WHEN side = 'source' THEN MIN(native_id) ELSE '' END,
               CASE WHEN side = 'target' THEN MIN(native_id) ELSE '' END,
               CASE WHEN side = 'source' THEN SUM(cmp_amount) END,
               CASE WHEN side = 'target' THEN SUM(cmp_amount) END,
               COALESCE(SUM(ABS(cmp_amount)) - MIN(ABS(cmp_amount)), 0),
               '', '', NULL, NULL, NULL, NULL, 'open', %s
        FROM {connection.ops.quote_name(SNAPSHOT)}
        WHERE definition_id = %s AND copies > 1
        GROUP BY side, key
    """  # noqa: S608


def classify(run: Run, *, source_records: int | None = None) -> Outcome:
    """Compare the definition's snapshots and store the run's differences (replacing any a
    previous attempt of the same run stored); return the counts.

    `source_records`: how many records the source side's snapshot holds, as the pull that
    just wrote it counted them (runs.execute passes it); without it they are counted here, a
    scan of the side's index that costs as much as a tenth of the whole comparison."""
    definition = run.definition
    comparison = catalogue.get(definition.kind)
    now = timezone.now()
    with transaction.atomic():
        Difference.objects.filter(run=run).delete()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # compiling the comparison's expressions costs more than it saves here
                cursor.execute("SET LOCAL jit = off")
            settled_before = now - dt.timedelta(minutes=definition.settle_minutes)
            cursor.execute(
                classification_sql(definition, comparison),
                [run.pk, settled_before, settled_before, now, definition.pk, definition.pk],
            )
            cursor.execute(duplicates_sql(), [run.pk, now, definition.pk])
        _describe_duplicates(run)
        accepted = apply_acceptances(run)
        source = SnapshotRecord.objects.filter(definition=definition, side=Side.SOURCE)
        if source_records is None:
            single_source = source.filter(copies=1).count()
        else:  # the copies of duplicated keys are few, found through their partial index
            single_source = source_records - source.filter(copies__gt=1).count()
    counts = dict(Difference.objects.filter(run=run).values_list("kind").annotate(n=Count("id")))
    in_flight = Difference.objects.filter(run=run, state=Difference.State.IN_FLIGHT).count()
    missing_in_target = counts.get(Kind.MISSING_IN_TARGET, 0)
    mismatch = counts.get(Kind.FIELD_MISMATCH, 0)
    return Outcome(
        matched=_matched(definition, single_source, missing_in_target, mismatch),
        missing_in_target=missing_in_target,
        missing_in_source=counts.get(Kind.MISSING_IN_SOURCE, 0),
        field_mismatch=mismatch,
        duplicate=counts.get(Kind.DUPLICATE, 0),
        accepted=accepted,
        in_flight=in_flight,
    )


def _matched(definition: Definition, single_source: int, missing: int, mismatch: int) -> int:
    """Source keys held once that the target holds once with equal values: every single
    source key that is not missing, mismatched, or duplicated on the target side."""
    duplicated_in_target = (
        SnapshotRecord.objects.filter(definition=definition, side=Side.TARGET, copies__gt=1)
        .values("key")
        .distinct()
    )
    also_single_in_source = SnapshotRecord.objects.filter(
        definition=definition, side=Side.SOURCE, copies=1, key__in=duplicated_in_target
    ).count()
    return single_source - missing - mismatch - also_single_in_source


def _describe_duplicates(run: Run) -> None:
    """A duplicate's record ids and values, side by side (duplicates are few)."""
    dups = list(Difference.objects.filter(run=run, kind=Kind.DUPLICATE))
    for diff in dups:
        rows = SnapshotRecord.objects.filter(
            definition_id=run.definition_id, side=diff.side, key=diff.key
        ).order_by("native_id")
        copies = {row.native_id: row.fields for row in rows}
        described = {"copies": str(len(copies)), "records": ", ".join(copies)}
        if diff.side == Side.SOURCE:
            diff.source_fields = described
        else:
            diff.target_fields = described
    Difference.objects.bulk_update(dups, ["source_fields", "target_fields"], batch_size=500)


def apply_acceptances(run: Run) -> int:
    """Mark the differences finance already accepted with the same values; return how many."""
    acceptances = Acceptance.objects.filter(definition_id=run.definition_id)
    by_key: dict[tuple[str, str], list[Acceptance]] = {}
    for acceptance in acceptances.iterator():
        by_key.setdefault((acceptance.key, acceptance.kind), []).append(acceptance)
    if not by_key:
        return 0
    keys = sorted({key for key, _ in by_key})
    accepted: list[Difference] = []
    for start in range(0, len(keys), 500):
        chunk = Difference.objects.filter(run=run, key__in=keys[start : start + 500])
        for diff in chunk.select_related("run__definition"):
            for acceptance in by_key.get((diff.key, diff.kind), ()):
                if acceptance.signature == signature(diff):
                    diff.state = Difference.State.ACCEPTED
                    diff.acceptance = acceptance
                    accepted.append(diff)
                    break
    Difference.objects.bulk_update(accepted, ["state", "acceptance"], batch_size=500)
    return len(accepted)


def at_risk(run: Run) -> list[dict[str, object]]:
    """Open differences and their money per legal entity and currency, largest first (not
    the accepted ones, nor those in flight)."""
    rows = (
        Difference.objects.filter(run=run)
        .exclude(state__in=[Difference.State.ACCEPTED, Difference.State.IN_FLIGHT])
        .values("legal_entity", "currency")
        .annotate(
            amount=Sum("amount_at_risk"),
            differences=Count("id"),
            missing=Count("id", filter=Q(kind__startswith="missing")),
        )
        .order_by("-amount", "legal_entity")
    )
    return [
        {
            "legal_entity": row["legal_entity"],
            "currency": row["currency"],
            "amount_minor": int(row["amount"] or 0),
            "differences": row["differences"],
            "missing": row["missing"],
        }
        for row in rows
    ]


def summary(run: Run, outcome: Outcome) -> dict[str, object]:
    """What a finished run keeps of its comparison (Run's fields): the count of each class,
    the money at risk and the figures per legal entity."""
    return {
        **outcome.counts(),
        "at_risk": at_risk(run),
        "by_entity": by_entity(run),
    }


def by_entity(run: Run) -> list[dict[str, object]]:
    """Keys compared (settled: not in flight), matched and accepted per legal entity, by the
    same arithmetic as the run's totals (so they add up to them)."""
    definition = run.definition
    snapshot = SnapshotRecord.objects.filter(definition=definition)
    single_source = dict(
        snapshot.filter(side=Side.SOURCE, copies=1)
        .values_list("legal_entity")
        .annotate(n=Count("id"))
    )
    duplicated_in_target = snapshot.filter(side=Side.TARGET, copies__gt=1).values("key").distinct()
    also_duplicated = dict(
        snapshot.filter(side=Side.SOURCE, copies=1, key__in=duplicated_in_target)
        .values_list("legal_entity")
        .annotate(n=Count("id"))
    )
    kinds: dict[str, dict[str, int]] = {}
    accepted: dict[str, int] = {}
    in_flight: dict[str, int] = {}
    rows = (
        Difference.objects.filter(run=run)
        .values_list("legal_entity", "kind", "state")
        .annotate(n=Count("id"))
    )
    for entity, kind, state, n in rows:
        kinds.setdefault(entity, {}).setdefault(kind, 0)
        kinds[entity][kind] += n
        if state == Difference.State.ACCEPTED:
            accepted[entity] = accepted.get(entity, 0) + n
        if state == Difference.State.IN_FLIGHT:
            in_flight[entity] = in_flight.get(entity, 0) + n
    result = []
    for entity in sorted(set(single_source) | set(kinds)):
        found = kinds.get(entity, {})
        missing_in_target = found.get(Kind.MISSING_IN_TARGET, 0)
        mismatch = found.get(Kind.FIELD_MISMATCH, 0)
        matched = (
            single_source.get(entity, 0)
            - missing_in_target
            - mismatch
            - also_duplicated.get(entity, 0)
        )
        compared = matched + sum(found.values()) - in_flight.get(entity, 0)
        result.append(
            {
                "legal_entity": entity,
                "compared": compared,
                "matched": matched,
                "accepted": accepted.get(entity, 0),
                "in_flight": in_flight.get(entity, 0),
            }
        )
    return result
