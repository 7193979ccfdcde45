"""`manage.py bench exceptions`: the filtered queue page and its API list, at 10,000 and at
1,000,000 exceptions, in one run.

In a fresh database on the configured server (no Redis, no workers), the bench bulk-inserts
`small` exceptions spread realistically over six queues, their codes, statuses (most older
ones resolved), legal entities and regions, eight assignees and 90 days of activity; measures;
tops the table up to `large` exceptions; measures again. Each figure is a p95 (the median of
three rounds of `samples` requests each, after warm-up; the four requests interleaved) of, as
a signed-in Finance resolver:
1. the queue page (Django test client), filtered to active exceptions of one legal entity and
   one code: its first page, and a deep page reached by following the "Older" link up to page
   `deep_page` (or the last full page, when fewer match: at 10,000 rows that is page 1);
2. the REST API list with the same filters, first page and the page reached by following
   `next` the same number of times;
3. the list of queues with their active and SLA-breached counts, the page and
   /api/v1/queues/ (reported, without a ratio target: their counts read the active work,
   which grows with the table in this data).
It also counts each request's SQL queries (the same at both sizes: no N+1) and asks the
planner whether the page's queries scan the whole table.
Then, unless `bulk` is 0, it bulk-retries `bulk` exceptions of a vendor outage through the API
(exceptions.bench_bulk): the request's ms, the seconds until the queued task has finished,
the counts and the runs resumed.
Targets: every large figure at most 2x its small figure; the bulk requests under a second
and the bulk retry completed. Ends with one JSON line.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import random
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from console.choices import Role, TeamKind
from console.models import Membership, Team, User
from integrations.benchmarks.measure import timed as _timed
from integrations.benchmarks.workers import analyze, isolated_database
from integrations.choices import AuthKind, SystemKind, Vendor
from integrations.models import Connection, SyncRun

from . import bench_bulk
from .choices import ACTIVE_STATUSES, Category, ExceptionCode, ExceptionStatus
from .models import IntegrationException, Queue
from .pagination import ORDERING, PAGE_SIZE

RATIO_MAX = 2.0
BATCH = 10_000
RUNS = 5_000
DAYS = 90

E = ExceptionCode
#: (slug, name, team kind, share of all exceptions, {code: weight}, {legal entity: weight})
QUEUES: list[tuple[str, str, str, int, dict[str, int], dict[str, int]]] = [
    (
        "finance-uk",
        "Finance UK",
        TeamKind.FINANCE,
        20,
        {
            E.CLOSED_ACCOUNTING_PERIOD: 40,
            E.TAX_CONFIGURATION_MISSING: 20,
            E.INVOICE_REJECTED_BY_ERP: 20,
            E.CUSTOMER_REJECTED_BY_ERP: 10,
            E.POSTING_REFUSED_BY_ERP: 10,
        },
        {"UK01": 6, "DE01": 2, "FR01": 2},
    ),
    (
        "finance-us",
        "Finance US",
        TeamKind.FINANCE,
        15,
        {
            E.CLOSED_ACCOUNTING_PERIOD: 40,
            E.TAX_CONFIGURATION_MISSING: 15,
            E.INVOICE_REJECTED_BY_ERP: 25,
            E.POSTING_REFUSED_BY_ERP: 20,
        },
        {"US01": 8, "CA01": 2},
    ),
    (
        "pmo-emea",
        "PMO EMEA",
        TeamKind.PMO,
        15,
        {
            E.PROJECT_TEMPLATE_NOT_FOUND: 30,
            E.PROJECT_REJECTED_BY_PSA: 20,
            E.TIME_ENTRY_NOT_POSTABLE: 40,
            E.COST_RATE_MISSING: 10,
        },
        {"UK01": 5, "DE01": 3, "FR01": 2},
    ),
    (
        "pmo-americas",
        "PMO Americas",
        TeamKind.PMO,
        15,
        {
            E.PROJECT_TEMPLATE_NOT_FOUND: 30,
            E.PROJECT_REJECTED_BY_PSA: 20,
            E.TIME_ENTRY_NOT_POSTABLE: 40,
            E.COST_RATE_MISSING: 10,
        },
        {"US01": 8, "CA01": 2},
    ),
    (
        "sales-ops",
        "Sales Ops",
        TeamKind.SALES_OPS,
        10,
        {E.DEAL_DATA_INVALID: 60, E.DEAL_NOT_WON: 10, E.WRITE_BACK_REJECTED: 30},
        {"UK01": 3, "US01": 4, "DE01": 1, "FR01": 1, "CA01": 1, "SG01": 1},
    ),
    (
        "it-integration",
        "IT Integration",
        TeamKind.IT,
        25,
        {
            E.RATE_LIMIT_EXHAUSTED: 35,
            E.VENDOR_UNAVAILABLE: 35,
            E.AUTHENTICATION_FAILED: 10,
            E.MAPPING_ERROR: 20,
        },
        {"UK01": 3, "US01": 4, "DE01": 1, "FR01": 1, "CA01": 1, "SG01": 1},
    ),
]
REGIONS = {"UK01": "EMEA", "DE01": "EMEA", "FR01": "EMEA", "US01": "Americas"}
REGIONS |= {"CA01": "Americas", "SG01": "APAC"}
CURRENCIES = {"UK01": "GBP", "DE01": "EUR", "FR01": "EUR", "US01": "USD", "CA01": "CAD"}
CURRENCIES |= {"SG01": "SGD"}
TECHNICAL = {E.RATE_LIMIT_EXHAUSTED, E.VENDOR_UNAVAILABLE, E.AUTHENTICATION_FAILED}
VENDOR_OF = {TeamKind.FINANCE: Vendor.NETSUITE, TeamKind.PMO: Vendor.KANTATA}
VENDOR_OF |= {TeamKind.SALES_OPS: Vendor.SALESFORCE}

#: what is measured: the first Finance UK person's working set
MEASURED_QUEUE = "finance-uk"
MEASURED_FILTER = {
    "status": "active",
    "legal_entity_code": "UK01",
    "code": E.CLOSED_ACCOUNTING_PERIOD.value,
}
NEXT_LINK = re.compile(r'href="([^"]*)" rel="next"')
QUEUE_LIST_URL = "/exceptions/"
QUEUES_API_URL = "/api/v1/queues/"
#: the bulk retry's queue: IT retries after a vendor outage
BULK_QUEUE = "it-integration"


def run(
    *,
    small: int = 10_000,
    large: int = 1_000_000,
    samples: int = 50,
    deep_page: int = 200,
    bulk: int = 10_000,
    out: Any = None,
) -> dict[str, Any]:
    """The whole bench in a fresh database of its own (created and dropped here)."""
    say = out.write if out is not None else print
    with isolated_database("exceptions"):
        return measure(
            small=small, large=large, samples=samples, deep_page=deep_page, bulk=bulk, say=say
        )


def measure(
    *, small: int, large: int, samples: int, deep_page: int, bulk: int = 0, say: Any = print
) -> dict[str, Any]:
    """Insert, measure, top up, measure again (in the current database); then the bulk
    retry of `bulk` exceptions (none when 0)."""
    with override_settings(DEBUG=False, ALLOWED_HOSTS=["testserver"]):
        world = _world()
        rng = random.Random(4)  # noqa: S311  (bench data, the same every run)
        figures: dict[str, dict[str, Any]] = {}
        inserted = 0
        for label, size in (("small", small), ("large", large)):
            t0 = time.perf_counter()
            _insert(world, size - inserted, rng)
            inserted = size
            analyze(IntegrationException)
            load_s = time.perf_counter() - t0
            say(f"{size:,} exceptions in the table ({load_s:.1f} s to insert and analyze)\n")
            figures[label] = {"rows": size, "insert_s": round(load_s, 1)}
            figures[label] |= _measure_size(world, samples, deep_page, say)
        bulk_figures = (
            bench_bulk.measure_bulk_retry(
                count=bulk,
                queue=world["queues"][BULK_QUEUE],
                crm=world["connections"][Vendor.SALESFORCE],
                psa=world["connections"][Vendor.KANTATA],
                say=say,
            )
            if bulk > 0
            else None
        )
    # the queue lists are not in the ratios: their counts grow with the active work (a
    # hundred times more in the large table), which an exact count reads, not with the table
    keys = ["page_first_p95_ms", "page_deep_p95_ms", "api_first_p95_ms", "api_deep_p95_ms"]
    ratios = {
        key.removesuffix("_p95_ms"): round(
            figures["large"][key] / max(figures["small"][key], 0.001), 2
        )
        for key in keys
    }
    met = {f"{name}_ratio": ratio <= RATIO_MAX for name, ratio in ratios.items()}
    met["same_queries_at_both_sizes"] = figures["small"]["queries"] == figures["large"]["queries"]
    met["no_full_table_scan"] = not figures["large"]["full_table_scan"]
    for name, ratio in ratios.items():
        say(f"{name}: {ratio}x from {small:,} to {large:,} (target at most {RATIO_MAX}x)\n")
    result: dict[str, Any] = {
        "bench": "exceptions",
        "database": connection.vendor,
        "filter": {"queue": MEASURED_QUEUE, **MEASURED_FILTER},
        "samples": samples,
        "small": figures["small"],
        "large": figures["large"],
        "ratios": ratios,
        "targets": {"ratio_max": RATIO_MAX},
        "met": met,
    }
    if bulk_figures is not None:
        result["bulk_retry"] = bulk_figures
        result["targets"] |= {
            "bulk_retry_request_ms_max": bench_bulk.REQUEST_MS_MAX,
            "bulk_retry_completed": True,
        }
        met |= bench_bulk.targets_met(bulk_figures)
    return result


# -- the data -----------------------------------------------------------------------------


def _world() -> dict[str, Any]:
    teams = {
        kind: Team.objects.get_or_create(
            slug=f"bench-{kind}", defaults={"name": f"Bench {kind}", "kind": kind}
        )[0]
        for kind in {q[2] for q in QUEUES}
    }
    queues = {
        slug: Queue.objects.get_or_create(
            slug=slug, defaults={"name": name, "team": teams[kind], "sla_hours": 24}
        )[0]
        for slug, name, kind, *_ in QUEUES
    }
    connections = {}
    for vendor, system, auth in (
        (Vendor.SALESFORCE, SystemKind.CRM, AuthKind.JWT_BEARER),
        (Vendor.NETSUITE, SystemKind.ERP, AuthKind.OAUTH_M2M),
        (Vendor.KANTATA, SystemKind.PSA, AuthKind.BEARER_TOKEN),
    ):
        connections[vendor] = Connection.objects.get_or_create(
            name=f"Bench {vendor}",
            defaults={
                "vendor": vendor,
                "system": system,
                "auth_kind": auth,
                "base_url": "http://127.0.0.1:9",
            },
        )[0]
    people = []
    for i in range(8):
        kind = list(teams)[i % len(teams)]
        user, _ = User.objects.get_or_create(username=f"bench-{i}")
        Membership.objects.get_or_create(user=user, team=teams[kind], defaults={"role": "resolver"})
        people.append(user.pk)
    reader, _ = User.objects.get_or_create(username="bench-finance-reader")
    Membership.objects.get_or_create(
        user=reader, team=teams[TeamKind.FINANCE], defaults={"role": Role.RESOLVER}
    )
    now = timezone.now()
    runs = SyncRun.objects.bulk_create(
        [
            SyncRun(
                workflow="bench",
                correlation_id=f"deal:BENCH{i:06d}",
                business_key=f"deal:BENCH{i:06d}",
                trigger="poll",
                status="failed",
                created_at=now,
            )
            for i in range(RUNS)
        ],
        batch_size=BATCH,
    )
    return {
        "queues": queues,
        "connections": connections,
        "people": people,
        "reader": reader,
        "runs": [r.pk for r in runs] or list(SyncRun.objects.values_list("pk", flat=True)),
        "now": now,
        "serial": 0,
    }


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _rows(world: dict[str, Any], count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    now: dt.datetime = world["now"]
    queue_weights = [q[3] for q in QUEUES]
    for _ in range(count):
        world["serial"] += 1
        n = world["serial"]
        slug, _name, kind, _share, codes, entities = rng.choices(QUEUES, weights=queue_weights)[0]
        queue = world["queues"][slug]
        code = _weighted(rng, codes)
        entity = _weighted(rng, entities)
        age = dt.timedelta(seconds=rng.uniform(0, DAYS * 86400))
        first_seen = now - age
        last_seen = min(now, first_seen + dt.timedelta(seconds=rng.uniform(0, 3 * 86400)))
        recent = age < dt.timedelta(days=7)
        roll = rng.random()
        if roll < (0.55 if recent else 0.08):
            status = rng.choice(
                [ExceptionStatus.OPEN] * 6
                + [ExceptionStatus.IN_PROGRESS] * 3
                + [ExceptionStatus.RETRYING]
            )
        elif roll < (0.6 if recent else 0.12):
            status = ExceptionStatus.IGNORED
        else:
            status = ExceptionStatus.RESOLVED
        resolved = status == ExceptionStatus.RESOLVED
        money = kind == TeamKind.FINANCE
        yield {
            "queue_id": queue.pk,
            "code": code,
            "category": Category.TECHNICAL if code in TECHNICAL else Category.BUSINESS,
            "status": status,
            "title": f"{ExceptionCode(code).label}: {entity} record {n}",
            "explanation": "Bench exception: the target system refused the record.",
            "suggested_fix": "Fix the data in the target system, then Retry.",
            "run_id": rng.choice(world["runs"]),
            "connection_id": world["connections"][VENDOR_OF.get(kind, Vendor.NETSUITE)].pk,
            "entity_type": "invoice" if money else "project",
            "entity_ref": f"BENCH-{n}",
            "legal_entity_code": entity,
            "region": REGIONS[entity],
            "payload": {"Id": f"BENCH-{n}", "amount": "1200.00"} if money else {"Id": n},
            "vendor_error": {"status": 400, "message": "refused"},
            "fingerprint": f"bench-{n}",
            "occurrences": rng.randint(1, 5),
            "first_seen": first_seen,
            "last_seen": last_seen,
            "resolved_at": last_seen if resolved else None,
            "resolution": "Bench: replay succeeded" if resolved else "",
            "assignee_id": rng.choice(world["people"]) if rng.random() < 0.6 else None,
            "amount": Decimal(rng.randint(10_000, 5_000_000)) / 100 if money else None,
            "currency": CURRENCIES[entity] if money else "",
            "due_at": first_seen + dt.timedelta(hours=queue.sla_hours),
        }


def _insert(world: dict[str, Any], count: int, rng: random.Random) -> None:
    if count <= 0:
        return
    if connection.vendor == "postgresql":
        _copy(world, count, rng)
        return
    batch: list[Model] = []
    for row in _rows(world, count, rng):
        batch.append(IntegrationException(**row))
        if len(batch) >= BATCH:
            IntegrationException.objects.bulk_create(batch)
            batch = []
    if batch:
        IntegrationException.objects.bulk_create(batch)


def _copy(world: dict[str, Any], count: int, rng: random.Random) -> None:
    """PostgreSQL's COPY: every concrete column, defaults for the ones the rows leave out."""
    fields = [f for f in IntegrationException._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(IntegrationException._meta.db_table)
    defaults = {f.attname: f.get_default() for f in fields}
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in _rows(world, count, rng):
            values = []
            for f in fields:
                value = row.get(f.attname, defaults[f.attname])
                if f.attname in json_fields:
                    value = json.dumps(value)
                values.append(value)
            copy.write_row(values)


# -- the measures -------------------------------------------------------------------------


def _queries(client: Client, url: str, **headers: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        client.get(url, **headers)
    return len(captured)


def _deep_page_url(client: Client, url: str, pages: int) -> tuple[str, int]:
    """Follow the page's "Older" link up to `pages - 1` times: the last URL and its number."""
    path = url.split("?", 1)[0]
    number = 1
    while number < pages:
        found = NEXT_LINK.search(client.get(url).content.decode())
        if found is None:
            break
        url = html.unescape(found.group(1))
        url = path + url if url.startswith("?") else url
        number += 1
    return url, number


def _deep_api_url(client: Client, url: str, pages: int) -> tuple[str, int]:
    number = 1
    while number < pages:
        following = client.get(url, HTTP_ACCEPT="application/json").json().get("next")
        if not following:
            break
        url = following.removeprefix("http://testserver")
        number += 1
    return url, number


def _measure_size(world: dict[str, Any], samples: int, deep_page: int, say: Any) -> dict[str, Any]:
    client = Client()
    client.force_login(world["reader"])
    query = "&".join(f"{k}={v}" for k, v in MEASURED_FILTER.items())
    page_url = f"/exceptions/queues/{MEASURED_QUEUE}/?{query}"
    api_url = f"/api/v1/exceptions/?queue={MEASURED_QUEUE}&{query}"
    json_accept = {"HTTP_ACCEPT": "application/json"}
    queue = world["queues"][MEASURED_QUEUE]
    matching = IntegrationException.objects.filter(
        queue=queue,
        status__in=ACTIVE_STATUSES,
        legal_entity_code=MEASURED_FILTER["legal_entity_code"],
        code=MEASURED_FILTER["code"],
    )
    found: dict[str, Any] = {
        "matching": matching.count(),
        "active": IntegrationException.objects.filter(status__in=ACTIVE_STATUSES).count(),
    }

    # the deepest full page up to `deep_page`: a short last page would flatter the figure
    deepest = max(1, min(deep_page, found["matching"] // PAGE_SIZE))
    deep_url, page_number = _deep_page_url(client, page_url, deepest)
    deep_api, api_number = _deep_api_url(client, api_url, deepest)
    urls = {
        "page_first": (page_url, {}),
        "page_deep": (deep_url, {}),
        "api_first": (api_url, json_accept),
        "api_deep": (deep_api, json_accept),
        "queue_list": (QUEUE_LIST_URL, {}),
        "queues_api": (QUEUES_API_URL, json_accept),
    }
    timed = _timed(client, urls, samples)
    page_first, page_deep = timed["page_first"]["p95"], timed["page_deep"]["p95"]
    api_first, api_deep = timed["api_first"]["p95"], timed["api_deep"]["p95"]
    found |= {
        "page_first_p95_ms": round(page_first, 2),
        "page_deep_p95_ms": round(page_deep, 2),
        "page_deep_page": page_number,
        "api_first_p95_ms": round(api_first, 2),
        "api_deep_p95_ms": round(api_deep, 2),
        "api_deep_page": api_number,
        "queue_list_p95_ms": round(timed["queue_list"]["p95"], 2),
        "queues_api_p95_ms": round(timed["queues_api"]["p95"], 2),
        "median_ms": {name: round(t["median"], 2) for name, t in timed.items()},
        "queries": {
            "page_first": _queries(client, page_url),
            "page_deep": _queries(client, deep_url),
            "api_first": _queries(client, api_url, **json_accept),
            "api_deep": _queries(client, deep_api, **json_accept),
            "queue_list": _queries(client, QUEUE_LIST_URL),
            "queues_api": _queries(client, QUEUES_API_URL, **json_accept),
        },
        "full_table_scan": _full_scan(matching),
    }
    say(
        f"  {found['matching']:,} match; p95 ms: page first {page_first:.1f}, page "
        f"{page_number} {page_deep:.1f}; API first {api_first:.1f}, API page {api_number} "
        f"{api_deep:.1f}; list of queues ({found['active']:,} active exceptions counted): "
        f"page {found['queue_list_p95_ms']:.1f}, API {found['queues_api_p95_ms']:.1f}\n"
    )
    return found


def _full_scan(matching: Any) -> bool:
    """Does the planner read the whole exceptions table for the page or its count?"""
    if connection.vendor != "postgresql":
        return False
    table = IntegrationException._meta.db_table
    plans = [
        matching.order_by(*ORDERING)[: PAGE_SIZE + 1].explain(),
        matching.order_by()[:1001].explain(),
    ]
    return any(f"Seq Scan on {table}" in plan for plan in plans)
