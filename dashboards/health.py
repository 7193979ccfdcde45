"""Connector health for IT, from what Throughline itself recorded.

Per enabled connection, over a window (15 minutes by default; 1 hour or 24 hours on request):
API latency p50/p95/p99, error rate, retry volume, rate-limit headroom, the remaining daily API
budget where the vendor reports it, a derived circuit state, the last successful call and the
connection's watermarks; for the whole engine: backlog per Celery queue, unsent outbox
messages and the Celery workers. Each connection gets a verdict, red, amber or green, with the
reasons written out.

Where the figures come from:

* `integrations.models.ApiCall`, one row per logical vendor call (all its attempts). A bulk
  call that served a batch of runs is one row (`batch_key`, `runs_served`), so it counts once.
  Every query is bounded by `started_at` and filters by connection, so it walks the
  `(connection, started_at)` index however many million calls are stored.
* Percentiles are computed by the database where it can: PostgreSQL's `percentile_cont`
  over every call of the window. SQLite has no such aggregate; there they are computed in
  Python over the newest `percentile_sample` calls of the window (the report says which,
  and the size of the sample). Both interpolate linearly, so they agree on the same rows.
* "Failed" means a connector fault: transient (network, timeout, 5xx), rate limited, auth,
  an answer of the wrong shape, or an unclassified error. A vendor refusing *data*
  (validation, not found, conflict) is the vendor working correctly: those calls count as
  "refused", shown beside the error rate, and do not make a connection unhealthy.
* Rate-limit headroom is read from the headers the connectors keep in `ApiCall.rate_limit`
  (Salesforce's `Sforce-Limit-Info: api-usage=N/LIMIT`; the common `X-RateLimit-*` and
  `RateLimit-*` headers should a connector start keeping them). Kantata and NetSuite send
  none, so theirs is "not reported".
* The daily API budget: Salesforce's `/limits` resource (`DailyApiRequests`), fetched by the
  Celery task `dashboards.refresh_api_budgets` at most once per 5 minutes per connection and
  kept in Django's cache, or the api-usage of the latest call's `Sforce-Limit-Info`, whichever
  is newer. The page never calls a vendor.
* Workers: `dashboards.refresh_worker_status` (beat, every 30 s) pings the workers and reads
  the queues they consume into the cache; the page only reads that snapshot, so it never
  waits for a worker. A snapshot older than `worker_report_max_age` is "stale": the task runs
  on a worker, so a stale report means no worker (or no beat) is doing its job.
* Backlog: with a Redis broker, LLEN of each queue (`integrations.queues.all_queues()`, with
  Celery's priority sub-queues); with the filesystem broker, the message files of each queue
  in its data folder; plus the outbox messages not yet handed to the broker.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection as db_connection
from django.db.models import Aggregate, Count, FloatField, Max, Q, Sum
from django.utils import timezone

from integrations.choices import Vendor
from integrations.models import ApiCall, Connection, OutboxMessage, Watermark
from integrations.queues import DEFAULT_QUEUE, all_queues, queue_for

logger = logging.getLogger(__name__)

#: selectable windows: query value -> length
WINDOWS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
}
DEFAULT_WINDOW = "15m"
WINDOW_LABELS = {"15m": "15 minutes", "1h": "1 hour", "24h": "24 hours"}

#: error kinds (integrations.connectors.errors) that are the connector's fault
FAULT_KINDS = ("transient", "rate_limited", "auth", "bad_response", "error")
#: error kinds a circuit breaker would count (the vendor is down, throttling or refusing us)
BREAKER_KINDS = ("transient", "rate_limited", "auth")

GREEN, AMBER, RED = "green", "amber", "red"
VERDICT_RANK = {GREEN: 0, AMBER: 1, RED: 2}
VERDICT_LABELS = {GREEN: "Healthy", AMBER: "Warning", RED: "Unhealthy"}
CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
CIRCUIT_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

WORKERS_CACHE_KEY = "dashboards:health:workers"
BUDGET_CACHE_KEY = "dashboards:health:budget:{}"
BUDGET_LOCK_KEY = "dashboards:health:budget-lock:{}"

DEFAULTS: dict[str, Any] = {
    "p95_warning_ms": 2000.0,  # amber above this p95 latency
    "headroom_warning": 0.10,  # amber below this share of the rate limit or daily budget left
    "error_rate_red": 0.50,  # red at or above this error rate over the last minute
    "error_rate_warning": 0.10,  # amber at or above this error rate over the window
    "recent_seconds": 60,  # "the last minute" of the red rules and the half-open state
    "circuit_calls": 3,  # the circuit is open when this many latest calls all failed
    "percentile_sample": 5000,  # SQLite: newest calls of the window the percentiles use
    "worker_report_max_age": 90,  # seconds before the worker snapshot counts as stale
    "budget_refresh_seconds": 300,  # at most one /limits call per connection this often
}


def config() -> dict[str, Any]:
    """The thresholds: DEFAULTS overridden by settings.CONNECTOR_HEALTH."""
    return DEFAULTS | dict(getattr(settings, "CONNECTOR_HEALTH", {}) or {})


# -- figures -----------------------------------------------------------------------------------
@dataclass
class Latency:
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    avg: float | None = None
    max: float | None = None
    #: calls the percentiles were computed over
    sample_size: int = 0
    #: "database" (percentile_cont over every call of the window) or "sample" (Python, SQLite)
    method: str = "database"


@dataclass
class RateLimit:
    remaining: int
    limit: int
    header: str
    observed_at: datetime | None = None
    #: the limit is the vendor's daily API budget (Salesforce api-usage)
    daily: bool = False

    @property
    def headroom(self) -> float | None:
        return self.remaining / self.limit if self.limit > 0 else None


@dataclass
class ApiBudget:
    remaining: int
    max: int
    source: str
    observed_at: datetime | None = None

    @property
    def share_left(self) -> float | None:
        return self.remaining / self.max if self.max > 0 else None


@dataclass
class WatermarkInfo:
    stream: str
    value: str
    updated_at: datetime
    as_of: datetime | None = None

    @property
    def ago(self) -> str:
        return age_text(self.updated_at, self.as_of)


@dataclass
class ConnectionHealth:
    id: int
    name: str
    vendor: str
    system: str
    queue: str
    verdict: str = GREEN
    reasons: list[str] = field(default_factory=list)
    calls: int = 0
    failed_calls: int = 0
    refused_calls: int = 0
    auth_failures: int = 0
    rate_limited_calls: int = 0
    error_rate: float | None = None
    recent_calls: int = 0
    recent_failed: int = 0
    recent_error_rate: float | None = None
    recent_auth_failures: int = 0
    latency: Latency = field(default_factory=Latency)
    retried_calls: int = 0
    extra_attempts: int = 0
    rate_limit: RateLimit | None = None
    budget: ApiBudget | None = None
    circuit: str = CLOSED
    last_call_at: datetime | None = None
    #: the error kind and message of the latest call of the window, if it failed
    last_error_kind: str = ""
    last_error: str = ""
    last_success_at: datetime | None = None
    watermarks: list[WatermarkInfo] = field(default_factory=list)
    backlog: int | None = None

    #: when the report was made (the ages below are counted from it)
    as_of: datetime | None = None

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABELS[self.verdict]

    @property
    def vendor_label(self) -> str:
        return Vendor(self.vendor).label if self.vendor in Vendor.values else self.vendor

    @property
    def last_success_ago(self) -> str:
        return age_text(self.last_success_at, self.as_of)

    @property
    def budget_ago(self) -> str:
        return age_text(self.budget.observed_at if self.budget else None, self.as_of)

    @property
    def sampled(self) -> bool:
        """The percentiles cover only the newest calls of the window (SQLite)."""
        return self.latency.method == "sample" and self.latency.sample_size < self.calls

    @property
    def headroom(self) -> float | None:
        return self.rate_limit.headroom if self.rate_limit else None

    # percentages for the page (templates cannot multiply)
    @property
    def error_rate_percent(self) -> float | None:
        return None if self.error_rate is None else 100.0 * self.error_rate

    @property
    def recent_error_rate_percent(self) -> float | None:
        return None if self.recent_error_rate is None else 100.0 * self.recent_error_rate

    @property
    def headroom_percent(self) -> float | None:
        return None if self.headroom is None else 100.0 * self.headroom

    @property
    def budget_percent(self) -> float | None:
        share = self.budget.share_left if self.budget else None
        return None if share is None else 100.0 * share

    @property
    def last_sync_at(self) -> datetime | None:
        """The newer of the last successful call and the last watermark move."""
        stamps = [w.updated_at for w in self.watermarks]
        if self.last_success_at:
            stamps.append(self.last_success_at)
        return max(stamps) if stamps else None


@dataclass
class QueueBacklog:
    name: str
    backlog: int | None
    consumers: list[str] = field(default_factory=list)
    connection_id: int | None = None
    connection: str = ""


@dataclass
class WorkerInfo:
    name: str
    queues: list[str] = field(default_factory=list)


@dataclass
class WorkerStatus:
    #: ok (fresh report, workers answered), down (fresh report, none answered), stale (no
    #: report for too long), unknown (never reported)
    state: str
    checked_at: datetime | None = None
    age_seconds: float | None = None
    workers: list[WorkerInfo] = field(default_factory=list)
    error: str = ""

    @property
    def up(self) -> int:
        """Workers that answered the latest ping; 0 when the report is stale or missing."""
        return len(self.workers) if self.state in ("ok", "down") else 0

    @property
    def known(self) -> bool:
        return self.state in ("ok", "down")

    def consumers_of(self, queue: str) -> list[str]:
        return [w.name for w in self.workers if queue in w.queues]


@dataclass
class HealthReport:
    generated_at: datetime
    window: str
    window_seconds: int
    connections: list[ConnectionHealth]
    queues: list[QueueBacklog]
    broker: str
    broker_error: str
    outbox_unsent: int
    outbox_oldest_unsent_at: datetime | None
    workers: WorkerStatus
    thresholds: dict[str, Any]

    @property
    def verdict(self) -> str:
        worst = max((VERDICT_RANK[c.verdict] for c in self.connections), default=0)
        return {rank: name for name, rank in VERDICT_RANK.items()}[worst]

    @property
    def window_label(self) -> str:
        return WINDOW_LABELS[self.window]

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.connections if c.verdict == verdict)

    @property
    def summary(self) -> str:
        """One sentence for people and screen readers: how many are unhealthy and which."""
        if not self.connections:
            return "No enabled connections."
        red = [c.name for c in self.connections if c.verdict == RED]
        amber = [c.name for c in self.connections if c.verdict == AMBER]
        parts = []
        if red:
            parts.append(f"{len(red)} unhealthy ({', '.join(red)})")
        if amber:
            parts.append(f"{len(amber)} with warnings ({', '.join(amber)})")
        if not parts:
            return f"All {len(self.connections)} connections healthy."
        return "; ".join(parts) + "."


def age_text(at: datetime | None, now: datetime | None) -> str:
    """ "12 s ago", "4 min ago", "3 h ago", "2 d ago" ("" without a time)."""
    if at is None:
        return ""
    seconds = max(((now or timezone.now()) - at).total_seconds(), 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


# -- percentiles ---------------------------------------------------------------------------------
class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate `percentile_cont(f) WITHIN GROUP (ORDER BY x)`."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float, **extra: Any) -> None:
        fraction = float(fraction)  # a number, never text, goes into the SQL
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("a percentile fraction lies between 0 and 1")
        super().__init__(expression, fraction=repr(fraction), **extra)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def database_percentiles() -> bool:
    return db_connection.vendor == "postgresql"


# -- rate limits and budgets ------------------------------------------------------------------
_API_USAGE = re.compile(r"(?:^|[\s,;])api-usage=(\d+)/(\d+)")


def parse_rate_limit(
    headers: dict[str, Any], observed_at: datetime | None = None
) -> RateLimit | None:
    """Remaining and limit from the rate-limit headers a connector kept, if any."""
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    info = lowered.get("sforce-limit-info")
    if info:
        match = _API_USAGE.search(info)
        if match:
            used, limit = int(match.group(1)), int(match.group(2))
            return RateLimit(
                remaining=max(limit - used, 0),
                limit=limit,
                header="Sforce-Limit-Info",
                observed_at=observed_at,
                daily=True,
            )
    for prefix in ("x-ratelimit-", "ratelimit-", "x-rate-limit-"):
        remaining, limit = lowered.get(prefix + "remaining"), lowered.get(prefix + "limit")
        if remaining is None or limit is None:
            continue
        try:
            # RateLimit-Limit may carry a policy after the number ("100, 100;w=60")
            remaining_n = int(float(remaining.split(",")[0].split(";")[0]))
            limit_n = int(float(limit.split(",")[0].split(";")[0]))
        except ValueError:
            continue
        return RateLimit(
            remaining=max(remaining_n, 0),
            limit=limit_n,
            header=f"{prefix}remaining".title(),
            observed_at=observed_at,
        )
    return None


def cached_budget(connection_id: int) -> ApiBudget | None:
    """The daily API budget the refresh task read from the vendor (None before it has)."""
    data = cache.get(BUDGET_CACHE_KEY.format(connection_id))
    if not data:
        return None
    fetched = data.get("fetched_at")
    return ApiBudget(
        remaining=int(data["remaining"]),
        max=int(data["max"]),
        source=str(data.get("source", "limits")),
        observed_at=datetime.fromisoformat(fetched) if fetched else None,
    )


def refresh_api_budget(connection: Connection, *, force: bool = False) -> ApiBudget | None:
    """Read a Salesforce connection's `/limits` into the cache, at most once per
    `budget_refresh_seconds` per connection (across every process sharing the cache).

    Runs in a Celery task, never in a page request. The call is recorded like any other.
    Returns the budget read, or None when it was not time yet, the vendor reports none, or
    the call failed (the previous figure then stays in the cache with its own date).
    """
    if connection.vendor != Vendor.SALESFORCE:
        return None
    interval = int(config()["budget_refresh_seconds"])
    lock = BUDGET_LOCK_KEY.format(connection.pk)
    if force:
        cache.set(lock, True, timeout=interval)
    elif not cache.add(lock, True, timeout=interval):
        return None
    from integrations.connectors.errors import ConnectorError
    from integrations.connectors.registry import build_client
    from integrations.telemetry import CallBuffer

    calls = CallBuffer()
    try:
        with build_client(connection, on_call=calls) as client:
            limits = client.limits()  # type: ignore[attr-defined]
    except (ConnectorError, ValueError, KeyError) as exc:
        logger.warning("limits of connection %s could not be read: %s", connection.pk, exc)
        return None
    finally:
        calls.flush()
    daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
    if not isinstance(daily, dict) or "Max" not in daily or "Remaining" not in daily:
        logger.warning("limits of connection %s carry no DailyApiRequests", connection.pk)
        return None
    budget = ApiBudget(
        remaining=int(daily["Remaining"]),
        max=int(daily["Max"]),
        source="Salesforce /limits",
        observed_at=timezone.now(),
    )
    cache.set(
        BUDGET_CACHE_KEY.format(connection.pk),
        {
            "remaining": budget.remaining,
            "max": budget.max,
            "source": budget.source,
            "fetched_at": budget.observed_at.isoformat() if budget.observed_at else None,
        },
        timeout=24 * 3600,
    )
    return budget


def refresh_api_budgets(*, force: bool = False) -> int:
    """Refresh the budget of every enabled connection whose vendor reports one."""
    refreshed = 0
    for connection in Connection.objects.filter(enabled=True, vendor=Vendor.SALESFORCE):
        if refresh_api_budget(connection, force=force) is not None:
            refreshed += 1
    return refreshed


# -- workers -------------------------------------------------------------------------------------
def refresh_worker_status(app: Any = None, *, timeout: float | None = None) -> dict[str, Any]:
    """Ask the Celery workers for their queues (an answer is the ping) and keep the
    answers in the cache (the beat task's job).

    The replies are awaited `timeout` seconds: 1 s, or 3 s on the filesystem broker, which
    polls its folders once a second on both sides (a worker pinging from inside itself
    misses 1 s there).
    """
    if app is None:
        from console.celery import app
    if timeout is None:
        timeout = 3.0 if broker_kind() == "filesystem" else 1.0
    snapshot: dict[str, Any] = {"checked_at": timezone.now().isoformat(), "workers": []}
    try:
        # one broadcast: a worker that answers with its queues is up (a ping would say no more)
        active = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:  # the broker is down: report it, do not raise from the probe
        logger.warning("worker status could not be read: %s", exc)
        snapshot["error"] = f"{type(exc).__name__}: {exc}"[:300]
    else:
        snapshot["workers"] = [
            {
                "name": name,
                "queues": sorted(q.get("name", "") for q in active.get(name) or []),
            }
            for name in sorted(active)
        ]
    cache.set(WORKERS_CACHE_KEY, snapshot, timeout=24 * 3600)
    return snapshot


def worker_status(now: datetime | None = None) -> WorkerStatus:
    """The latest worker snapshot from the cache, judged by its age."""
    now = now or timezone.now()
    snapshot = cache.get(WORKERS_CACHE_KEY)
    if not snapshot:
        return WorkerStatus(state="unknown")
    checked = datetime.fromisoformat(snapshot["checked_at"])
    age = max((now - checked).total_seconds(), 0.0)
    workers = [WorkerInfo(w["name"], list(w.get("queues", []))) for w in snapshot["workers"]]
    if age > float(config()["worker_report_max_age"]):
        state = "stale"
    else:
        state = "ok" if workers else "down"
    return WorkerStatus(
        state=state,
        checked_at=checked,
        age_seconds=age,
        workers=workers,
        error=snapshot.get("error", ""),
    )


# -- backlog -------------------------------------------------------------------------------------
#: Celery's Redis transport keeps a priority's messages in `<queue>\x06\x16<priority>`
_REDIS_PRIORITY_SEP = "\x06\x16"
_REDIS_PRIORITY_STEPS = (3, 6, 9)


def broker_kind(url: str | None = None) -> str:
    url = url if url is not None else settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "sentinel"):
        return "redis"
    if scheme == "filesystem":
        return "filesystem"
    return scheme or "unknown"


def queue_backlog(
    queues: list[str],
    *,
    broker_url: str | None = None,
    transport_options: dict[str, Any] | None = None,
) -> tuple[dict[str, int | None], str]:
    """Messages waiting in each queue, and an error text ("" when the broker answered)."""
    url = broker_url if broker_url is not None else settings.CELERY_BROKER_URL
    options = (
        transport_options
        if transport_options is not None
        else getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    ) or {}
    kind = broker_kind(url)
    unknown: dict[str, int | None] = dict.fromkeys(queues)
    try:
        if kind == "redis" and not url.startswith("sentinel"):
            return _redis_backlog(queues, url, options), ""
        if kind == "filesystem":
            return _filesystem_backlog(queues, options), ""
    except Exception as exc:  # report the broker's trouble on the page, do not fail it
        logger.warning("queue backlog could not be read: %s", exc)
        return unknown, f"{type(exc).__name__}: {exc}"[:300]
    return unknown, f"backlog is not read from a {kind} broker"


def _redis_backlog(queues: list[str], url: str, options: dict[str, Any]) -> dict[str, int | None]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    prefix = str(options.get("global_keyprefix", ""))
    sep = str(options.get("sep", _REDIS_PRIORITY_SEP))
    try:
        pipe = client.pipeline(transaction=False)
        keys: list[tuple[str, str]] = []
        for queue in queues:
            for suffix in ["", *(f"{sep}{p}" for p in _REDIS_PRIORITY_STEPS)]:
                keys.append((queue, f"{prefix}{queue}{suffix}"))
                pipe.llen(keys[-1][1])
        counts: dict[str, int | None] = dict.fromkeys(queues, 0)
        for (queue, _key), n in zip(keys, pipe.execute(), strict=True):
            counts[queue] = (counts[queue] or 0) + int(n)
        return counts
    finally:
        client.close()


def _filesystem_backlog(queues: list[str], options: dict[str, Any]) -> dict[str, int | None]:
    """Kombu's filesystem transport names a message `<time>_<uuid>.<queue>.msg`."""
    folder = options.get("data_folder_in") or options.get("data_folder_out")
    if not folder:
        raise ValueError("the filesystem broker has no data_folder_in")
    counts: dict[str, int | None] = dict.fromkeys(queues, 0)
    with os.scandir(folder) as entries:
        for entry in entries:
            queue = entry.name.partition(".")[2].removesuffix(".msg")
            if queue in counts and entry.name.endswith(".msg"):
                counts[queue] = (counts[queue] or 0) + 1
    return counts


# -- the report ---------------------------------------------------------------------------------
def window_of(value: str | None) -> str:
    """A known window name (the default for anything else)."""
    return value if value in WINDOWS else DEFAULT_WINDOW


def build_report(window: str = DEFAULT_WINDOW, *, now: datetime | None = None) -> HealthReport:
    """Every enabled connection's health, the queues, the outbox and the workers."""
    window = window_of(window)
    now = now or timezone.now()
    cfg = config()
    since = now - WINDOWS[window]
    recent_since = now - timedelta(seconds=int(cfg["recent_seconds"]))
    connections = list(Connection.objects.filter(enabled=True).order_by("system", "name"))
    ids = [c.pk for c in connections]
    healths = {
        c.pk: ConnectionHealth(
            id=c.pk, name=c.name, vendor=c.vendor, system=c.system, queue=queue_for(c), as_of=now
        )
        for c in connections
    }

    _window_figures(healths, ids, since, now)
    _recent_figures(healths, ids, recent_since, now)
    _latencies(healths, ids, since, now, int(cfg["percentile_sample"]))
    for health in healths.values():
        _per_connection(health, since, now, cfg)
    for mark in Watermark.objects.filter(connection_id__in=ids).order_by("stream"):
        healths[mark.connection_id].watermarks.append(
            WatermarkInfo(mark.stream, mark.value, mark.updated_at, as_of=now)
        )

    workers = worker_status(now)
    queue_names = all_queues()
    counts, broker_error = queue_backlog(queue_names)
    owners = {h.queue: h for h in healths.values() if h.queue != DEFAULT_QUEUE}
    queues = [
        QueueBacklog(
            name=name,
            backlog=counts.get(name),
            consumers=workers.consumers_of(name),
            connection_id=owners[name].id if name in owners else None,
            connection=owners[name].name if name in owners else "",
        )
        for name in queue_names
    ]
    by_name = {q.name: q for q in queues}
    for health in healths.values():
        queue = by_name.get(health.queue)
        health.backlog = queue.backlog if queue else None
        _judge(health, cfg, workers, queue)

    unsent = OutboxMessage.objects.filter(sent_at__isnull=True)
    oldest = unsent.order_by("created_at").values_list("created_at", flat=True).first()
    return HealthReport(
        generated_at=now,
        window=window,
        window_seconds=int(WINDOWS[window].total_seconds()),
        connections=[healths[pk] for pk in ids],
        queues=queues,
        broker=broker_kind(),
        broker_error=broker_error,
        outbox_unsent=unsent.count(),
        outbox_oldest_unsent_at=oldest,
        workers=workers,
        thresholds={
            k: cfg[k]
            for k in (
                "p95_warning_ms",
                "headroom_warning",
                "error_rate_red",
                "error_rate_warning",
                "recent_seconds",
                "circuit_calls",
            )
        },
    )


def _calls(ids: list[int], since: datetime, now: datetime):
    return ApiCall.objects.filter(
        connection_id__in=ids, started_at__gte=since, started_at__lte=now
    ).order_by()


def _window_figures(
    healths: dict[int, ConnectionHealth], ids: list[int], since: datetime, now: datetime
) -> None:
    """Counts, error rate, retries and latency average/max in one grouped query."""
    faults = Q(error_kind__in=FAULT_KINDS)
    rows = (
        _calls(ids, since, now)
        .values("connection_id")
        .annotate(
            calls=Count("id"),
            failed=Count("id", filter=faults),
            refused=Count("id", filter=~Q(error_kind="") & ~faults),
            auth=Count("id", filter=Q(error_kind="auth")),
            throttled=Count("id", filter=Q(error_kind="rate_limited")),
            retried=Count("id", filter=Q(attempts__gt=1)),
            attempts=Sum("attempts"),
            latency_sum=Sum("latency_ms"),
            latency_max=Max("latency_ms"),
            last_call=Max("started_at"),
        )
    )
    for row in rows:
        health = healths[row["connection_id"]]
        health.calls = row["calls"]
        health.failed_calls = row["failed"]
        health.refused_calls = row["refused"]
        health.auth_failures = row["auth"]
        health.rate_limited_calls = row["throttled"]
        health.retried_calls = row["retried"]
        health.extra_attempts = int(row["attempts"] or 0) - row["calls"]
        health.error_rate = row["failed"] / row["calls"] if row["calls"] else None
        health.latency.avg = (row["latency_sum"] or 0.0) / row["calls"] if row["calls"] else None
        health.latency.max = row["latency_max"]
        health.last_call_at = row["last_call"]


def _recent_figures(
    healths: dict[int, ConnectionHealth], ids: list[int], since: datetime, now: datetime
) -> None:
    rows = (
        _calls(ids, since, now)
        .values("connection_id")
        .annotate(
            calls=Count("id"),
            failed=Count("id", filter=Q(error_kind__in=FAULT_KINDS)),
            auth=Count("id", filter=Q(error_kind="auth")),
        )
    )
    for row in rows:
        health = healths[row["connection_id"]]
        health.recent_calls = row["calls"]
        health.recent_failed = row["failed"]
        health.recent_auth_failures = row["auth"]
        health.recent_error_rate = row["failed"] / row["calls"] if row["calls"] else None


def _latencies(
    healths: dict[int, ConnectionHealth],
    ids: list[int],
    since: datetime,
    now: datetime,
    sample: int,
) -> None:
    if not ids:
        return
    if database_percentiles():
        rows = (
            _calls(ids, since, now)
            .values("connection_id")
            .annotate(
                n=Count("id"),
                p50=PercentileCont("latency_ms", 0.50),
                p95=PercentileCont("latency_ms", 0.95),
                p99=PercentileCont("latency_ms", 0.99),
            )
        )
        for row in rows:
            latency = healths[row["connection_id"]].latency
            latency.p50, latency.p95, latency.p99 = row["p50"], row["p95"], row["p99"]
            latency.sample_size = row["n"]
            latency.method = "database"
        return
    for pk in ids:  # SQLite: the newest `sample` calls, read backwards along the index
        values = list(
            ApiCall.objects.filter(connection_id=pk, started_at__gte=since, started_at__lte=now)
            .order_by("-started_at")
            .values_list("latency_ms", flat=True)[:sample]
        )
        latency = healths[pk].latency
        latency.method = "sample"
        latency.sample_size = len(values)
        values.sort()
        latency.p50 = percentile_cont(values, 0.50)
        latency.p95 = percentile_cont(values, 0.95)
        latency.p99 = percentile_cont(values, 0.99)


def _per_connection(
    health: ConnectionHealth, since: datetime, now: datetime, cfg: dict[str, Any]
) -> None:
    """The figures that need a connection's latest rows: circuit, headroom, last success."""
    mine = ApiCall.objects.filter(connection_id=health.id, started_at__lte=now)
    latest = list(
        mine.filter(started_at__gte=since)
        .order_by("-started_at")
        .values_list("error_kind", "started_at", "error_message")[: int(cfg["circuit_calls"])]
    )
    health.circuit = derive_circuit(
        [(kind, at) for kind, at, _msg in latest],
        calls=int(cfg["circuit_calls"]),
        recent_since=now - timedelta(seconds=int(cfg["recent_seconds"])),
    )
    if latest and latest[0][0]:
        health.last_error_kind = latest[0][0]
        health.last_error = latest[0][2][:300]
    health.last_success_at = (
        mine.filter(error_kind="")
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    limited = (
        mine.filter(started_at__gte=since)
        .exclude(rate_limit={})
        .order_by("-started_at")
        .values_list("rate_limit", "started_at")
        .first()
    )
    if limited:
        health.rate_limit = parse_rate_limit(limited[0], limited[1])
    budgets = [b for b in (cached_budget(health.id), _header_budget(health.rate_limit)) if b]
    if budgets:
        health.budget = max(
            budgets, key=lambda b: b.observed_at.timestamp() if b.observed_at else 0
        )


def _header_budget(rate_limit: RateLimit | None) -> ApiBudget | None:
    if rate_limit is None or not rate_limit.daily:
        return None
    return ApiBudget(
        remaining=rate_limit.remaining,
        max=rate_limit.limit,
        source=f"{rate_limit.header} header",
        observed_at=rate_limit.observed_at,
    )


def derive_circuit(
    latest: list[tuple[str, datetime]], *, calls: int, recent_since: datetime
) -> str:
    """The circuit state derived from the latest calls (newest first), not read from a breaker.

    Throughline's clients retry with backoff but hold no breaker of their own, so this is a
    reading of the record: "open" when the latest `calls` calls of the window all failed
    with transient, rate-limit or auth errors (the vendor is down, throttling us or refusing
    our credentials); "half-open" when such a failure is among those calls and happened within
    the recent seconds, but the latest call got through (it succeeded, or the vendor answered
    about the data, such as a 404: the vendor is coming back); "closed" otherwise.
    """
    if not latest:
        return CLOSED
    broke = [kind in BREAKER_KINDS for kind, _at in latest]
    if len(latest) >= calls and all(broke):
        return OPEN
    if not broke[0] and any(
        b and at >= recent_since for b, (_k, at) in zip(broke, latest, strict=True)
    ):
        return HALF_OPEN
    return CLOSED


def _judge(
    health: ConnectionHealth,
    cfg: dict[str, Any],
    workers: WorkerStatus,
    queue: QueueBacklog | None,
) -> None:
    """Red for a connection that is failing now, amber for one to watch, green otherwise."""
    red: list[str] = []
    amber: list[str] = []
    recent = int(cfg["recent_seconds"])
    if health.recent_error_rate is not None and health.recent_error_rate >= cfg["error_rate_red"]:
        red.append(
            f"{health.recent_failed} of {health.recent_calls} calls failed in the last "
            f"{recent} s ({health.recent_error_rate:.0%})"
        )
    if health.circuit == OPEN:
        red.append(f"circuit open: the last {cfg['circuit_calls']} calls all failed")
    if health.recent_auth_failures or health.last_error_kind == "auth":
        red.append("the vendor refuses Throughline's credentials (auth failures)")
    if health.budget and health.budget.max and health.budget.remaining <= 0:
        red.append("daily API budget exhausted")

    if health.latency.p95 is not None and health.latency.p95 > cfg["p95_warning_ms"]:
        amber.append(
            f"p95 latency {health.latency.p95:.0f} ms above {cfg['p95_warning_ms']:.0f} ms"
        )
    headroom = health.headroom
    if headroom is not None and headroom < cfg["headroom_warning"]:
        amber.append(f"rate-limit headroom {headroom:.1%} left")
    share = health.budget.share_left if health.budget else None
    if share is not None and 0 < share < cfg["headroom_warning"]:
        amber.append(f"daily API budget {share:.1%} left")
    if health.error_rate is not None and health.error_rate >= cfg["error_rate_warning"]:
        amber.append(f"error rate {health.error_rate:.0%} over the window")
    if health.circuit == HALF_OPEN:
        amber.append("circuit half-open: recent failures, the latest call succeeded")
    if queue is not None and workers.state == "ok" and not queue.consumers:
        amber.append(f"no worker consumes its queue {queue.name}")

    health.reasons = red + amber
    health.verdict = RED if red else AMBER if amber else GREEN
