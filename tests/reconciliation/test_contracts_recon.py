"""Contracts reconciliation over the stand-ins: each closed-won deal at its current contract
value (amendments included) against the total of its project's billing plan in the ERP,
after the demo's deals were handed over for real."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from integrations.models import SyncRun

from .handoff_demo import (
    GLOBEX_ACCOUNT,
    GLOBEX_DEAL,
    INITECH_DEAL,
    NORTHWIND_AMENDMENT,
    NORTHWIND_DEAL,
    UMBRELLA_DEAL,
    approve_amendment,
    close_deal,
    copy,
    crm,
    define,
    delete,
    difference,
    edit,
    erp,
    failed_run,
    found,
    hand_over_new_deals,
    incremental_run,
    job_id,
    legacy_erp,
    next_second,
    pull,
    resync_every_difference,
    run,
)

NORTHWIND = f"deal:{NORTHWIND_DEAL}"
GLOBEX = f"deal:{GLOBEX_DEAL}"
INITECH = f"deal:{INITECH_DEAL}"
UMBRELLA = f"deal:{UMBRELLA_DEAL}"
MILESTONES = "customrecord_tl_billing_milestone"


@pytest.fixture
def definition(handed_over):
    return define("contracts", crm(), erp())


def lines_of(handed_over, key: str) -> list[dict]:
    """The job's active billing milestone lines, as the ERP stand-in holds them."""
    job = job_id(key)
    out = []
    for line in handed_over["netsuite"].state.table(MILESTONES).values():
        ref = line.get("custrecord_tl_bm_job")
        owner = ref.get("id") if isinstance(ref, dict) else ref
        if str(owner) == job and not line.get("isInactive"):
            out.append(line)
    return out


def plan_total(handed_over, key: str) -> Decimal:
    return sum(
        (Decimal(str(x["custrecord_tl_bm_amount"])) for x in lines_of(handed_over, key)), Decimal(0)
    )


def approve_without_handing_over(handed_over, amendment_id: str = NORTHWIND_AMENDMENT) -> None:
    """An amendment approved in the CRM that never reaches the ERP (nobody polls)."""
    answer = httpx.post(
        f"{handed_over['salesforce'].url}/__standin__/salesforce/approve-amendment",
        json={"id": amendment_id},
    )
    assert answer.is_success, answer.text


def test_every_contract_matches_its_billing_plan_amendments_included(handed_over, definition):
    first = run(definition)
    assert found(first) == {}
    assert first.matched == 3  # the DE01 project is accounted in the legacy ERP
    legacy = run(define("contracts", crm(), legacy_erp()))
    assert (found(legacy), legacy.matched) == ({}, 1)

    approve_amendment(handed_over)  # 120,000.00 -> 135,000.00 GBP, applied by the workflow
    amended = run(definition)
    assert found(amended) == {}
    assert amended.matched == 3
    assert plan_total(handed_over, NORTHWIND) == Decimal("135000.00")


def test_manual_edits_come_out_as_their_classes(handed_over, definition) -> None:
    ns = handed_over["netsuite"]
    copied_deal = close_deal(handed_over, GLOBEX_ACCOUNT, amount="30000.00")
    closed_deal = close_deal(handed_over, GLOBEX_ACCOUNT, amount="20000.00")
    hand_over_new_deals()
    copied, closed = f"deal:{copied_deal}", f"deal:{closed_deal}"

    approve_without_handing_over(handed_over)  # Northwind: 135,000.00 in the CRM only
    line = lines_of(handed_over, GLOBEX)[0]
    more = str(Decimal(str(line["custrecord_tl_bm_amount"])) + 1)
    edit(ns, MILESTONES, line["id"], {"custrecord_tl_bm_amount": more})
    delete(ns, "job", job_id(UMBRELLA))
    copy(ns, "job", job_id(copied))
    edit(ns, "job", job_id(closed), {"isInactive": True})
    stray = copy(ns, "job", job_id(copied))["id"]
    edit(ns, "job", stray, {"externalId": None})

    result = run(definition)

    assert found(result) == {
        "field_mismatch": {NORTHWIND, GLOBEX, closed},
        "missing_in_target": {UMBRELLA},
        "duplicate": {f"{copied}@target"},
        "missing_in_source": {f"erp-job:{stray}"},
    }
    northwind = difference(result, NORTHWIND)
    assert northwind.field_differences == [
        {"field": "amount (GBP)", "source": "135000.00", "target": "120000.00"}
    ]
    assert northwind.amount_at_risk == 15000_00
    assert [f["field"] for f in difference(result, GLOBEX).field_differences] == ["amount (USD)"]
    assert difference(result, closed).field_differences == [
        {"field": "status", "source": "active", "target": "inactive"}
    ]
    assert difference(result, UMBRELLA).amount_at_risk == 45000_00


def test_an_incremental_pull_reads_what_changed_and_the_run_finds_it(handed_over, definition):
    assert found(run(definition)) == {}
    since = next_second()
    assert pull(definition, "source", since) == []
    assert pull(definition, "target", since) == []

    approve_without_handing_over(handed_over)
    line = lines_of(handed_over, GLOBEX)[0]
    edit(handed_over["netsuite"], MILESTONES, line["id"], {"custrecord_tl_bm_amount": "1.00"})

    # an approved amendment changes the deal's value, a changed line its job's plan
    later = incremental_run(definition, since, source=[NORTHWIND], target=[GLOBEX])
    assert found(later) == {"field_mismatch": {NORTHWIND, GLOBEX}}


def test_a_resync_brings_the_next_run_to_full_match_where_it_can(handed_over, definition):
    ns = handed_over["netsuite"]
    closed_deal = close_deal(handed_over, GLOBEX_ACCOUNT, amount="20000.00")
    hand_over_new_deals()
    closed = f"deal:{closed_deal}"
    approve_without_handing_over(handed_over)
    line = lines_of(handed_over, GLOBEX)[0]
    edit(ns, MILESTONES, line["id"], {"custrecord_tl_bm_amount": "1.00"})
    delete(ns, "job", job_id(UMBRELLA))
    edit(ns, "job", job_id(closed), {"isInactive": True})
    before = run(definition)
    assert found(before) == {
        "field_mismatch": {NORTHWIND, GLOBEX, closed},
        "missing_in_target": {UMBRELLA},
    }

    resync_every_difference(before)
    applied = SyncRun.objects.get(correlation_id=f"amendment:{NORTHWIND_AMENDMENT}")
    assert applied.status == "succeeded", applied.error

    after = run(definition)
    # A job the ERP made inactive is for people: the re-sync does not reactivate it.
    assert found(after) == {"field_mismatch": {closed}}
    assert after.matched == 3
    umbrella_jobs = [
        j
        for j in ns.state.table("job").values()
        if j.get("externalId") == f"TL-PRJ-{UMBRELLA_DEAL}"
    ]
    assert len(umbrella_jobs) == 1 and umbrella_jobs[0]["id"] == job_id(UMBRELLA)


def test_a_deal_the_erp_does_not_account_is_not_in_its_comparison(handed_over) -> None:
    # Initech's project goes to the legacy ERP (DE01's route): the cloud ERP does not miss it.
    assert INITECH not in {d.key for d in run(define("contracts", crm(), erp())).differences.all()}
    assert job_id(UMBRELLA)  # and the cloud ERP's own deals are there


def test_a_malformed_vendor_value_fails_the_run_with_the_reason(handed_over, definition) -> None:
    edit(handed_over["salesforce"], "Opportunity", GLOBEX_DEAL, {"Amount": "250,000"})
    failed = failed_run(definition)
    assert "ResponseShapeError" in failed.error
    assert f"{GLOBEX_DEAL}: Amount is not a number" in failed.error
