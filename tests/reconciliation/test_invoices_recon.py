"""Invoices reconciled over the stand-ins: billing milestones completed in Kantata against the
invoices NetSuite holds, after the demo's own flow (deal provisioned, milestones completed and
billed), then after a person's manual edits through the stand-ins' control surface and an
injected fault; an incremental run sees a later edit, and re-syncing brings the next run to
full match except what only a person can fix."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from integrations.choices import RunStatus
from integrations.connectors.errors import ResponseShapeError
from integrations.connectors.registry import build_client
from integrations.models import Connection, ExternalBinding, SyncRun
from integrations.payments import sync_payments
from integrations.polling import poll_closed_won
from integrations.psa_feed import read_psa_events
from reconciliation.models import Definition, Difference, Run
from reconciliation.pullers import invoices
from reconciliation.pulling import PullContext
from reconciliation.runs import request_run

from . import handoff_demo
from .handoff_demo import control, demo_definition, erp, kinds, psa, resync, run

TOKEN = {"Authorization": "Bearer kantata-demo-token"}
NORTHWIND = "0015g00000Tl001AAB"  # the Salesforce account
EXTRA = {"Extra A": 500_000, "Extra B": 750_050, "Extra C": 125_000}


def northwind(demo) -> dict[str, str]:
    """Provision the Northwind deal and add three milestones to its plan in Kantata: the
    title -> story id of its six billable milestones."""
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    handoff = SyncRun.objects.get(title__startswith="Northwind")
    assert handoff.status == RunStatus.SUCCEEDED, handoff.error
    workspace = handoff.context["provision_project"]["psa_project_id"]
    for title, cents in EXTRA.items():
        story = {
            "workspace_id": workspace,
            "title": title,
            "story_type": "milestone",
            "budget_estimate_in_cents": cents,
            "billable": True,
        }
        answer = httpx.post(
            f"{demo['kantata'].url}/api/v1/stories.json", json={"story": story}, headers=TOKEN
        )
        assert answer.is_success, answer.text
    return {
        s["title"]: str(s["id"])
        for s in demo["kantata"].state.table("stories").values()
        if str(s["workspace_id"]) == workspace and s["story_type"] == "milestone"
    }


def complete_and_bill(demo, *story_ids: str) -> None:
    for story_id in story_ids:
        control(demo, "kantata", "kantata/complete-milestone", json={"story_id": story_id})
    read_psa_events(psa())


def invoice_of(demo, story_id: str) -> dict:
    key = invoices.milestone_key(psa(), story_id)
    return demo["netsuite"].state.by_external_id("invoice", key)


def backdate(demo, hours: int = 1) -> None:
    """Age the milestones' and invoices' change times (handoff_demo.backdate)."""
    handoff_demo.backdate(
        demo, kantata=("stories", "external_references"), netsuite="invoice", hours=hours
    )


@pytest.fixture
def definition(demo) -> Definition:
    return demo_definition("invoices", psa(), erp())


def test_invoices_match_then_every_edit_is_classified_and_resync_brings_them_back(
    demo, definition: Definition
) -> None:
    stories = northwind(demo)
    assert len(stories) == 6
    n1, n2, n3 = stories["Kick-off"], stories["Design sign-off"], stories["Go-live"]
    a, b, c = stories["Extra A"], stories["Extra B"], stories["Extra C"]
    complete_and_bill(demo, n1, n2, n3, a, b)
    key = {s: invoices.milestone_key(psa(), s) for s in stories.values()}
    assert all(invoice_of(demo, s) is not None for s in (n1, n2, n3, a, b))
    backdate(demo)

    # 1. after the normal flow: every billed milestone has its invoice, nothing else
    first = run(definition, full=True)
    assert (first.matched, first.source_records, first.target_records) == (5, 5, 5)
    assert kinds(first) == {}
    assert first.match_rate == 100.0

    # 2. a person's edits in the ERP, an invoice keyed by hand, and a fault on a billing
    url = demo["netsuite"].url
    amount_edit = invoice_of(demo, n1)
    control(demo, "netsuite", f"records/invoice/{amount_edit['id']}", json={"total": "30000.00"})
    deleted = invoice_of(demo, n2)
    control(demo, "netsuite", f"records/invoice/{deleted['id']}", method="DELETE")
    copy = control(demo, "netsuite", f"records/invoice/{invoice_of(demo, n3)['id']}/copy")
    control(demo, "netsuite", f"records/invoice/{invoice_of(demo, a)['id']}", json={"status": "B"})
    by_hand = _invoice_by_hand(demo)
    fault = control(
        demo,
        "netsuite",
        "faults",
        json={"method": "PUT", "path": "/invoice/eid:", "status": 400, "times": 1},
    )
    complete_and_bill(demo, c)  # the ERP refuses it: billing fails
    assert invoice_of(demo, c) is None
    assert fault["id"]

    second = run(definition, full=True)
    assert kinds(second) == {
        key[n1]: "field_mismatch",
        key[n2]: "missing_in_target",
        key[n3]: "duplicate",
        key[a]: "field_mismatch",
        key[c]: "missing_in_target",
        f"erp-invoice:{by_hand}": "missing_in_source",
    }
    assert (second.matched, second.field_mismatch, second.missing_in_target) == (1, 2, 2)
    assert (second.missing_in_source, second.duplicate) == (1, 1)
    diffs = {d.key: d for d in Difference.objects.filter(run=second)}
    amount = {r["field"]: r for r in diffs[key[n1]].field_differences}
    # 20 % of the 120,000 GBP deal before tax, against 30,000.00 less the 4,800.00 tax
    assert amount["amount (GBP)"] == {
        "field": "amount (GBP)",
        "source": "24000.00",
        "target": "25200.00",
    }
    assert [r["field"] for r in diffs[key[a]].field_differences] == ["status"]
    assert (diffs[key[a]].source_status, diffs[key[a]].target_status) == ("invoiced", "paid")
    assert diffs[key[n3]].target_fields["copies"] == "2"
    assert copy["id"] in diffs[key[n3]].target_fields["records"]
    assert diffs[key[c]].amount_at_risk == 125_000
    [uk] = second.at_risk
    assert uk["legal_entity"] == "UK01" and uk["currency"] == "GBP"

    # 3. an incremental run reads what changed since, and sees an edit made after the last run
    later_edit = invoice_of(demo, b)
    control(demo, "netsuite", f"records/invoice/{later_edit['id']}", json={"total": "1.00"})
    third = run(definition, full=False)
    assert third.mode == Run.Mode.INCREMENTAL
    assert third.target_pulled < third.target_records  # not everything was read again
    assert third.source_pulled < third.source_records
    assert kinds(third) == {**kinds(second), key[b]: "field_mismatch"}

    # 4. re-sync every difference: billing runs again where it can; the rest needs a person
    outcomes = resync(definition, sorted(kinds(third)))
    queued = {k for k, outcome in outcomes.items() if outcome.startswith("queued")}
    assert queued == {key[n1], key[n2], key[a], key[b], key[c]}
    assert outcomes[key[n3]].startswith("cannot re-sync: NetSuite (demo) holds 2 invoices")
    assert outcomes[f"erp-invoice:{by_hand}"].startswith("cannot re-sync: no completed")
    # idempotent: re-billing corrected the invoices, it raised none twice
    held = [i.get("externalId") for i in demo["netsuite"].state.table("invoice").values()]
    assert sorted(map(str, held)) == sorted([*map(str, key.values()), key[n3], "None"])
    assert Decimal(invoice_of(demo, n1)["subtotal"]) == Decimal("24000.00")

    fourth = run(definition, full=True)
    assert kinds(fourth) == {key[n3]: "duplicate", f"erp-invoice:{by_hand}": "missing_in_source"}
    assert fourth.matched == 5

    # 5. what only a person can fix, fixed by a person: the next run is a full match
    control(demo, "netsuite", f"records/invoice/{copy['id']}", method="DELETE")
    control(demo, "netsuite", f"records/invoice/{by_hand}", method="DELETE")
    fifth = run(definition, full=True)
    assert kinds(fifth) == {}
    assert (fifth.matched, fifth.match_rate) == (6, 100.0)
    assert url  # the stand-in the edits went to


def _invoice_by_hand(demo) -> str:
    """An invoice someone keyed straight into NetSuite for Northwind: no milestone has it."""
    client = build_client(erp())
    customer = ExternalBinding.objects.get(
        connection=erp(), entity_type="customer", canonical_key=f"crm-account:{NORTHWIND}"
    ).external_id
    body = {
        "entity": {"id": customer},
        "subsidiary": {"id": "2"},
        "currency": {"id": "2"},
        "tranDate": dt.date.today().isoformat(),
        "item": {"items": [{"item": {"id": "2"}, "quantity": 1, "rate": 999, "amount": 999}]},
    }
    invoice_id = client.create_record("invoice", body)
    client.close()
    return invoice_id


def test_a_malformed_invoice_fails_the_run_with_the_reason(demo, definition: Definition) -> None:
    stories = northwind(demo)
    complete_and_bill(demo, stories["Kick-off"])
    invoice = invoice_of(demo, stories["Kick-off"])
    invoice["total"] = "a lot"
    with pytest.raises(ResponseShapeError, match="foreigntotal"):  # the worker sees it too
        request_run(definition, full=True)
    done = Run.objects.get(definition=definition)
    assert done.status == Run.Status.FAILED
    assert done.error == (
        f"ResponseShapeError: NetSuite invoice {invoice['id']}: foreigntotal is missing or "
        "not a number"
    )


def test_the_erp_puller_reads_pages_and_returns_the_newest_change(
    demo, definition: Definition
) -> None:
    stories = northwind(demo)
    complete_and_bill(demo, stories["Kick-off"], stories["Go-live"])
    emitted = []
    context = PullContext(
        definition=definition,
        side="target",
        connection=erp(),
        since=None,
        emit=emitted.append,
        on_call=lambda call: None,
    )
    context.client.page_size = 1  # one invoice a page: the puller follows them all
    newest = invoices.erp_invoices(context)
    assert sorted(r.amount for r in emitted) == [Decimal("24000.00"), Decimal("60000.00")]
    stamps = [r.modified_at for r in emitted]
    assert newest == max(stamps) and newest.tzinfo is not None
    bad = PullContext(definition, "target", erp(), None, emitted.append, lambda call: None)
    demo["netsuite"].state.table("invoice")[emitted[0].native_id]["tranDate"] = "someday"
    with pytest.raises(ResponseShapeError, match="trandate"):
        invoices.erp_invoices(bad)


def test_a_payment_shows_until_the_psa_hears_of_it_and_incremental_runs_see_both(
    demo, definition: Definition
) -> None:
    stories = northwind(demo)
    kickoff = stories["Kick-off"]
    complete_and_bill(demo, kickoff)
    backdate(demo)
    assert kinds(run(definition, full=True)) == {}
    backdate(demo, hours=2)  # time passes: what the run read is older than its watermark now

    invoice = invoice_of(demo, kickoff)
    control(demo, "netsuite", f"netsuite/invoice/{invoice['id']}/pay", json={"amount": "28800"})
    paid = run(definition, full=False)
    key = invoices.milestone_key(psa(), kickoff)
    assert kinds(paid) == {key: "field_mismatch"}
    diff = Difference.objects.get(run=paid)
    assert (diff.source_status, diff.target_status) == ("invoiced", "paid")
    assert (paid.source_pulled, paid.target_pulled) == (0, 1)

    # the payment reaches the PSA as Throughline's reference on the story (the story itself
    # is unchanged): the incremental read finds it through the reference
    assert sync_payments(erp()) == 1
    heard = run(definition, full=False)
    assert kinds(heard) == {}
    assert heard.source_pulled == 1
