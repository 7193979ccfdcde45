"""`manage.py bench dashboards`, CI-sized: the bench loads both sizes on the test database,
measures both pages and ends with the JSON line the issue asks for."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from dashboards import benchmarks, rollups
from dashboards.models import KpiRollup, MilestoneFact
from exceptions.models import IntegrationException
from integrations.models import ApiCall

pytestmark = pytest.mark.django_db


def test_bench_measures_both_sizes() -> None:
    lines: list[str] = []
    result = benchmarks.measure(small=200, large=2000, samples=2, say=lines.append)

    assert ApiCall.objects.count() == 1700
    assert IntegrationException.objects.count() == 200
    assert MilestoneFact.objects.count() == 100
    assert not rollups.check()  # the loaded rollups are what a rebuild gives
    kpis = set(KpiRollup.objects.values_list("kpi", flat=True))
    assert {"exceptions_opened", "milestones_completed"} <= kpis
    assert result["bench"] == "dashboards"
    assert result["targets"] == {"kpi_ratio_max": 2.0, "health_ratio_max": 2.0}
    for size, events in (("small", 200), ("large", 2000)):
        figures = result[size]
        assert figures["events"] == events
        assert figures["api_calls"] + figures["exceptions"] + figures["milestones"] == events
        assert figures["kpi_p95_ms"] > 0 and figures["health_p95_ms"] > 0
        assert set(figures["queries"]) == {"kpi", "health"}
    assert result["small"]["rollups_agree_with_rebuild"] is True
    assert set(result["ratios"]) == {"kpi", "health"}
    assert set(result["met"]) == {
        "kpi_ratio",
        "health_ratio",
        "same_queries_at_both_sizes",
        "rollups_agree_with_rebuild",
        "no_full_table_scan",
    }
    assert result["met"]["rollups_agree_with_rebuild"]
    assert result["met"]["same_queries_at_both_sizes"]
    assert any("KPI overview" in line for line in lines)
    json.dumps(result)  # one JSON line


def test_command_rejects_sizes_in_the_wrong_order() -> None:
    with pytest.raises(CommandError, match="--large must be more than --small"):
        call_command("bench", "dashboards", "--small", "2000", "--large", "200")
