"""`manage.py bench reconciliation`, CI-sized: the bench loads both sizes into a database of
its own, classifies them with reconciliation.compare, times the pandas and bare-join baselines
and ends with the one JSON line the issue asks for."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from reconciliation.benchmarks import Seeded, rows
from reconciliation.models import Side

SEEDED = {"missing_in_target": 20, "missing_in_source": 20, "field_mismatch": 20, "duplicate": 0}


@pytest.mark.django_db(transaction=True)
def test_bench_command_finds_exactly_the_seeded_differences() -> None:
    out = io.StringIO()
    call_command("bench", "reconciliation", "--records", "2000", "--small", "500", stdout=out)

    lines = out.getvalue().strip().splitlines()
    result = json.loads(lines[-1])
    assert result["bench"] == "reconciliation"
    assert result["targets"] == {
        "speedup_vs_pandas_min": 2.0,
        "vs_bare_join_max": 2.0,
        "peak_memory_mb_max": 300.0,
        "memory_growth_mb_max": 16.0,
    }
    assert set(result["met"]) == {
        "speedup_vs_pandas",
        "vs_bare_join",
        "peak_memory",
        "memory_independent_of_records",
        "classification_correct",
        "pandas_agrees",
    }
    assert all(isinstance(value, bool) for value in result["met"].values())
    large, small = result["large"], result["small"]
    assert large["records"] == 2000 and small["records"] == 500
    # 1% of 2,000 in each class, the rest matched; pandas finds the same
    assert large["found"] == SEEDED | {"matched": 1960, "accepted": 0, "in_flight": 0}
    assert large["pandas_found"] == large["found"]
    assert small["found"] == {
        "matched": 490,
        "missing_in_target": 5,
        "missing_in_source": 5,
        "field_mismatch": 5,
        "duplicate": 0,
        "accepted": 0,
        "in_flight": 0,
    }
    assert result["met"]["classification_correct"] and result["met"]["pandas_agrees"]
    for figures in (small, large):
        assert figures["classify_s"] > 0 and figures["bare_join_s"] > 0
        assert figures["pandas_s"] > 0
        assert 0 < figures["classify_peak_mb"] < 2000
    assert result["speedup_vs_pandas"] > 0 and result["vs_bare_join"] > 0
    assert any("Throughline classify" in line for line in lines)


def test_seeded_sides_hold_the_records_and_differ_as_counted() -> None:
    seeded = Seeded(2000)
    source = {row[2]: row for row in rows(1, Side.SOURCE, seeded)}
    target = {row[2]: row for row in rows(1, Side.TARGET, seeded)}

    assert len(source) == len(target) == 2000
    assert len(source.keys() - target.keys()) == 20
    assert len(target.keys() - source.keys()) == 20
    differ = [key for key in source.keys() & target.keys() if source[key][8] != target[key][8]]
    assert len(differ) == 20


def test_command_rejects_sizes_in_the_wrong_order() -> None:
    with pytest.raises(CommandError, match="--records must be more than --small"):
        call_command("bench", "reconciliation", "--records", "500", "--small", "2000")
