"""Connector health: figures from recorded API calls, verdicts from a failing stand-in, the
Salesforce API budget, the worker and queue figures, the page and JSON API, and /metrics
(parsed with prometheus_client's own parser) with its access rules."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from console.choices import TeamKind
from dashboards import health, health_tasks
from integrations.choices import Vendor
from integrations.connectors.errors import ConnectorError
from integrations.connectors.registry import build_client
from integrations.models import ApiCall, Connection, OutboxMessage
from integrations.telemetry import CallBuffer
from tests.factories import make_connection, make_team, make_user


@pytest.fixture(autouse=True)
def own_cache(settings: Any) -> None:
    """A private in-memory cache per test (the project's default is a shared folder)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"health-{uuid.uuid4()}",
        }
    }


def calls(connection: Connection, *rows: dict[str, Any], now: datetime | None = None) -> None:
    """ApiCall rows: each dict may set latency_ms, error_kind, attempts, rate_limit, ago
    (seconds before now)."""
    now = now or timezone.now()
    ApiCall.objects.bulk_create(
        ApiCall(
            connection=connection,
            operation="test.call",
            method="GET",
            path="/x",
            status_code=row.get("status", 500 if row.get("error_kind") else 200),
            latency_ms=row.get("latency_ms", 10.0),
            attempts=row.get("attempts", 1),
            error_kind=row.get("error_kind", ""),
            error_message=row.get("error_message", ""),
            rate_limit=row.get("rate_limit", {}),
            started_at=now - timedelta(seconds=row.get("ago", 5)),
        )
        for row in rows
    )


def of(report: health.HealthReport, connection: Connection) -> health.ConnectionHealth:
    return next(c for c in report.connections if c.id == connection.pk)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- figures from known rows ---------------------------------------------------------------------
def test_percentile_cont_interpolates_like_postgresql() -> None:
    values = [float(v) for v in range(10, 101, 10)]
    assert health.percentile_cont(values, 0.5) == pytest.approx(55.0)
    assert health.percentile_cont(values, 0.95) == pytest.approx(95.5)
    assert health.percentile_cont(values, 0.99) == pytest.approx(99.1)
    assert health.percentile_cont([7.0], 0.99) == 7.0
    assert health.percentile_cont([], 0.5) is None


@pytest.mark.django_db
def test_percentiles_error_rate_and_retries_over_known_calls() -> None:
    conn = make_connection(Vendor.KANTATA)
    other = make_connection(Vendor.NETSUITE)
    latencies = range(10, 101, 10)
    kinds = ["transient", "rate_limited", "validation"] + [""] * 7
    calls(
        conn,
        *(
            {"latency_ms": float(ms), "error_kind": kind, "attempts": 3 if ms in (20, 30) else 1}
            for ms, kind in zip(latencies, kinds, strict=True)
        ),
        {"latency_ms": 99999.0, "error_kind": "transient", "ago": 20 * 60},  # before the window
    )
    calls(other, {"latency_ms": 5000.0, "error_kind": "auth"})

    report = health.build_report("15m")
    figures = of(report, conn)

    assert figures.calls == 10
    assert figures.failed_calls == 2  # the validation refusal is the vendor working
    assert figures.refused_calls == 1
    assert figures.error_rate == pytest.approx(0.2)
    assert figures.latency.p50 == pytest.approx(55.0)
    assert figures.latency.p95 == pytest.approx(95.5)
    assert figures.latency.p99 == pytest.approx(99.1)
    assert figures.latency.max == pytest.approx(100.0)
    assert figures.latency.sample_size == 10
    expected_method = "database" if health.database_percentiles() else "sample"
    assert figures.latency.method == expected_method
    assert figures.retried_calls == 2
    assert figures.extra_attempts == 4
    assert figures.last_success_at is not None

    wider = of(health.build_report("1h"), conn)
    assert wider.calls == 11
    assert wider.failed_calls == 3


@pytest.mark.django_db
def test_sampled_percentiles_use_the_newest_calls_only(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the path SQLite takes (PostgreSQL computes them over every call): forced on either
    monkeypatch.setattr(health, "database_percentiles", lambda: False)
    settings.CONNECTOR_HEALTH = {"percentile_sample": 3}
    conn = make_connection(Vendor.KANTATA)
    calls(conn, *({"latency_ms": float(ms), "ago": 600 - ms} for ms in (1, 2, 3, 400, 500, 600)))
    latency = of(health.build_report(), conn).latency
    assert latency.sample_size == 3
    assert latency.p50 == pytest.approx(500.0)  # of 400, 500, 600 (the newest three)


@pytest.mark.django_db
def test_a_bulk_call_for_many_runs_counts_once() -> None:
    conn = make_connection(Vendor.KANTATA)
    ApiCall.objects.create(
        connection=conn,
        operation="kantata.workspaces.bulk",
        method="POST",
        path="/api/v1/workspaces.json",
        status_code=200,
        latency_ms=40.0,
        batch_key="batch-1",
        runs_served=50,
        started_at=timezone.now(),
    )
    assert of(health.build_report(), conn).calls == 1


def test_circuit_is_derived_from_the_latest_calls() -> None:
    now = timezone.now()
    recent = now - timedelta(seconds=60)
    at = [now - timedelta(seconds=s) for s in (1, 2, 3, 4)]
    derive = health.derive_circuit
    assert derive([], calls=3, recent_since=recent) == health.CLOSED
    failing = [("transient", at[0]), ("auth", at[1]), ("rate_limited", at[2])]
    assert derive(failing, calls=3, recent_since=recent) == health.OPEN
    assert derive(failing[:2], calls=3, recent_since=recent) == health.CLOSED  # too few
    assert (
        derive([("validation", at[0]), *failing[1:]], calls=3, recent_since=recent)
        == health.HALF_OPEN
    )
    back = [("", at[0]), ("transient", at[1]), ("transient", at[2])]
    assert derive(back, calls=3, recent_since=recent) == health.HALF_OPEN
    long_ago = [("", at[0]), ("transient", now - timedelta(minutes=10))]
    assert derive(long_ago, calls=3, recent_since=recent) == health.CLOSED


def test_rate_limit_headers_are_parsed() -> None:
    info = health.parse_rate_limit(
        {"Sforce-Limit-Info": "api-usage=14250/15000, per-app-api-usage=17/250(appName=x)"}
    )
    assert info is not None
    assert (info.remaining, info.limit, info.daily) == (750, 15000, True)
    assert info.headroom == pytest.approx(0.05)
    generic = health.parse_rate_limit({"X-RateLimit-Remaining": "40", "X-RateLimit-Limit": "100"})
    assert generic is not None
    assert (generic.remaining, generic.limit, generic.daily) == (40, 100, False)
    assert health.parse_rate_limit({}) is None
    assert health.parse_rate_limit({"Sforce-Limit-Info": "garbage"}) is None


@pytest.mark.django_db
def test_verdicts_from_recorded_calls(settings: Any) -> None:
    settings.CONNECTOR_HEALTH = {"p95_warning_ms": 500.0}
    quiet = make_connection(Vendor.KANTATA)
    slow = make_connection(Vendor.NETSUITE)
    throttled = make_connection(Vendor.SALESFORCE)
    locked_out = make_connection(Vendor.KANTATA)
    calls(slow, *({"latency_ms": 900.0} for _ in range(5)))
    calls(throttled, {"rate_limit": {"Sforce-Limit-Info": "api-usage=14600/15000"}})
    calls(locked_out, {"error_kind": "auth", "status": 401, "ago": 30}, {"ago": 20})

    report = health.build_report()
    assert of(report, quiet).verdict == health.GREEN
    assert of(report, quiet).calls == 0
    assert of(report, slow).verdict == health.AMBER
    assert "p95 latency" in of(report, slow).reasons[0]
    assert of(report, throttled).verdict == health.AMBER
    assert of(report, throttled).budget.remaining == 400
    assert of(report, throttled).budget.source == "Sforce-Limit-Info header"
    assert of(report, locked_out).verdict == health.RED
    assert report.verdict == health.RED
    assert "1 unhealthy" in report.summary


# -- a failing stand-in turns its connection red ---------------------------------------------
def _kantata_calls(connection: Connection, n: int) -> None:
    buffer = CallBuffer()
    with build_client(connection, on_call=buffer) as client:
        for _ in range(n):
            with contextlib.suppress(ConnectorError):
                client.get("workspaces", 1)  # type: ignore[attr-defined]
    buffer.flush()


@pytest.mark.django_db(transaction=True)
def test_connection_turns_red_when_its_standin_fails_and_recovers(demo: Any) -> None:
    kantata = Connection.objects.get(vendor=Vendor.KANTATA)
    it = make_user("ivy", team=make_team(TeamKind.IT))
    client = signed_in(it)

    _kantata_calls(kantata, 2)
    body = client.get("/api/v1/health/").json()
    entry = next(c for c in body["connections"] if c["id"] == kantata.pk)
    assert entry["verdict"] == "green", entry["reasons"]

    demo["kantata"].state.add_fault(method="GET", path="/api/v1/workspaces", status=503)
    _kantata_calls(kantata, 3)

    body = client.get("/api/v1/health/").json()
    entry = next(c for c in body["connections"] if c["id"] == kantata.pk)
    assert entry["verdict"] == "red"
    assert entry["circuit"] == "open"
    assert entry["recent_failed"] == 3
    assert entry["retried_calls"] == 3  # a GET is retried: 4 attempts each
    assert entry["extra_attempts"] == 9
    assert any("failed in the last 60 s" in r for r in entry["reasons"])
    assert body["verdict"] == "red"

    page = client.get(reverse("dashboards:health")).content.decode()
    assert 'class="health-card health-red"' in page
    assert "Unhealthy" in page
    fragment = client.get(reverse("dashboards:health") + "?fragment=1")
    assert fragment["X-Health-Fragment"] == "1"
    assert "health-red" in fragment.content.decode()
    assert "<html" not in fragment.content.decode()

    demo["kantata"].state.clear_faults()
    _kantata_calls(kantata, 1)
    entry = next(
        c for c in client.get("/api/v1/health/").json()["connections"] if c["id"] == kantata.pk
    )
    assert entry["circuit"] == "half-open"
    assert entry["verdict"] == "red"  # half of the last minute's calls still failed


# -- the Salesforce API budget --------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_budget_from_salesforce_limits_at_most_once_per_five_minutes(demo: Any) -> None:
    salesforce = Connection.objects.get(vendor=Vendor.SALESFORCE)
    state = demo["salesforce"].state
    state.daily_limit = 1000

    assert health_tasks.refresh_api_budgets.delay().get() == 1
    budget = of(health.build_report(), salesforce).budget
    assert budget is not None
    assert budget.source == "Salesforce /limits"
    assert budget.max == 1000
    assert 0 < budget.remaining < 1000
    limits_calls = [c for c in state.calls if c["path"].endswith("/limits")]
    assert len(limits_calls) == 1
    # the limits call itself is recorded like any other vendor call
    assert ApiCall.objects.filter(connection=salesforce, operation="salesforce.limits").count() == 1

    assert health_tasks.refresh_api_budgets.delay().get() == 0  # not again within 5 minutes
    assert len([c for c in state.calls if c["path"].endswith("/limits")]) == 1

    state.api_usage = 950  # 95 % of the day's budget used
    buffer = CallBuffer()
    with build_client(salesforce, on_call=buffer) as client:
        client.limits()  # type: ignore[attr-defined]  (any call: it is the header that counts)
    buffer.flush()
    figures = of(health.build_report(), salesforce)
    assert figures.budget.source == "Sforce-Limit-Info header"  # newer than the /limits figure
    assert figures.budget.remaining == 1000 - 951
    assert figures.headroom == pytest.approx(49 / 1000)
    assert figures.verdict == health.AMBER
    assert any("headroom" in r for r in figures.reasons)


# -- workers and queues -------------------------------------------------------------------------
class FakeInspect:
    def __init__(self, replies: dict[str, Any], queues: dict[str, Any]) -> None:
        self.replies, self.queues = replies, queues

    def ping(self) -> dict[str, Any]:
        return self.replies

    def active_queues(self) -> dict[str, Any]:
        return self.queues


class FakeApp:
    def __init__(self, inspect: FakeInspect | Exception) -> None:
        self._inspect = inspect
        self.control = self

    def inspect(self, timeout: float) -> FakeInspect:
        if isinstance(self._inspect, Exception):
            raise self._inspect
        return self._inspect


@pytest.mark.django_db
def test_worker_status_from_the_cached_ping(settings: Any) -> None:
    settings.CELERY_QUEUE_PER_CONNECTION = True
    assert health.worker_status().state == "unknown"
    served = make_connection(Vendor.KANTATA)
    unserved = make_connection(Vendor.NETSUITE)
    app = FakeApp(
        FakeInspect(
            {"w1@host": {"ok": "pong"}},
            {"w1@host": [{"name": "celery"}, {"name": f"conn-{served.pk}"}]},
        )
    )
    health.refresh_worker_status(app)

    report = health.build_report()
    assert report.workers.state == "ok"
    assert report.workers.up == 1
    queues = {q.name: q for q in report.queues}
    assert queues[f"conn-{served.pk}"].consumers == ["w1@host"]
    assert queues[f"conn-{served.pk}"].connection == served.name
    assert queues[f"conn-{unserved.pk}"].consumers == []
    assert of(report, served).verdict == health.GREEN
    assert of(report, unserved).verdict == health.AMBER
    assert f"no worker consumes its queue conn-{unserved.pk}" in of(report, unserved).reasons

    later = timezone.now() + timedelta(seconds=200)
    stale = health.worker_status(later)
    assert (stale.state, stale.up) == ("stale", 0)

    health.refresh_worker_status(FakeApp(FakeInspect({}, {})))
    assert health.worker_status().state == "down"
    health.refresh_worker_status(FakeApp(ConnectionError("broker down")))
    status = health.worker_status()
    assert (status.state, status.up) == ("down", 0)
    assert "broker down" in status.error


def test_filesystem_backlog_counts_message_files(tmp_path: Any) -> None:
    for name in ("1_a.celery.msg", "2_b.celery.msg", "3_c.conn-7.msg", "4_d.conn-70.msg"):
        (tmp_path / name).write_bytes(b"{}")
    (tmp_path / "stray.txt").write_text("x")
    counts, error = health.queue_backlog(
        ["celery", "conn-7", "conn-8"],
        broker_url="filesystem://localhost//",
        transport_options={"data_folder_in": str(tmp_path)},
    )
    assert error == ""
    assert counts == {"celery": 2, "conn-7": 1, "conn-8": 0}


def test_redis_backlog_sums_llen_with_priority_queues(monkeypatch: Any) -> None:
    lengths = {"celery": 4, "celery\x06\x169": 1, "conn-3": 2}
    seen: list[str] = []

    class Pipeline:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def llen(self, key: str) -> None:
            self.keys.append(key)

        def execute(self) -> list[int]:
            seen.extend(self.keys)
            return [lengths.get(k, 0) for k in self.keys]

    class FakeRedis:
        def pipeline(self, transaction: bool = True) -> Pipeline:
            return Pipeline()

        def close(self) -> None:
            pass

    import redis

    monkeypatch.setattr(redis.Redis, "from_url", classmethod(lambda cls, url, **kw: FakeRedis()))
    counts, error = health.queue_backlog(
        ["celery", "conn-3"], broker_url="redis://127.0.0.1:6379/15", transport_options={}
    )
    assert error == ""
    assert counts == {"celery": 5, "conn-3": 2}
    assert "celery" in seen and "conn-3" in seen


def test_unreachable_broker_is_reported_not_raised() -> None:
    counts, error = health.queue_backlog(
        ["celery"], broker_url="redis://127.0.0.1:9/0", transport_options={}
    )
    assert counts == {"celery": None}
    assert error


# -- pages, API and the home page of IT -----------------------------------------------------
@pytest.mark.django_db
def test_health_page_requires_login_and_offers_windows() -> None:
    url = reverse("dashboards:health")
    assert Client().get(url).status_code == 302
    conn = make_connection(Vendor.NETSUITE, name="NetSuite (test)")
    calls(conn, {"latency_ms": 12.0})
    body = signed_in(make_user("pat")).get(url + "?window=24h").content.decode()
    assert "NetSuite (test)" in body
    assert 'href="?window=24h" aria-current="page"' in body
    assert 'data-health-refresh="15"' in body
    assert "js/health.js" in body
    assert 'href="/dashboards/health/" aria-current="page"' in body  # the nav link


@pytest.mark.django_db
def test_api_answers_the_window_and_is_in_the_schema() -> None:
    client = signed_in(make_user("pat"))
    assert Client().get("/api/v1/health/").status_code in (401, 403)
    body = client.get("/api/v1/health/?window=1h").json()
    assert body["window"] == "1h"
    assert body["window_seconds"] == 3600
    assert {"connections", "queues", "workers", "outbox_unsent", "verdict"} <= body.keys()
    schema = client.get("/api/v1/schema/").content.decode()
    assert "/api/v1/health/" in schema


@pytest.mark.django_db
def test_it_members_start_at_connector_health() -> None:
    it = make_user("ivy", team=make_team(TeamKind.IT))
    body = signed_in(it).get(reverse("home")).content.decode()
    assert 'id="it-health-title"' in body
    assert f'href="{reverse("dashboards:health")}"' in body
    finance = make_user("fin", team=make_team(TeamKind.FINANCE))
    assert 'id="it-health-title"' not in signed_in(finance).get(reverse("home")).content.decode()


# -- /metrics ----------------------------------------------------------------------------------
def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.django_db
def test_metrics_parse_as_prometheus_text() -> None:
    conn = make_connection(Vendor.SALESFORCE, name="CRM")
    calls(
        conn,
        *({"latency_ms": float(ms)} for ms in range(10, 101, 10)),
        {"latency_ms": 10.0, "error_kind": "transient", "attempts": 4, "ago": 1},
        {"latency_ms": 10.0, "rate_limit": {"Sforce-Limit-Info": "api-usage=250/1000"}, "ago": 2},
    )
    OutboxMessage.objects.create(task="integrations.noop")

    response = Client().get("/metrics")  # the test client's address is 127.0.0.1
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = _families(response.content.decode())

    labels = {"connection": "CRM", "vendor": "salesforce", "system": "crm"}

    def value(family: str, **extra: str) -> float:
        wanted = labels | extra
        samples = [s for s in families[family].samples if s.labels == wanted]
        assert len(samples) == 1, (family, families[family].samples)
        return samples[0].value

    assert families["throughline_connector_latency_seconds"].type == "summary"
    report = of(health.build_report(), conn)
    assert value("throughline_connector_latency_seconds", quantile="0.5") == pytest.approx(
        report.latency.p50 / 1000
    )
    assert value("throughline_connector_calls") == 12
    assert value("throughline_connector_error_ratio") == pytest.approx(1 / 12)
    assert value("throughline_connector_retried_calls") == 1
    assert value("throughline_connector_retry_attempts") == 3
    assert value("throughline_connector_rate_limit_headroom_ratio") == pytest.approx(0.75)
    assert value("throughline_connector_api_budget_remaining") == 750
    assert value("throughline_connector_circuit_state") == 0
    assert value("throughline_connector_last_success_timestamp_seconds") == pytest.approx(
        report.last_success_at.timestamp()
    )
    assert value("throughline_connector_health") == 0
    assert families["throughline_outbox_unsent"].samples[0].value == 1
    assert families["throughline_workers_up"].samples[0].value == 0  # no report yet
    queue_names = {s.labels["queue"] for s in families["throughline_queue_backlog"].samples}
    assert "celery" in queue_names or families["throughline_broker_up"].samples[0].value == 0


@pytest.mark.django_db
def test_metrics_access_rules(settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "10.8.0.0/16"]
    settings.METRICS_TOKEN = ""
    client = Client()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.8.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    # a forwarded-for header does not open it
    assert (
        client.get(
            "/metrics", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="127.0.0.1"
        ).status_code
        == 403
    )
    # no token configured: a bearer is refused even from an allowed address
    denied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer x")
    assert denied.status_code == 401
    assert denied["WWW-Authenticate"].startswith("Bearer")

    settings.METRICS_TOKEN = "s3cret-token"
    ok = client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
    wrong = client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401

    # a signed-in user may look from anywhere
    user_client = signed_in(make_user("pat"))
    assert user_client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.post("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 405
