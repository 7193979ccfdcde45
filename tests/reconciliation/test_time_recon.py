"""Time reconciled over the stand-ins: approved Kantata time entries against the NetSuite time
bills Throughline posted, after the demo's own flow (deal provisioned, people linked, time
approved and posted), then after manual edits in both systems and a fault on the posting; an
incremental run sees a later edit, and re-syncing posts the entries again until only what a
person must fix is left."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from integrations.connectors.registry import build_client
from integrations.models import Connection, PostingBatch, SyncRun
from integrations.polling import poll_closed_won
from integrations.postings import collect_time_entries
from integrations.reference_data import sync_people
from reconciliation.models import Definition, Difference, Run

from . import handoff_demo
from .handoff_demo import control, demo_definition, erp, kinds, psa, resync, run


def approved_time(demo, workspace: str, count: int) -> list[str]:
    """`count` approved hours in Kantata, posted to the ERP by the normal flow; their ids."""
    # Kantata's updated_after is strict and to the second: time approved in the second the
    # collector's watermark stands at would wait for a later change (so start a new second)
    time.sleep(1 - dt.datetime.now(dt.UTC).microsecond / 1_000_000)
    burst = control(
        demo,
        "kantata",
        "kantata/time-burst",
        json={"workspace_id": workspace, "count": count, "approved": True, "user_ids": [2]},
    )
    collect_time_entries(psa())
    first, last = int(burst["first_id"]), int(burst["last_id"])
    # one id counter serves every Kantata table (events too): the entries are not contiguous
    table = demo["kantata"].state.table("time_entries")
    return sorted((rid for rid in table if first <= int(rid) <= last), key=int)


def bill_of(demo, entry_id: str) -> dict:
    return demo["netsuite"].state.by_external_id("timebill", entry_id)


def backdate(demo, hours: int = 1) -> None:
    """Age the time entries' and time bills' change times (handoff_demo.backdate)."""
    handoff_demo.backdate(demo, kantata=("time_entries",), netsuite="timebill", hours=hours)


@pytest.fixture
def definition(demo) -> Definition:
    return demo_definition("time_entries", psa(), erp())


@pytest.fixture
def workspace(demo) -> str:
    """Northwind's project (UK01: its time posts to the cloud ERP), its people linked."""
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    handoff = SyncRun.objects.get(title__startswith="Northwind")
    sync_people(erp(), psa())
    return handoff.context["provision_project"]["psa_project_id"]


def test_time_matches_then_every_edit_is_classified_and_resync_posts_it_again(
    demo, definition: Definition, workspace: str
) -> None:
    entries = approved_time(demo, workspace, 10)
    assert all(bill_of(demo, e) is not None for e in entries)
    backdate(demo)

    # 1. after the normal flow: every approved entry has its one time bill
    first = run(definition, full=True)
    assert (first.matched, first.source_records, first.target_records) == (10, 10, 10)
    assert kinds(first) == {}

    # 2. edits by hand in both systems, a time bill keyed by hand, and a fault on a posting
    hours, deleted, copied, unapproved, psa_edit = entries[:5]
    control(
        demo, "netsuite", f"records/timebill/{bill_of(demo, hours)['id']}", json={"hours": "7.5"}
    )
    control(demo, "netsuite", f"records/timebill/{bill_of(demo, deleted)['id']}", method="DELETE")
    copy = control(demo, "netsuite", f"records/timebill/{bill_of(demo, copied)['id']}/copy")
    control(
        demo,
        "netsuite",
        f"records/timebill/{bill_of(demo, unapproved)['id']}",
        json={"supervisorApproval": False},
    )
    control(demo, "kantata", f"records/time_entries/{psa_edit}", json={"time_in_minutes": 90})
    by_hand = _time_bill_by_hand(demo)
    control(demo, "netsuite", "faults", json={"path": "restlet", "status": 500})
    failed = approved_time(demo, workspace, 2)  # the posting fails as a whole
    control(demo, "netsuite", "faults", method="DELETE")
    assert PostingBatch.objects.filter(status=PostingBatch.Status.FAILED).count() == 1

    second = run(definition, full=True)
    expected = {
        hours: "field_mismatch",
        deleted: "missing_in_target",
        copied: "duplicate",
        unapproved: "field_mismatch",
        psa_edit: "field_mismatch",
        "HAND-1": "missing_in_source",
        **dict.fromkeys(failed, "missing_in_target"),
    }
    assert kinds(second) == expected
    assert second.matched == 5
    diffs = {d.key: d for d in Difference.objects.filter(run=second)}
    assert diffs[hours].field_differences == [
        {"field": "hours", "source": "1.00", "target": "7.50"}
    ]
    assert diffs[psa_edit].field_differences == [
        {"field": "hours", "source": "1.50", "target": "1.00"}
    ]
    assert diffs[unapproved].field_differences == [
        {"field": "status", "source": "approved", "target": "not_approved"}
    ]
    assert diffs[hours].source_fields["person"] == diffs[hours].target_fields["person"]
    assert diffs[hours].source_fields["project"] == diffs[hours].target_fields["project"]
    assert copy["id"] in diffs[copied].target_fields["records"]

    # 3. incremental: only what changed since the last run is read, and a later edit is seen
    later = entries[5]
    control(demo, "netsuite", f"records/timebill/{bill_of(demo, later)['id']}", json={"hours": 2})
    third = run(definition, full=False)
    assert third.mode == Run.Mode.INCREMENTAL
    assert third.target_pulled < third.target_records
    assert third.source_pulled < third.source_records
    assert kinds(third) == {**expected, later: "field_mismatch"}

    # 4. re-sync every difference: entries are posted again where they can be
    outcomes = resync(definition, sorted(kinds(third)))
    queued = {k for k, outcome in outcomes.items() if outcome.startswith("queued")}
    assert queued == {hours, deleted, unapproved, psa_edit, later, *failed}
    assert outcomes[copied].startswith("cannot re-sync: NetSuite (demo) holds 2 time bills")
    assert outcomes["HAND-1"].startswith("cannot re-sync: no approved time entry")
    assert bill_of(demo, psa_edit)["hours"] == "1.50"  # corrected in place, not posted twice
    bills = [b["externalId"] for b in demo["netsuite"].state.table("timebill").values()]
    assert sorted(bills) == sorted([*entries, *failed, copied, "HAND-1"])

    fourth = run(definition, full=True)
    assert kinds(fourth) == {copied: "duplicate", "HAND-1": "missing_in_source"}

    # 5. a person removes the extra and the stray time bill: a full match
    control(demo, "netsuite", f"records/timebill/{copy['id']}", method="DELETE")
    control(demo, "netsuite", f"records/timebill/{by_hand}", method="DELETE")
    fifth = run(definition, full=True)
    assert kinds(fifth) == {}
    assert (fifth.matched, fifth.match_rate) == (12, 100.0)


def test_entries_the_posting_policy_refuses_cannot_be_resynced(
    demo, definition: Definition, workspace: str
) -> None:
    [entry] = approved_time(demo, workspace, 1)
    control(demo, "netsuite", f"records/timebill/{bill_of(demo, entry)['id']}", method="DELETE")
    control(demo, "kantata", f"records/time_entries/{entry}", json={"user_id": "3"})
    done = run(definition, full=True)
    assert kinds(done) == {entry: "missing_in_target"}
    # user 3 is an ERP employee too (linked by e-mail); an unknown person is refused
    control(demo, "kantata", f"records/time_entries/{entry}", json={"user_id": "1"})
    outcomes = resync(definition, [entry])
    assert outcomes == {
        entry: "cannot re-sync: its person is not an employee in the ERP (sync the people "
        f"first) (project {workspace})"
    }


def _time_bill_by_hand(demo) -> str:
    """A time bill someone entered in NetSuite under an external id no PSA entry has."""
    client = build_client(erp())
    template = next(iter(demo["netsuite"].state.table("timebill").values()))
    body = {
        "externalId": "HAND-1",
        "employee": {"id": str(template["employee"])},
        "customer": {"id": str(template["customer"])},
        "tranDate": template["tranDate"],
        "hours": 3,
    }
    bill_id = client.create_record("timeBill", body)
    client.close()
    return bill_id
