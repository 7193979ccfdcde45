"""`manage.py bench reconciliation`: the classification of a million invoices a side, beside
a pandas outer merge and a bare SQL FULL OUTER JOIN of the same rows, in one run.

In a fresh database on the configured server, the bench loads two invoice definitions
(PSA milestones vs ERP invoices) straight into the snapshot table, `records` invoices a side
and, for the memory comparison, `small` a side (PostgreSQL COPY; batched executemany on
SQLite). Of each, 1% of the keys only the source holds (missing in target), 1% only the target
holds (missing in source) and 1% carry a different amount on the target (field mismatch),
spread over the key range; the rest match. Loading is not timed.

Then, for each size, the median of three rounds (after one warm-up) of:
1. Throughline: `reconciliation.compare.classify(run)` on a new run, the whole function
   (the statement storing the differences, the duplicates, acceptances and the counts); every
   round must find exactly the seeded differences. The bench process's resident memory is
   watched around each call: its high-water mark is reset before the call (Linux
   /proc/self/clear_refs), so the peak is the call's own; the delta is that peak minus the
   memory before the call. The process's peak over the whole Throughline part (loading
   included) is reported too. All Throughline rounds run before any pandas round, so pandas'
   memory never counts against it.
2. the bare join: `SELECT count(*) FROM (source keys) s FULL OUTER JOIN (target keys) t ON
   s.key = t.key` over the same rows;
3. pandas: both sides read from the database into DataFrames (the loading timed), one outer
   merge on the key with an indicator, the same classes counted (pandas does not store the
   differences: the baseline is favoured there).
Targets, at `records`: the classification at least 2x faster than pandas, at most 2x the bare
join, its peak memory under 300 MB at both sizes and not growing with the records (the
`records` peak at most 16 MB over the `small` peak). Ends with one JSON line.
"""

from __future__ import annotations

import gc
import json
import math
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.db import connection, transaction

from integrations.benchmarks.workers import analyze, isolated_database
from integrations.choices import AuthKind, SystemKind, Vendor
from integrations.models import Connection

from . import compare
from .models import Definition, Run, Side, SnapshotRecord
from .records import comparison_hash, digest

ROUNDS = 3
SPEEDUP_VS_PANDAS_MIN = 2.0
VS_BARE_JOIN_MAX = 2.0
PEAK_MEMORY_MB_MAX = 300.0
#: how much more the classification's peak may be at `records` than at `small`
MEMORY_GROWTH_MB_MAX = 16.0
BATCH = 10_000
#: one key in SHARE_DIVISOR is missing in the target, one missing in the source, one mismatched
SHARE_DIVISOR = 100
ENTITIES = (("UK01", "GBP"), ("US01", "USD"), ("DE01", "EUR"))
CUSTOMERS = 1000
FIRST_DAY = 20_000  # 2024-10-04, as a day number

COLUMNS = (
    "definition_id",
    "side",
    "key",
    "native_id",
    "copies",
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
)
#: what the pandas baseline reads of each side: everything the classification compares
FRAME_COLUMNS = ("key", "native_id", "copies", "cmp_amount", "status", "day", "digest")


def run(*, records: int = 1_000_000, small: int = 100_000, out: Any = None) -> dict[str, Any]:
    """The whole bench in a fresh database of its own (created and dropped here)."""
    say = out.write if out is not None else print
    with isolated_database("reconciliation"):
        return measure(records=records, small=small, say=say)


def measure(*, records: int, small: int, say: Any = print) -> dict[str, Any]:
    """Load both sizes, then measure (in the current database)."""
    if records <= small:
        raise CommandError("--records must be more than --small")
    memory = PeakMemory()
    definitions: dict[str, tuple[Definition, Seeded]] = {}
    for label, size in (("small", small), ("large", records)):
        t0 = time.perf_counter()
        definition = _definition(size)
        seeded = load(definition, size)
        definitions[label] = (definition, seeded)
        say(
            f"loaded {size:,} invoices a side ({seeded.missing_in_target:,} missing in target, "
            f"{seeded.missing_in_source:,} missing in source, {seeded.field_mismatch:,} "
            f"amounts differ) in {time.perf_counter() - t0:.1f} s\n"
        )
    analyze(SnapshotRecord)

    figures: dict[str, dict[str, Any]] = {}
    for label, (definition, seeded) in definitions.items():
        figures[label] = {"records": seeded.records, "seeded": asdict_seeded(seeded)}
        figures[label] |= _measure_throughline(definition, seeded, memory)
        say(
            f"  {label}: classify {figures[label]['classify_s']:.3f} s, peak "
            f"{figures[label]['classify_peak_mb']:.1f} MB, bare join "
            f"{figures[label]['bare_join_s']:.3f} s\n"
        )
    throughline_process_peak = round(memory.process_peak(), 1)
    for label, (definition, seeded) in definitions.items():
        figures[label] |= _measure_pandas(definition, seeded, memory)
        say(f"  {label}: pandas {figures[label]['pandas_s']:.3f} s\n")
    return _result(figures, throughline_process_peak, memory.exact, say)


def _result(
    figures: dict[str, dict[str, Any]], process_peak: float, exact: bool, say: Any
) -> dict[str, Any]:
    large, small = figures["large"], figures["small"]
    speedup = round(large["pandas_s"] / max(large["classify_s"], 1e-6), 2)
    vs_join = round(large["classify_s"] / max(large["bare_join_s"], 1e-6), 2)
    growth = round(large["classify_peak_mb"] - small["classify_peak_mb"], 1)
    peak = max(large["classify_peak_mb"], small["classify_peak_mb"])
    met = {
        "speedup_vs_pandas": speedup >= SPEEDUP_VS_PANDAS_MIN,
        "vs_bare_join": vs_join <= VS_BARE_JOIN_MAX,
        "peak_memory": peak < PEAK_MEMORY_MB_MAX,
        "memory_independent_of_records": growth <= MEMORY_GROWTH_MB_MAX,
        "classification_correct": large["classification_correct"]
        and small["classification_correct"],
        "pandas_agrees": large["pandas_correct"] and small["pandas_correct"],
    }
    say(_table(figures, speedup, vs_join, growth, process_peak, met))
    return {
        "bench": "reconciliation",
        "database": connection.vendor,
        "rounds": ROUNDS,
        "small": small,
        "large": large,
        "speedup_vs_pandas": speedup,
        "vs_bare_join": vs_join,
        "memory_growth_mb": growth,
        "throughline_process_peak_mb": process_peak,
        "memory_peak_per_call": exact,
        "targets": {
            "speedup_vs_pandas_min": SPEEDUP_VS_PANDAS_MIN,
            "vs_bare_join_max": VS_BARE_JOIN_MAX,
            "peak_memory_mb_max": PEAK_MEMORY_MB_MAX,
            "memory_growth_mb_max": MEMORY_GROWTH_MB_MAX,
        },
        "met": met,
    }


def _table(
    figures: dict[str, dict[str, Any]],
    speedup: float,
    vs_join: float,
    growth: float,
    process_peak: float,
    met: dict[str, bool],
) -> str:
    small, large = figures["small"], figures["large"]
    rows = [
        ("invoices a side", f"{small['records']:,}", f"{large['records']:,}"),
        (
            "differences seeded",
            f"{small['expected_differences']:,}",
            f"{large['expected_differences']:,}",
        ),
        ("Throughline classify (s)", f"{small['classify_s']:.3f}", f"{large['classify_s']:.3f}"),
        ("  peak RSS in call (MB)", small["classify_peak_mb"], large["classify_peak_mb"]),
        ("  RSS growth in call (MB)", small["classify_delta_mb"], large["classify_delta_mb"]),
        ("bare FULL OUTER JOIN (s)", f"{small['bare_join_s']:.3f}", f"{large['bare_join_s']:.3f}"),
        ("pandas load + merge (s)", f"{small['pandas_s']:.3f}", f"{large['pandas_s']:.3f}"),
        ("  pandas peak RSS (MB)", small["pandas_peak_mb"], large["pandas_peak_mb"]),
    ]
    lines = [f"\nReconciliation bench on {connection.vendor} (median of {ROUNDS} rounds)\n"]
    lines.append(f"{'':28}{'small':>14}{'large':>14}\n")
    lines += [f"{name:28}{a!s:>14}{b!s:>14}\n" for name, a, b in rows]
    ok = {True: "met", False: "NOT met"}
    lines += [
        f"classify vs pandas: {speedup}x faster (target at least {SPEEDUP_VS_PANDAS_MIN}x): "
        f"{ok[met['speedup_vs_pandas']]}\n",
        f"classify vs bare join: {vs_join}x (target at most {VS_BARE_JOIN_MAX}x): "
        f"{ok[met['vs_bare_join']]}\n",
        f"classify peak memory: under {PEAK_MEMORY_MB_MAX:.0f} MB: {ok[met['peak_memory']]}; "
        f"{growth:+.1f} MB from small to large (at most {MEMORY_GROWTH_MB_MAX:.0f}): "
        f"{ok[met['memory_independent_of_records']]}\n",
        f"bench process peak before pandas (loading included): {process_peak} MB\n",
        f"classification found exactly the seeded differences: "
        f"{ok[met['classification_correct']]}; pandas agrees: {ok[met['pandas_agrees']]}\n",
    ]
    return "".join(lines)


# -- the data -----------------------------------------------------------------------------


class Seeded:
    """What a definition's snapshots hold: the counts the classification must find."""

    def __init__(self, records: int) -> None:
        self.records = records
        self.share = records // SHARE_DIVISOR
        #: keys in all: each side holds all but the `share` only the other side holds
        self.universe = records + self.share
        self.multiplier = _coprime(7919, self.universe)
        #: the order the records are pulled (and stored) in: not the keys' order
        self.pull_order = _coprime(104_729, self.universe)

    @property
    def missing_in_target(self) -> int:
        return self.share

    @property
    def missing_in_source(self) -> int:
        return self.share

    @property
    def field_mismatch(self) -> int:
        return self.share

    @property
    def matched(self) -> int:
        return self.universe - 3 * self.share

    def bucket(self, i: int) -> int:
        """0: source only, 1: target only, 2: amount differs, 3: matches. A permutation of
        the keys (a multiplier prime to their number) spreads each class over the range."""
        return min((i * self.multiplier) % self.universe // max(self.share, 1), 3)


def _coprime(start: int, n: int) -> int:
    while math.gcd(start, n) != 1:
        start += 2
    return start


def asdict_seeded(seeded: Seeded) -> dict[str, int]:
    return {
        "matched": seeded.matched,
        "missing_in_target": seeded.missing_in_target,
        "missing_in_source": seeded.missing_in_source,
        "field_mismatch": seeded.field_mismatch,
        "duplicate": 0,
        "accepted": 0,
        "in_flight": 0,
    }


def _definition(size: int) -> Definition:
    def conn(vendor: str, system: str, auth: str) -> Connection:
        return Connection.objects.get_or_create(
            name=f"Bench reconciliation {vendor}",
            defaults={
                "vendor": vendor,
                "system": system,
                "auth_kind": auth,
                "base_url": "http://127.0.0.1:9",
            },
        )[0]

    psa = conn(Vendor.KANTATA, SystemKind.PSA, AuthKind.BEARER_TOKEN)
    erp = conn(Vendor.NETSUITE, SystemKind.ERP, AuthKind.OAUTH_M2M)
    definition, _ = Definition.objects.get_or_create(
        name=f"bench-invoices-{size}",
        defaults={"kind": "invoices", "source": psa, "target": erp, "enabled": False},
    )
    SnapshotRecord.objects.filter(definition=definition).delete()
    return definition


def rows(definition_id: int, side: str, seeded: Seeded) -> Iterator[tuple[Any, ...]]:
    """The side's snapshot rows (COLUMNS), as the pullers would have written them: in the
    order of the records' ids in their system, which is not the order of the keys (so the
    table is not laid out in key order, as after real pulls)."""
    skip = 1 if side == Side.SOURCE else 0
    digests = [digest({"customer": f"Customer {c:04d}"}, ("customer",)) for c in range(CUSTOMERS)]
    for pulled in range(seeded.universe):
        i = pulled * seeded.pull_order % seeded.universe
        bucket = seeded.bucket(i)
        if bucket == skip:
            continue
        entity, currency = ENTITIES[i % len(ENTITIES)]
        amount = 10_000 + (i * 7727) % 5_000_000
        if bucket == 2 and side == Side.TARGET:
            amount += 100 * (1 + i % 50)
        customer = i % CUSTOMERS
        native = f"PSA-{pulled}" if side == Side.SOURCE else f"INV{pulled:09d}"
        fields = json.dumps(
            {
                "customer": f"Customer {customer:04d}",
                "amount": f"{amount // 100}.{amount % 100:02d}",
                "currency": currency,
            }
        )
        yield (
            definition_id,
            side,
            f"MS{i:09d}",
            native,
            1,
            entity,
            currency,
            amount,
            amount,
            "billed",
            FIRST_DAY + i % 365,
            digests[customer],
            comparison_hash(amount, "billed", FIRST_DAY + i % 365, digests[customer]),
            fields,
            None,
            0,
        )


def load(definition: Definition, records: int) -> Seeded:
    """`records` invoices a side into the definition's snapshots; return what was seeded."""
    seeded = Seeded(records)
    table = connection.ops.quote_name(SnapshotRecord._meta.db_table)
    columns = ", ".join(COLUMNS)
    for side in (Side.SOURCE, Side.TARGET):
        data = rows(definition.pk, side, seeded)
        if connection.vendor == "postgresql":
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    f"COPY {table} ({columns}) FROM STDIN"  # only fixed names are formatted in
                ) as copy,
            ):
                for row in data:
                    copy.write_row(row)
            continue
        marks = ", ".join(["%s"] * len(COLUMNS))
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608
        with transaction.atomic(), connection.cursor() as cursor:
            batch: list[tuple[Any, ...]] = []
            for row in data:
                batch.append(row)
                if len(batch) >= BATCH:
                    cursor.executemany(sql, batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
    return seeded


# -- memory -------------------------------------------------------------------------------


def _status_mb(field: str) -> float | None:
    """A VmRSS/VmHWM line of /proc/self/status in MB (None where there is none)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class PeakMemory:
    """The resident memory of this process around a call: its peak during the call (the
    kernel's high-water mark, reset before the call where Linux allows) and the process's
    peak over every call so far."""

    def __init__(self) -> None:
        self.exact = True
        self._process_peak = 0.0

    def start(self) -> float:
        """Reset the high-water mark; return the memory now (MB)."""
        gc.collect()
        self._process_peak = max(self._process_peak, self._hwm())
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.exact = False  # the peak so far is what is left to report: an upper bound
        return _status_mb("VmRSS") or _maxrss_mb()

    def peak(self) -> float:
        """The high-water mark since start() (MB)."""
        value = self._hwm()
        self._process_peak = max(self._process_peak, value)
        return value

    def process_peak(self) -> float:
        return max(self._process_peak, self._hwm())

    def _hwm(self) -> float:
        return _status_mb("VmHWM") or _maxrss_mb()


# -- the measures -------------------------------------------------------------------------


#: one side's keys, as the bare join reads them
BARE_SIDE = "SELECT key FROM {table} WHERE definition_id = %s AND side = %s"


def _bare_join(definition: Definition) -> int:
    side_rows = BARE_SIDE.format(table=connection.ops.quote_name(compare.SNAPSHOT))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM ({side_rows}) s "  # noqa: S608  (fixed names only)
            f"FULL OUTER JOIN ({side_rows}) t ON s.key = t.key",
            [definition.pk, Side.SOURCE, definition.pk, Side.TARGET],
        )
        return int(cursor.fetchone()[0])


def _measure_throughline(
    definition: Definition, seeded: Seeded, memory: PeakMemory
) -> dict[str, Any]:
    expected = asdict_seeded(seeded)
    keys = seeded.universe
    classify_s: list[float] = []
    join_s: list[float] = []
    peaks: list[float] = []
    deltas: list[float] = []
    found: dict[str, int] = {}
    for round_no in range(ROUNDS + 1):  # the first is the warm-up
        run = Run.objects.create(definition=definition, trigger="bench")
        before = memory.start()
        t0 = time.perf_counter()
        # as after a pull, which counts what it wrote into the source side's snapshot
        outcome = compare.classify(run, source_records=seeded.records)
        elapsed = time.perf_counter() - t0
        peak = memory.peak()
        found = outcome.counts()
        if found != expected:
            raise CommandError(
                f"the classification of {seeded.records:,} invoices found {found}, "
                f"seeded {expected}"
            )
        t0 = time.perf_counter()
        joined = _bare_join(definition)
        join_elapsed = time.perf_counter() - t0
        if joined != keys:
            raise CommandError(f"the bare join counted {joined:,} keys, seeded {keys:,}")
        Run.objects.filter(pk=run.pk).delete()
        peaks.append(peak)
        deltas.append(peak - before)
        if round_no:
            classify_s.append(elapsed)
            join_s.append(join_elapsed)
    return {
        "expected_differences": 3 * seeded.share,
        "found": found,
        "classification_correct": found == expected,
        "classify_s": round(statistics.median(classify_s), 4),
        "classify_rounds_s": [round(t, 4) for t in classify_s],
        "classify_peak_mb": round(max(peaks), 1),
        "classify_delta_mb": round(max(deltas), 1),
        "bare_join_s": round(statistics.median(join_s), 4),
        "bare_join_rounds_s": [round(t, 4) for t in join_s],
    }


def _frame(definition: Definition, side: str) -> Any:
    import pandas as pd

    table = connection.ops.quote_name(compare.SNAPSHOT)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(FRAME_COLUMNS)} FROM {table} "  # noqa: S608  (fixed names)
            "WHERE definition_id = %s AND side = %s",
            [definition.pk, side],
        )
        return pd.DataFrame.from_records(cursor.fetchall(), columns=list(FRAME_COLUMNS))


def pandas_classify(definition: Definition) -> dict[str, int]:
    """The baseline: both sides into DataFrames, one outer merge with an indicator, the
    classes the classification finds (same rules: tolerances, duplicates apart)."""
    source = _frame(definition, Side.SOURCE)
    target = _frame(definition, Side.TARGET)
    duplicate = int(source.loc[source["copies"] > 1, "key"].nunique()) + int(
        target.loc[target["copies"] > 1, "key"].nunique()
    )
    merged = source.merge(target, on="key", how="outer", suffixes=("_s", "_t"), indicator=True)
    single = (merged["copies_s"].fillna(1) == 1) & (merged["copies_t"].fillna(1) == 1)
    merged = merged[single]
    both = merged["_merge"] == "both"
    amount_s, amount_t = merged["cmp_amount_s"], merged["cmp_amount_t"]
    day_s, day_t = merged["day_s"], merged["day_t"]
    differs = (
        (amount_s.isna() != amount_t.isna())
        | ((amount_s - amount_t).abs() > definition.amount_tolerance_cents)
        | (
            (day_s.isna() != day_t.isna())
            | ((day_s - day_t).abs() > definition.date_tolerance_days)
        )
        | (merged["digest_s"] != merged["digest_t"])
    )
    if definition.compare_status:
        differs |= merged["status_s"] != merged["status_t"]
    mismatch = int((both & differs).sum())
    return {
        "matched": int(both.sum()) - mismatch,
        "missing_in_target": int((merged["_merge"] == "left_only").sum()),
        "missing_in_source": int((merged["_merge"] == "right_only").sum()),
        "field_mismatch": mismatch,
        "duplicate": duplicate,
        "accepted": 0,
        "in_flight": 0,
    }


def _measure_pandas(definition: Definition, seeded: Seeded, memory: PeakMemory) -> dict[str, Any]:
    expected = asdict_seeded(seeded)
    times: list[float] = []
    peaks: list[float] = []
    found: dict[str, int] = {}
    for _ in range(ROUNDS):
        memory.start()
        t0 = time.perf_counter()
        found = pandas_classify(definition)
        times.append(time.perf_counter() - t0)
        peaks.append(memory.peak())
    return {
        "pandas_found": found,
        "pandas_correct": found == expected,
        "pandas_s": round(statistics.median(times), 4),
        "pandas_rounds_s": [round(t, 4) for t in times],
        "pandas_peak_mb": round(max(peaks), 1),
    }
