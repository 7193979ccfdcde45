"""Connector health in the Prometheus text format, for the tools IT already runs.

Each scrape builds one health report (dashboards.health) and a fresh registry holding one
collector over it: no process-wide metric objects that drift between web processes or keep
a vanished connection's series. The figures are the report's, over its window: latency
quantiles as a summary without _count/_sum (the calls of the window are a gauge beside it,
since a sliding window is no counter), the rest as gauges.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import health

CONNECTION_LABELS = ["connection", "vendor", "system"]
VERDICT_VALUES = {health.GREEN: 0, health.AMBER: 1, health.RED: 2}


class HealthCollector(Collector):
    """Turns one HealthReport into metric families."""

    def __init__(self, report: health.HealthReport) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        report = self.report
        window = report.window

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=CONNECTION_LABELS)

        latency = Metric(
            "throughline_connector_latency_seconds",
            f"API call latency quantiles over the last {window} (all attempts of a call)",
            "summary",
        )
        calls = gauge("throughline_connector_calls", f"API calls over the last {window}")
        failed = gauge(
            "throughline_connector_failed_calls",
            f"calls that failed for connector reasons over the last {window}",
        )
        refused = gauge(
            "throughline_connector_refused_calls",
            f"calls whose data the vendor refused over the last {window}",
        )
        error_ratio = gauge(
            "throughline_connector_error_ratio", f"failed / calls over the last {window}"
        )
        recent_ratio = gauge(
            "throughline_connector_recent_error_ratio", "failed / calls over the last minute"
        )
        retried = gauge(
            "throughline_connector_retried_calls",
            f"calls that needed more than one attempt over the last {window}",
        )
        retries = gauge(
            "throughline_connector_retry_attempts",
            f"attempts beyond the first, summed over the last {window}",
        )
        headroom = gauge(
            "throughline_connector_rate_limit_headroom_ratio",
            "share of the vendor's rate limit left (latest rate-limit header)",
        )
        budget = gauge(
            "throughline_connector_api_budget_remaining",
            "remaining daily API requests, where the vendor reports them",
        )
        budget_max = gauge(
            "throughline_connector_api_budget_max", "daily API request limit of the vendor"
        )
        circuit = gauge(
            "throughline_connector_circuit_state",
            "derived circuit state: 0 closed, 1 half-open, 2 open",
        )
        last_success = gauge(
            "throughline_connector_last_success_timestamp_seconds",
            "Unix time of the latest successful API call",
        )
        last_sync = gauge(
            "throughline_connector_last_sync_timestamp_seconds",
            "Unix time of the latest successful call or watermark move",
        )
        verdict = gauge("throughline_connector_health", "health verdict: 0 green, 1 amber, 2 red")
        backlog = gauge(
            "throughline_connector_queue_backlog", "messages waiting in the connection's queue"
        )

        for c in report.connections:
            labels = [c.name, c.vendor, c.system]
            label_map = dict(zip(CONNECTION_LABELS, labels, strict=True))
            for quantile, value in (
                ("0.5", c.latency.p50),
                ("0.95", c.latency.p95),
                ("0.99", c.latency.p99),
            ):
                if value is not None:
                    latency.add_sample(
                        latency.name, label_map | {"quantile": quantile}, value / 1000.0
                    )
            calls.add_metric(labels, c.calls)
            failed.add_metric(labels, c.failed_calls)
            refused.add_metric(labels, c.refused_calls)
            if c.error_rate is not None:
                error_ratio.add_metric(labels, c.error_rate)
            if c.recent_error_rate is not None:
                recent_ratio.add_metric(labels, c.recent_error_rate)
            retried.add_metric(labels, c.retried_calls)
            retries.add_metric(labels, c.extra_attempts)
            if c.headroom is not None:
                headroom.add_metric(labels, c.headroom)
            if c.budget is not None:
                budget.add_metric(labels, c.budget.remaining)
                budget_max.add_metric(labels, c.budget.max)
            circuit.add_metric(labels, health.CIRCUIT_VALUES[c.circuit])
            if c.last_success_at is not None:
                last_success.add_metric(labels, c.last_success_at.timestamp())
            if c.last_sync_at is not None:
                last_sync.add_metric(labels, c.last_sync_at.timestamp())
            verdict.add_metric(labels, VERDICT_VALUES[c.verdict])
            if c.backlog is not None:
                backlog.add_metric(labels, c.backlog)
        yield from (
            latency,
            calls,
            failed,
            refused,
            error_ratio,
            recent_ratio,
            retried,
            retries,
            headroom,
            budget,
            budget_max,
            circuit,
            last_success,
            last_sync,
            verdict,
            backlog,
        )

        queue_backlog = GaugeMetricFamily(
            "throughline_queue_backlog", "messages waiting in a Celery queue", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "throughline_queue_consumers",
            "workers consuming a Celery queue (latest worker report)",
            labels=["queue"],
        )
        for queue in report.queues:
            if queue.backlog is not None:
                queue_backlog.add_metric([queue.name], queue.backlog)
            if report.workers.known:
                consumers.add_metric([queue.name], len(queue.consumers))
        yield queue_backlog
        yield consumers
        yield GaugeMetricFamily(
            "throughline_broker_up",
            "1 when the broker answered the backlog query",
            value=0 if report.broker_error else 1,
        )
        yield GaugeMetricFamily(
            "throughline_outbox_unsent",
            "outbox messages not yet handed to the broker",
            value=report.outbox_unsent,
        )
        yield GaugeMetricFamily(
            "throughline_workers_up",
            "Celery workers that answered the latest ping (0 when the report is stale)",
            value=report.workers.up,
        )
        age = GaugeMetricFamily(
            "throughline_worker_report_age_seconds", "age of the latest worker report"
        )
        if report.workers.age_seconds is not None:
            age.add_metric([], report.workers.age_seconds)
        yield age
        yield GaugeMetricFamily(
            "throughline_health_window_seconds",
            "length of the window the connector figures cover",
            value=report.window_seconds,
        )


def render(report: health.HealthReport) -> bytes:
    """The report in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(report))
    return generate_latest(registry)
