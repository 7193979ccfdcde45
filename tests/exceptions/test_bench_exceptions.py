"""`manage.py bench exceptions`, CI-sized: the bench runs end to end on the test database
and ends with the JSON line the issue asks for (figures for both sizes, ratios, targets, met)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from exceptions import benchmarks
from exceptions.models import IntegrationException

pytestmark = pytest.mark.django_db

FIGURES = {
    "page_first_p95_ms",
    "page_deep_p95_ms",
    "api_first_p95_ms",
    "api_deep_p95_ms",
}


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
        assert set(figures["queries"]) == {"page_first", "page_deep", "api_first", "api_deep"}
    assert set(result["ratios"]) == {"page_first", "page_deep", "api_first", "api_deep"}
    assert set(result["met"]) == {
        "page_first_ratio",
        "page_deep_ratio",
        "api_first_ratio",
        "api_deep_ratio",
        "same_queries_at_both_sizes",
        "no_full_table_scan",
    }
    # no N+1: a page of 50 costs the queries a page of 2 costs
    assert result["met"]["same_queries_at_both_sizes"]
    assert any("2,000 exceptions in the table" in line for line in lines)


def test_bench_command_checks_its_sizes() -> None:
    with pytest.raises(CommandError, match="--large must be more than --small"):
        call_command("bench", "exceptions", "--small", "100", "--large", "100")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("bench", "exceptions", "--samples", "0")
