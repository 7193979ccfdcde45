"""The demo's traffic generator drives real activity through the stand-ins, and Throughline
picks it up through its normal paths."""

import random

import httpx

from console.demo_traffic import tick
from integrations.assignments import sync_assignments
from integrations.models import Connection, SyncRun
from integrations.polling import poll_closed_won


class AlwaysAct(random.Random):
    """A generator whose every roll says "do it" (0.0), choosing the first option."""

    def random(self) -> float:
        return 0.0


def test_a_tick_closes_deals_completes_milestones_and_submits_time(demo, settings):
    settings.STANDIN_PORTS = {v: int(s.url.rsplit(":", 1)[1]) for v, s in demo.items()}
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    before = len(demo["salesforce"].state.table("Opportunity"))
    done = tick(AlwaysAct())
    kinds = " ".join(done.actions)
    assert "deal" in kinds and "milestone" in kinds and "time entries" in kinds
    assert "fault" in kinds and "expense" in kinds and "amendment" in kinds
    assert "subcontractor" in kinds
    # the engagement becomes a purchase order to the subcontractor's firm
    assert sync_assignments(Connection.objects.get(vendor="kantata")).purchase_orders == 1
    orders = demo["netsuite"].state.table("purchaseorder").values()
    assert [o["externalId"] for o in orders if o["externalId"].startswith("TL-PO-")]
    assert len(demo["salesforce"].state.table("Opportunity")) == before + 1
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    assert SyncRun.objects.count() == 5  # the new deal was picked up


class Picks(AlwaysAct):
    """Acts every time and picks the given manual edit."""

    def __init__(self, edit: tuple[str, str, str]) -> None:
        super().__init__()
        self.edit = edit

    def choice(self, seq):
        return self.edit if self.edit in seq else seq[0]


def test_manual_edits_change_records_behind_throughlines_back(demo, settings):
    from console.demo import standin_urls
    from console.demo_traffic import _manual_edit

    settings.STANDIN_PORTS = {v: int(s.url.rsplit(":", 1)[1]) for v, s in demo.items()}
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    customers = demo["netsuite"].state.table("customer")
    ours = {rid for rid, c in customers.items() if c.get("externalId")}
    with httpx.Client() as client:
        done = _manual_edit(client, standin_urls(), Picks(("netsuite", "customer", "rename")))
        assert done.startswith("manual edit: rename netsuite customer")
        renamed = done.rsplit(" ", 1)[1]
        assert renamed in ours and customers[renamed]["companyName"].endswith("(edited)")

        done = _manual_edit(client, standin_urls(), Picks(("kantata", "workspaces", "rename")))
        workspace = demo["kantata"].state.table("workspaces")[done.rsplit(" ", 1)[1]]
        assert workspace["title"].endswith("(edited)")
        assert "[throughline " in workspace["description"]
