"""`manage.py bench dashboards`: the KPI overview and the connector-health page, at 100,000
and at 10,000,000 recorded events, in one run.

In a fresh database on the configured server, the bench loads `small` recorded events, the
records the two pages read, spread over 90 days and the bench's connections; measures; tops
up to `large` events; measures again. The events are:

* API calls (integrations.ApiCall, 85 in 100 events): what the connector-health page reads.
  Their start times are spread evenly over the 90 days, so the last 15 minutes hold the share
  of a steady traffic (1 in 8,640 calls); a few per cent failed (timeouts, 503, 429) or were
  refused (400), latencies from 80 ms up with a long tail, Salesforce's calls with their
  `Sforce-Limit-Info` headroom.
* exceptions (exceptions.IntegrationException, one in ten: the exceptions bench's own data,
  exceptions.benchmarks) and completed billing milestones (dashboards.MilestoneFact, one in
  twenty), with their KPI rollups (`exceptions_opened`, `milestones_completed`, hourly and
  daily). On PostgreSQL the rollup rows of the loaded facts are summed with one INSERT ...
  SELECT per KPI and grain, added to the stored rows as the incremental path adds; on SQLite
  (the CI-sized run) the facts' observations (dashboards.observations) are recorded through
  the incremental path's upsert (dashboards.rollups.record_many). At the small size the bench
  checks the stored rollups of these KPIs against a rebuild from the raw records
  (`dashboards.rollups.check`): they must agree.

Every other live KPI of the catalogue gets its *observations* in proportion to the events
(`OBSERVED`): the runs and postings behind them — a billing run per completed milestone (one
in 20 events: billing exception rate, invoice cycle time, time to invoice, billed, and the
invoiced amount off the backlog), a deal handed off per five milestones (one in 100: quote-
and closed-won-to-project, provisioning success, the deal's amount onto the backlog), a
posting of time entries per 100 events; a KPI the bench does not know (one the catalogue
made live later) one in 100. Their values follow each KPI's definition (a 0/1 rate around
its good side, averages below its warning boundary, amounts in each legal entity's currency),
over the same 90 days, six legal entities and their regions, and they are recorded through
`dashboards.rollups.record_many`, the incremental path's upsert, so the overview reads the
rollup rows of a realistic page: every live KPI with a figure, a trend line and its currencies.
They stand for raw records the bench does not write, so the rebuild check leaves them out.

Each figure is a p95 (integrations.benchmarks.measure.timed: the median of three rounds of
`samples` requests, after warm-up, the two pages interleaved) as a signed-in superuser of
GET /dashboards/kpis/ (the default 30-day period) and GET /dashboards/health/ (the default
15-minute window). It also counts each page's SQL queries (the same at both sizes) and asks
the planner whether the health page's call queries read the whole calls table.
Targets: each large figure at most 2x its small figure. Ends with one JSON line.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import time
from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from console.models import User
from exceptions import benchmarks as exception_bench
from exceptions.models import IntegrationException
from integrations.benchmarks.measure import timed
from integrations.benchmarks.workers import analyze, isolated_database
from integrations.choices import Vendor
from integrations.models import ApiCall

from . import kpis, observations, rollups
from .models import KpiRollup, MilestoneFact
from .observations import Dims, Observation

RATIO_MAX = 2.0
DAYS = 90
#: one event in EXCEPTION_EVERY is an exception, one in MILESTONE_EVERY a completed
#: milestone, the others are API calls
EXCEPTION_EVERY = 10
MILESTONE_EVERY = 20
BATCH = 10_000
KPI_URL = "/dashboards/kpis/"
HEALTH_URL = "/dashboards/health/"
OPERATIONS = ("get_record", "query", "create_record", "update_record")
#: the KPIs the loaded raw facts feed (the rest of the live ones get observations)
FROM_FACTS = ("exceptions_opened", "milestones_completed")
CRM, PSA, ERP = Vendor.SALESFORCE, Vendor.KANTATA, Vendor.NETSUITE
#: per KPI: one observation in `every` recorded events, and the connection it comes from
OBSERVED: dict[str, tuple[int, str]] = {
    "billing_exception_rate": (MILESTONE_EVERY, PSA),
    "invoice_cycle_time": (MILESTONE_EVERY, PSA),
    "time_to_invoice": (MILESTONE_EVERY, PSA),
    "billed_amount": (MILESTONE_EVERY, PSA),
    # an invoiced milestone off (PSA), or one in six a deal handed off onto it (CRM)
    "backlog": (17, PSA),
    "quote_to_project": (100, CRM),
    "won_to_project": (100, CRM),
    "provisioning_success_rate": (100, CRM),
    "time_entry_latency": (100, PSA),
}
#: a live KPI the bench does not know yet: one observation in DEFAULT_EVERY events, from ERP
DEFAULT_EVERY = 100
#: where the observations are, and how often (the legal entities of the exceptions bench)
ENTITY_WEIGHTS = {"US01": 4, "UK01": 3, "DE01": 1, "FR01": 1, "CA01": 1, "SG01": 1}


def run(
    *, small: int = 100_000, large: int = 10_000_000, samples: int = 30, out: Any = None
) -> dict[str, Any]:
    """The whole bench in a fresh database of its own (created and dropped here)."""
    say = out.write if out is not None else print
    with isolated_database("dashboards"):
        return measure(small=small, large=large, samples=samples, say=say)


def measure(*, small: int, large: int, samples: int, say: Any = print) -> dict[str, Any]:
    """Load, measure, top up, measure again (in the current database)."""
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        world = exception_bench._world()
        world["admin"], _ = User.objects.get_or_create(
            username="bench-dashboards-admin",
            defaults={"is_superuser": True, "is_staff": True},
        )
        rng = random.Random(5)  # noqa: S311  (bench data, the same every run)
        figures: dict[str, dict[str, Any]] = {}
        loaded = observed = 0
        for label, size in (("small", small), ("large", large)):
            t0 = time.perf_counter()
            exceptions = size // EXCEPTION_EVERY - loaded // EXCEPTION_EVERY
            milestones = size // MILESTONE_EVERY - loaded // MILESTONE_EVERY
            calls = (size - loaded) - exceptions - milestones
            _load_calls(world, calls, rng)
            after = (_last_id(IntegrationException), _last_id(MilestoneFact))
            exception_bench._insert(world, exceptions, rng)
            _load_milestones(world, milestones, rng)
            _roll_up(*after)
            observed += _load_observations(world, loaded, size, rng)
            loaded = size
            analyze(ApiCall, IntegrationException, MilestoneFact, KpiRollup)
            load_s = time.perf_counter() - t0
            say(
                f"{size:,} events recorded ({ApiCall.objects.count():,} API calls, "
                f"{IntegrationException.objects.count():,} exceptions, "
                f"{MilestoneFact.objects.count():,} milestones; {observed:,} observations of "
                f"{len(observed_kpis())} more KPIs; {KpiRollup.objects.count():,} rollup rows; "
                f"{load_s:.1f} s to load)\n"
            )
            figures[label] = {
                "events": size,
                "observations": observed,
                "load_s": round(load_s, 1),
            }
            if label == "small":
                figures[label]["rollups_agree_with_rebuild"] = not facts_differences()
            figures[label] |= _measure_size(world, samples, say)
    ratios = {
        name: round(
            figures["large"][f"{name}_p95_ms"] / max(figures["small"][f"{name}_p95_ms"], 0.001), 2
        )
        for name in ("kpi", "health")
    }
    met = {f"{name}_ratio": ratio <= RATIO_MAX for name, ratio in ratios.items()}
    met["same_queries_at_both_sizes"] = figures["small"]["queries"] == figures["large"]["queries"]
    met["rollups_agree_with_rebuild"] = figures["small"]["rollups_agree_with_rebuild"]
    met["no_full_table_scan"] = not figures["large"]["full_table_scan"]
    for name, ratio in ratios.items():
        say(f"{name}: {ratio}x from {small:,} to {large:,} events (target at most {RATIO_MAX}x)\n")
    return {
        "bench": "dashboards",
        "database": connection.vendor,
        "samples": samples,
        "kpis_loaded": sorted(
            set(KpiRollup.objects.order_by().values_list("kpi", flat=True).distinct())
        ),
        "small": figures["small"],
        "large": figures["large"],
        "ratios": ratios,
        "targets": {"kpi_ratio_max": RATIO_MAX, "health_ratio_max": RATIO_MAX},
        "met": met,
    }


# -- the data -----------------------------------------------------------------------------


def _load_calls(world: dict[str, Any], count: int, rng: random.Random) -> None:
    """`count` API calls spread over the bench's connections and the last 90 days."""
    if count <= 0:
        return
    connections = sorted(c.pk for c in world["connections"].values())
    salesforce = world["connections"][Vendor.SALESFORCE].pk
    if connection.vendor == "postgresql":
        _generate_calls(connections, salesforce, count, rng)
        return
    now: dt.datetime = world["now"]
    batch: list[ApiCall] = []
    for _ in range(count):
        conn = rng.choice(connections)
        roll = rng.random()
        status, kind = (200, "")
        if roll < 0.01:
            status, kind = (503, "transient")
        elif roll < 0.015:
            status, kind = (429, "rate_limited")
        elif roll < 0.03:
            status, kind = (400, "validation")
        used = rng.randint(1_000, 90_000)
        batch.append(
            ApiCall(
                connection_id=conn,
                operation=rng.choice(OPERATIONS),
                method="GET",
                path="/bench",
                status_code=status,
                latency_ms=80 + rng.expovariate(1 / 150),
                attempts=2 if kind else 1,
                error_kind=kind,
                rate_limit={"Sforce-Limit-Info": f"api-usage={used}/100000"}
                if conn == salesforce
                else {},
                started_at=now - dt.timedelta(seconds=rng.uniform(0, DAYS * 86400)),
            )
        )
        if len(batch) >= BATCH:
            ApiCall.objects.bulk_create(batch)
            batch = []
    if batch:
        ApiCall.objects.bulk_create(batch)


def _generate_calls(
    connections: list[int], salesforce: int, count: int, rng: random.Random
) -> None:
    """PostgreSQL: the same distribution generated by the server (generate_series), in
    slices of a million rows: no row goes through Python."""
    table = connection.ops.quote_name(ApiCall._meta.db_table)
    ids = "(ARRAY[" + ", ".join(str(int(pk)) for pk in connections) + "])"
    ops = "(ARRAY[" + ", ".join(f"'{op}'" for op in OPERATIONS) + "])"
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [rng.random() * 2 - 1])
        for start in range(0, count, 1_000_000):
            n = min(1_000_000, count - start)
            # only integers and fixed literals are formatted in
            cursor.execute(
                f"""
                INSERT INTO {table} (connection_id, operation, method, path, status_code,
                    latency_ms, attempts, idempotency_key, error_kind, error_message,
                    rate_limit, started_at, batch_key, runs_served)
                SELECT c, {ops}[1 + floor(random() * 4)::int], 'GET', '/bench',
                    CASE WHEN r < 0.01 THEN 503 WHEN r < 0.015 THEN 429
                         WHEN r < 0.03 THEN 400 ELSE 200 END,
                    80 - 150 * ln(1 - random()),
                    CASE WHEN r < 0.03 THEN 2 ELSE 1 END, '',
                    CASE WHEN r < 0.01 THEN 'transient' WHEN r < 0.015 THEN 'rate_limited'
                         WHEN r < 0.03 THEN 'validation' ELSE '' END, '',
                    CASE WHEN c = {int(salesforce)} THEN jsonb_build_object(
                        'Sforce-Limit-Info',
                        'api-usage=' || (1000 + floor(random() * 89000))::int || '/100000')
                    ELSE '{{}}'::jsonb END,
                    now() - random() * interval '{DAYS} days', '', 1
                FROM (
                    SELECT {ids}[1 + floor(random() * {len(connections)})::int] AS c,
                           random() AS r
                    FROM generate_series(1, %s)
                ) AS g
                """,  # noqa: S608
                [n],
            )


def _load_milestones(world: dict[str, Any], count: int, rng: random.Random) -> None:
    """`count` completed billing milestones of the PSA connection over the last 90 days
    (without a deal: no legal entity or region, as the analytics store records a milestone
    whose deal it does not know)."""
    if count <= 0:
        return
    table = connection.ops.quote_name(MilestoneFact._meta.db_table)
    psa = world["connections"][Vendor.KANTATA].pk
    first = _last_id(MilestoneFact) + 1
    sql = f"INSERT INTO {table} (psa_connection_id, story_id, workspace_id, deal_key, recorded_at) "
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setseed(%s)", [rng.random() * 2 - 1])
            cursor.execute(
                sql  # noqa: S608  (the table and a constant: the values are params)
                + "SELECT %s, 'BENCH-' || g, 'BENCH', '', "
                + f"now() - random() * interval '{DAYS} days' FROM generate_series(%s, %s) AS g",
                [psa, first, first + count - 1],
            )
            return
        now: dt.datetime = world["now"]
        cursor.executemany(
            sql + "VALUES (%s, %s, 'BENCH', '', %s)",
            [
                (
                    psa,
                    f"BENCH-{n}",
                    connection.ops.adapt_datetimefield_value(
                        now - dt.timedelta(seconds=rng.uniform(0, DAYS * 86400))
                    ),
                )
                for n in range(first, first + count)
            ],
        )


def _last_id(model: type[Model]) -> int:
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


#: (KPI, table, time column, legal entity, region, connection) of the loaded facts: the same
#: rows dashboards.observations (exception_opened, milestone) and rollups.aggregate give
ROLLED_UP = (
    (
        "exceptions_opened",
        IntegrationException,
        "first_seen",
        "coalesce(legal_entity_code, '')",
        "coalesce(region, '')",
        "coalesce(connection_id, 0)",
    ),
    ("milestones_completed", MilestoneFact, "recorded_at", "''", "''", "psa_connection_id"),
)


def _roll_up(after_exception: int, after_milestone: int) -> None:
    """The rollups of the exceptions and milestones loaded after these ids: one INSERT ...
    SELECT per KPI and grain, added to the stored rows as the incremental path adds."""
    if connection.vendor != "postgresql":
        _observe_facts(after_exception, after_milestone)
        return
    q = connection.ops.quote_name
    table = q(KpiRollup._meta.db_table)
    after = {IntegrationException: after_exception, MilestoneFact: after_milestone}
    with connection.cursor() as cursor:
        for (kpi, model, at, entity, region, conn), grain in itertools.product(
            ROLLED_UP, rollups.GRAINS
        ):
            # only fixed identifiers and expressions are formatted in: the values are params
            cursor.execute(
                f"""
                INSERT INTO {table} (kpi, grain, bucket, legal_entity_code, region,
                    connection_id, currency, count, total, minimum, maximum)
                SELECT %s, %s,
                    date_trunc(%s, {at} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                    {entity}, {region}, {conn}, '', count(*), count(*), 1, 1
                FROM {q(model._meta.db_table)} WHERE id > %s
                GROUP BY 3, 4, 5, 6
                ON CONFLICT (kpi, grain, bucket, legal_entity_code, region, connection_id,
                    currency)
                DO UPDATE SET count = {table}.count + excluded.count,
                    total = {table}.total + excluded.total,
                    minimum = LEAST({table}.minimum, excluded.minimum),
                    maximum = GREATEST({table}.maximum, excluded.maximum)
                """,  # noqa: S608
                [kpi, grain, grain, after[model]],
            )


def _observe_facts(after_exception: int, after_milestone: int) -> None:
    """The observations of the exceptions and milestones loaded after these ids, by the
    functions of the incremental path (dashboards.observations), recorded with its upsert."""
    exceptions = (
        IntegrationException.objects.filter(pk__gt=after_exception)
        .only("id", "first_seen", "legal_entity_code", "region", "connection")
        .order_by("pk")
    )
    facts = MilestoneFact.objects.filter(pk__gt=after_milestone).order_by("pk")
    rollups.record_many(
        itertools.chain(
            (observations.exception_opened(exc) for exc in exceptions.iterator(chunk_size=BATCH)),
            # bench milestones have no deal: no legal entity or region (deal_dims of "" is {})
            (observations.milestone(fact, {}) for fact in facts.iterator(chunk_size=BATCH)),
        )
    )


def facts_differences() -> list[rollups.Difference]:
    """Where the stored rollups of the KPIs the raw facts feed disagree with a rebuild from
    the raw records (the observed KPIs have no raw records to rebuild from)."""
    return [d for d in rollups.check() if d.key[0] in FROM_FACTS]


# -- the other live KPIs: observations in proportion to the events ------------------------


def observed_kpis() -> list[kpis.Kpi]:
    """The live KPIs of the catalogue (as it is now) that the loaded facts do not feed."""
    return [kpi for kpi in kpis.KPIS if kpi.live and kpi.key not in FROM_FACTS]


def _good_share(kpi: kpis.Kpi) -> float:
    """The share of 1s of a rate: on the good side of its warning boundary."""
    if kpi.thresholds is None or kpi.direction == "none":
        return 0.5
    warning = float(kpi.thresholds.warning) / 100
    return (1 + warning) / 2 if kpi.direction == "higher" else warning / 2


def _typical(kpi: kpis.Kpi, rng: random.Random) -> int:
    """A value of an average (or of an item's figure) in base units, on the good side of the
    KPI's warning boundary: a duration below it (exponential), a figure one band beyond it
    (normal), a variance without direction around 0."""
    bounds = kpi.thresholds
    warning = float(bounds.warning) if bounds is not None else 10.0
    band = abs(warning - float(bounds.breach)) if bounds is not None else warning
    if kpi.direction == "lower" and warning > 0:
        return int(rng.expovariate(2 / (warning * kpi.scale)))
    if kpi.direction == "none" or bounds is None:
        return round(rng.gauss(0, band * kpi.scale / 2))
    centre = warning + (band if kpi.direction == "higher" else -band)
    return round(rng.gauss(centre * kpi.scale, band * kpi.scale))


def _amount(kpi_scale: int, rng: random.Random, low: int = 1_000, high: int = 50_000) -> int:
    return rng.randint(low, high) * kpi_scale


def observed_values(kpi: kpis.Kpi, rng: random.Random) -> list[tuple[str, int, bool]]:
    """What one event of the KPI adds, as its definition has it: (rollup key, value in base
    units, a deal rather than the KPI's usual record) for each series it holds."""
    if kpi.aggregation == "count":
        return [(kpi.key, 1, False)]
    if kpi.aggregation == "rate":
        return [(kpi.key, int(rng.random() < _good_share(kpi)), False)]
    if kpi.aggregation == "ratio":  # DSO: invoices raised (both parts), payments (the first)
        parts = getattr(kpi, "parts", ())
        if len(parts) != 2:
            return []
        amount = _amount(100, rng)
        if rng.random() < 0.5:
            return [(parts[0], amount, False), (parts[1], amount, False)]
        return [(parts[0], -amount, False)]
    if kpi.aggregation == "balance" and not getattr(kpi, "per_item", False):
        if rng.random() < 1 / 6:  # a deal handed off onto the backlog
            return [(kpi.key, _amount(kpi.scale, rng, 20_000, 200_000), True)]
        return [(kpi.key, -_amount(kpi.scale, rng), False)]  # an invoice off it
    if kpi.aggregation == "sum":
        return [(kpi.key, _amount(kpi.scale, rng), False)]
    return [(kpi.key, _typical(kpi, rng), False)]  # averages, and items' latest figures


def rollup_keys(kpi: kpis.Kpi) -> tuple[str, ...]:
    """The rollup series holding a KPI's observations (a ratio's parts, else its key)."""
    return tuple(getattr(kpi, "rollup_keys", ())) or (kpi.key,)


def _observations(
    world: dict[str, Any], kpi: kpis.Kpi, count: int, rng: random.Random, *, seed: bool
) -> Iterator[Observation]:
    """`count` events of a KPI over the last 90 days; with `seed`, first one per legal entity
    in the last 12 hours, so every tile has its figure and currencies at both sizes."""
    now: dt.datetime = world["now"]
    vendor = OBSERVED.get(kpi.key, (DEFAULT_EVERY, ERP))[1]
    money = kpi.is_money or kpi.aggregation == "ratio"  # a ratio of amounts per currency
    entities = list(ENTITY_WEIGHTS)
    cumulative = list(itertools.accumulate(ENTITY_WEIGHTS.values()))
    dims = {
        (entity, deal): Dims(
            legal_entity_code=entity,
            region=exception_bench.REGIONS[entity],
            connection_id=world["connections"][CRM if deal else vendor].pk,
            currency=exception_bench.CURRENCIES[entity] if money else "",
        )
        for entity in entities
        for deal in (False, True)
    }
    chosen = entities if seed else []
    for n in range(len(chosen) + count):
        if n < len(chosen):
            entity, age = chosen[n], rng.uniform(0, 12 * 3600)
        else:
            entity = rng.choices(entities, cum_weights=cumulative)[0]
            age = rng.uniform(0, DAYS * 86400)
        at = now - dt.timedelta(seconds=age)
        for key, value, deal in observed_values(kpi, rng):
            yield Observation(key, at, value, dims[entity, deal])


def _load_observations(world: dict[str, Any], loaded: int, size: int, rng: random.Random) -> int:
    """Observations of every observed KPI for the events from `loaded` to `size`, recorded
    with one upsert of their rollup rows (dashboards.rollups.record_many); returns how many
    observations."""
    counted = [0]

    def counting(found: Iterator[Observation]) -> Iterator[Observation]:
        for obs in found:
            counted[0] += 1
            yield obs

    chunks: list[Iterator[Observation]] = []
    for kpi in observed_kpis():
        every = OBSERVED.get(kpi.key, (DEFAULT_EVERY, ERP))[0]
        count = size // every - loaded // every
        chunks.append(_observations(world, kpi, count, rng, seed=loaded == 0))
    rollups.record_many(counting(itertools.chain.from_iterable(chunks)))
    return counted[0]


# -- the measures -------------------------------------------------------------------------


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return len(captured)


def _full_scan(client: Client) -> bool:
    """Does any query of the health page read the whole calls table?"""
    if connection.vendor != "postgresql":
        return False
    table = ApiCall._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        client.get(HEALTH_URL)
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if table not in sql or not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if f"Seq Scan on {table}" in plan:
                return True
    return False


def _measure_size(world: dict[str, Any], samples: int, say: Any) -> dict[str, Any]:
    client = Client()
    client.force_login(world["admin"])
    window_start = timezone.now() - dt.timedelta(minutes=15)
    found: dict[str, Any] = {
        "api_calls": ApiCall.objects.count(),
        "api_calls_last_15_min": ApiCall.objects.filter(started_at__gte=window_start).count(),
        "exceptions": IntegrationException.objects.count(),
        "milestones": MilestoneFact.objects.count(),
        "rollup_rows": KpiRollup.objects.count(),
    }
    result = timed(client, {"kpi": (KPI_URL, {}), "health": (HEALTH_URL, {})}, samples)
    found |= {
        "kpi_p95_ms": round(result["kpi"]["p95"], 2),
        "health_p95_ms": round(result["health"]["p95"], 2),
        "median_ms": {name: round(t["median"], 2) for name, t in result.items()},
        "queries": {"kpi": _queries(client, KPI_URL), "health": _queries(client, HEALTH_URL)},
        "full_table_scan": _full_scan(client),
    }
    say(
        f"  p95 ms: KPI overview {found['kpi_p95_ms']:.1f}, connector health "
        f"{found['health_p95_ms']:.1f} ({found['api_calls_last_15_min']:,} calls in the last "
        f"15 minutes)\n"
    )
    return found
