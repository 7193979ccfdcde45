"""`manage.py bench dashboards`, CI-sized: the bench loads both sizes on the test database
(raw facts for two KPIs, observations in proportion for every other live KPI), measures both
pages and ends with the JSON line the issue asks for."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.test import Client

from console.models import User
from dashboards import benchmarks, kpis, rollups
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
    # the facts' rollups are what a rebuild gives; only the observed KPIs (no raw records
    # behind them) differ from it
    assert not benchmarks.facts_differences()
    observed = benchmarks.observed_kpis()
    observed_keys = {key for kpi in observed for key in benchmarks.rollup_keys(kpi)}
    assert {d.key[0] for d in rollups.check()} <= observed_keys
    # every live KPI of the catalogue has its rollups, the observed ones in proportion
    live = [kpi for kpi in kpis.KPIS if kpi.live]
    all_keys = {key for kpi in live for key in benchmarks.rollup_keys(kpi)}
    assert set(KpiRollup.objects.values_list("kpi", flat=True)) == all_keys
    daily = KpiRollup.objects.filter(grain="day").values("kpi").annotate(n=Sum("count"))
    counts = {row["kpi"]: row["n"] for row in daily}
    seeds = len(benchmarks.ENTITY_WEIGHTS)
    for kpi in observed:
        if benchmarks.rollup_keys(kpi) == (kpi.key,):  # one observation per event
            every = benchmarks.OBSERVED.get(kpi.key, (benchmarks.DEFAULT_EVERY, ""))[0]
            assert counts[kpi.key] == 2000 // every + seeds, kpi.key
    assert counts["billed_amount"] == 106 and counts["quote_to_project"] == 26
    assert result["large"]["observations"] == sum(counts[key] for key in observed_keys)
    assert result["kpis_loaded"] == sorted(all_keys)
    # the overview the bench timed shows a figure on every live KPI's tile
    admin = User.objects.get(username="bench-dashboards-admin")
    client = Client()
    client.force_login(admin)
    html = client.get(benchmarks.KPI_URL).content.decode()
    live_tiles = re.findall(
        r'<li class="tile kpi-tile [^"]*" data-kpi="([^"]+)">(.*?)</li>', html, re.S
    )
    shown = {key for key, tile in live_tiles if "data-kpi-value" in tile and "kpi-none" not in tile}
    assert shown == {kpi.key for kpi in live}
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
