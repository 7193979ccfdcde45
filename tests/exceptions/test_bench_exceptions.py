"""`manage.py bench exceptions`, CI-sized: the bench runs end to end on the test database
and ends with the JSON line the issue asks for (figures for both sizes, ratios, targets, met)."""

from __future__ import annotations

import math

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from exceptions import benchmarks
from exceptions.choices import BulkStatus
from exceptions.models import BulkAction, IntegrationException
from integrations.choices import RunStatus
from integrations.models import SyncRun

pytestmark = pytest.mark.django_db

FIGURES = {
    "page_first_p95_ms",
    "page_deep_p95_ms",
    "api_first_p95_ms",
    "api_deep_p95_ms",
    "queue_list_p95_ms",
    "queues_api_p95_ms",
}
RATIOS = {"page_first", "page_deep", "api_first", "api_deep"}
MEASURED = RATIOS | {"queue_list", "queues_api"}


def test_bench_measures_both_sizes() -> None:
    lines: list[str] = []
    result = benchmarks.measure(small=200, large=2000, samples=2, deep_page=3, say=lines.append)

    assert IntegrationException.objects.count() == 2000
    assert result["bench"] == "exceptions"
    assert result["targets"] == {"ratio_max": 2.0}
    for size, rows in (("small", 200), ("large", 2000)):
        figures = result[size]
        assert figures["rows"] == rows
        assert set(figures) >= FIGURES
        assert all(figures[name] > 0 for name in FIGURES)
        assert figures["matching"] > 0
        assert figures["active"] >= figures["matching"]  # what the list of queues counts
        assert set(figures["queries"]) == MEASURED
    assert set(result["ratios"]) == RATIOS
    assert set(result["met"]) == {f"{name}_ratio" for name in RATIOS} | {
        "same_queries_at_both_sizes",
        "no_full_table_scan",
    }
    assert "bulk_retry" not in result  # bulk=0 (the default of measure) skips it
    # no N+1: a page of 50 costs the queries a page of 2 costs
    assert result["met"]["same_queries_at_both_sizes"]
    assert any("2,000 exceptions in the table" in line for line in lines)


def test_bench_command_checks_its_sizes() -> None:
    with pytest.raises(CommandError, match="--large must be more than --small"):
        call_command("bench", "exceptions", "--small", "100", "--large", "100")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("bench", "exceptions", "--samples", "0")


def test_bench_bulk_retries_through_the_api_without_holding_the_request() -> None:
    lines: list[str] = []
    result = benchmarks.measure(
        small=100, large=200, samples=1, deep_page=1, bulk=50, say=lines.append
    )

    bulk = result["bulk_retry"]
    # the POST only saved and queued the action; the queued task did the work afterwards
    assert bulk["request_answer"] == {"status_code": 202, "status": "queued"}
    assert bulk["request_ms"] > 0
    assert bulk["preview_request_ms"] > 0
    assert bulk["preview"] == {"total": 50, "actionable": 50, "runs": 50, "polls": 0}
    assert (bulk["status"], bulk["total"], bulk["done"]) == ("finished", 50, 50)
    assert (bulk["succeeded"], bulk["failed"], bulk["exceptions_retrying"]) == (50, 0, 50)
    # every failed run resumed and handed to workers through the outbox, none of it sent
    assert bulk["runs_resumed"] == bulk["runs_queued_via_outbox"] == 50
    assert bulk["run_messages"] == math.ceil(50 / settings.RUN_BATCH_SIZE)
    assert bulk["run_messages_sent"] == 0
    assert bulk["audit_events"] >= 100  # each exception retried and each run resumed
    assert result["targets"] == {
        "ratio_max": 2.0,
        "bulk_retry_request_ms_max": 1000.0,
        "bulk_retry_completed": True,
    }
    assert {key: result["met"][key] for key in result["met"] if key.startswith("bulk")} == {
        "bulk_preview_request_ms": True,
        "bulk_retry_request_ms": True,
        "bulk_retry_completed": True,
        "bulk_retry_runs_resumed": True,
    }
    assert SyncRun.objects.filter(status=RunStatus.PENDING).count() == 50
    assert BulkAction.objects.get().status == BulkStatus.FINISHED
    assert any("50 runs resumed" in line for line in lines)


def test_bench_command_takes_a_bulk_size() -> None:
    with pytest.raises(CommandError, match="--bulk must be 0"):
        call_command("bench", "exceptions", "--bulk", "-1")
