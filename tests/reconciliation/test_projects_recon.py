"""Projects reconciliation over the stand-ins: the PSA's workspaces of handed-off deals
against the ERP's jobs, after the demo's deals were handed over for real."""

from __future__ import annotations

import pytest

from reconciliation import catalogue
from reconciliation.models import Run

from .handoff_demo import (
    GLOBEX_ACCOUNT,
    GLOBEX_DEAL,
    INITECH_DEAL,
    NORTHWIND_DEAL,
    UMBRELLA_DEAL,
    close_deal,
    copy,
    define,
    delete,
    difference,
    edit,
    erp,
    erp_id,
    found,
    hand_over_every_deal,
    hand_over_new_deals,
    legacy_erp,
    next_second,
    psa,
    pull,
    record,
    run,
)

NORTHWIND = f"deal:{NORTHWIND_DEAL}"
GLOBEX = f"deal:{GLOBEX_DEAL}"
INITECH = f"deal:{INITECH_DEAL}"
UMBRELLA = f"deal:{UMBRELLA_DEAL}"


@pytest.fixture
def standins(demo):
    hand_over_every_deal()
    return demo


@pytest.fixture
def definition(standins):
    return define("projects", psa(), erp())


def job_id(key: str) -> str:
    return erp_id(erp(), "project", key)


def workspace_id(key: str) -> str:
    return erp_id(psa(), "project", key)


def set_psa_status(standins, key: str, status_key: int) -> None:
    """A project manager changes the project's status in Kantata (by hand, in the demo)."""
    edit(standins["kantata"], "workspaces", workspace_id(key), {"status_key": status_key})


def test_every_project_of_a_handed_off_deal_matches(standins, definition) -> None:
    first = run(definition)
    assert found(first) == {}
    # the demo's internal bench workspace is no deal's project and is not compared
    assert (first.matched, first.source_records, first.target_records) == (3, 3, 3)
    legacy = run(define("projects", psa(), legacy_erp()))  # DE01's projects
    assert (found(legacy), legacy.matched, legacy.source_records) == ({}, 1, 1)
    assert INITECH not in {d.key for d in first.differences.all()}


def test_manual_edits_come_out_as_their_classes(standins, definition) -> None:
    ns, kantata = standins["netsuite"], standins["kantata"]
    cancelled = f"deal:{close_deal(standins, GLOBEX_ACCOUNT, amount='20000.00')}"
    hand_over_new_deals()
    edit(ns, "job", job_id(NORTHWIND), {"companyName": "Northwind (renamed)"})
    edit(ns, "job", job_id(NORTHWIND), {"startDate": "2020-01-01"})
    delete(ns, "job", job_id(GLOBEX))
    copy(kantata, "workspaces", workspace_id(UMBRELLA))
    set_psa_status(standins, cancelled, 501)
    stray = copy(
        ns,
        "job",
        job_id(UMBRELLA),
    )["id"]
    edit(ns, "job", stray, {"externalId": None})

    result = run(definition)

    assert found(result) == {
        "field_mismatch": {NORTHWIND, cancelled},
        "missing_in_target": {GLOBEX},
        "duplicate": {f"{UMBRELLA}@source"},
        "missing_in_source": {f"erp-job:{stray}"},
    }
    northwind = {f["field"]: f for f in difference(result, NORTHWIND).field_differences}
    assert set(northwind) == {"date", "name"}
    assert northwind["name"]["target"] == "Northwind (renamed)"
    assert northwind["date"]["target"] == "2020-01-01"
    assert difference(result, cancelled).field_differences == [
        {"field": "status", "source": "closed", "target": "active"}
    ]


def test_an_incremental_pull_reads_what_changed_and_the_run_finds_it(standins, definition):
    assert found(run(definition)) == {}
    since = next_second()
    assert pull(definition, "source", since) == []
    assert pull(definition, "target", since) == []

    edit(standins["kantata"], "workspaces", workspace_id(UMBRELLA), {"title": "Umbrella: audit"})
    edit(standins["netsuite"], "job", job_id(GLOBEX), {"companyName": "Globex: rollout"})

    assert [r.key for r in pull(definition, "source", since)] == [UMBRELLA]
    assert [r.key for r in pull(definition, "target", since)] == [GLOBEX]
    later = run(definition, full=False)
    assert later.mode == Run.Mode.INCREMENTAL
    assert found(later) == {"field_mismatch": {UMBRELLA, GLOBEX}}


def test_a_resync_brings_the_next_run_to_full_match_where_it_can(standins, definition):
    ns = standins["netsuite"]
    cancelled = f"deal:{close_deal(standins, GLOBEX_ACCOUNT, amount='20000.00')}"
    hand_over_new_deals()
    edit(ns, "job", job_id(NORTHWIND), {"companyName": "Northwind (renamed)"})
    delete(ns, "job", job_id(GLOBEX))
    set_psa_status(standins, cancelled, 501)
    before = run(definition)
    assert found(before) == {
        "field_mismatch": {NORTHWIND, cancelled},
        "missing_in_target": {GLOBEX},
    }

    keys = sorted(d.key for d in before.differences.all())
    outcomes = catalogue.get("projects").resyncer()(definition, keys)
    assert all(outcome.startswith("queued") for outcome in outcomes.values()), outcomes

    after = run(definition)
    # Nothing carries a project's status from the PSA to the ERP: still a difference.
    assert found(after) == {"field_mismatch": {cancelled}}
    assert after.matched == 3
    assert record(ns, "job", job_id(NORTHWIND))["companyName"] == (
        "Northwind Consulting Ltd: Finance transformation"
    )
    globex_jobs = [
        j for j in ns.state.table("job").values() if j.get("externalId") == f"TL-PRJ-{GLOBEX_DEAL}"
    ]
    assert [j["id"] for j in globex_jobs] == [job_id(GLOBEX)]  # created again once, bound


def test_the_resync_of_an_amended_deal_says_what_follows(standins, definition) -> None:
    from .handoff_demo import approve_amendment

    approve_amendment(standins)
    outcome = catalogue.get("projects").resyncer()(definition, [NORTHWIND])[NORTHWIND]
    assert outcome.startswith("queued")
    assert "re-sync the contracts comparison" in outcome
