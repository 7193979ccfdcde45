"""Nothing fails silently: with faults injected, every source event ends either applied in
every target exactly once or as an open exception in the right queue. The test counts both
sides, for each of the three domains."""

from __future__ import annotations

import httpx

from exceptions.models import IntegrationException
from integrations.connectors.kantata.mapping import make_marker
from integrations.models import Connection, SyncRun
from integrations.polling import poll_closed_won
from integrations.postings import collect_time_entries
from integrations.psa_feed import read_psa_events
from integrations.reference_data import sync_people
from tests.standin_steps import complete_first_milestone

ACCOUNTS = {
    "UK01": "0015g00000Tl001AAB",
    "US01": "0015g00000Tl002AAB",
    "DE01": "0015g00000Tl003AAB",
}


def open_exception_ids() -> set[str]:
    """Every source id an unresolved exception stands for (runs, and listed entries)."""
    ids: set[str] = set()
    for exc in IntegrationException.objects.exclude(status="resolved").select_related("run"):
        if exc.run is not None:
            ids.add(exc.run.correlation_id)
        ids.update(exc.vendor_error.get("details", {}).get("entries", []))
    return ids


def test_every_event_is_applied_once_or_open_in_a_queue(demo):
    sf, ns, kt = (demo[v] for v in ("salesforce", "netsuite", "kantata"))
    with httpx.Client() as client:
        for i in range(12):
            entity = ("UK01", "US01", "DE01")[i % 3]
            client.post(
                f"{sf.url}/__standin__/salesforce/close-deal",
                json={
                    "account_id": ACCOUNTS[entity],
                    "legal_entity": entity,
                    "template": "LEGACY-X" if i in (4, 7) else "FIXED-3",
                    "amount": f"{20000 + i}.00",
                },
            ).raise_for_status()
    ns.state.add_fault(method="PUT", path="/record/v1/customer", status=503, times=2)
    kt.state.add_fault(method="POST", path="/api/v1/workspaces", status=500, times=1)

    # -- lead-to-project -------------------------------------------------------------------
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    won = [o for o in sf.state.table("Opportunity").values() if o.get("IsWon")]
    workspaces = kt.state.table("workspaces").values()
    jobs = list(ns.state.table("job").values())
    pending = open_exception_ids()
    applied = excepted = 0
    for opp in won:
        key = f"deal:{opp['Id']}"
        run = SyncRun.objects.get(correlation_id=key)
        in_psa = [w for w in workspaces if make_marker(key) in (w.get("description") or "")]
        in_erp = [j for j in jobs if j.get("externalId") == f"TL-PRJ-{opp['Id']}"]
        if run.status == "succeeded":
            assert (len(in_psa), len(in_erp)) == (1, 1), key
            assert opp["Throughline_PSA_Project_Id__c"], key
            applied += 1
        else:
            assert key in pending, f"{key} failed silently"
            assert len(in_psa) <= 1 and len(in_erp) <= 1, key
            excepted += 1
    assert applied + excepted == len(won) == 16
    assert excepted >= 2 + 4 + 1  # the two LEGACY-X deals, DE01 without tax, the PSA fault

    # -- project-to-cash -------------------------------------------------------------------
    provisioned = SyncRun.objects.filter(workflow="create_service_engagement", status="succeeded")
    stories = []
    for run in provisioned:
        workspace = run.context["provision_project"]["psa_project_id"]
        story = complete_first_milestone(kt, workspace)
        stories.append((str(story["id"]), story.get("billable") is not False))
    november = next(
        p for p in ns.state.table("accountingperiod").values() if p["periodName"] == "Nov 2026"
    )
    november.update(closed=True, arLocked=True)  # some invoices meet a closed period ...
    psa = Connection.objects.get(vendor="kantata")
    read_psa_events(psa)
    november.update(closed=False, arLocked=False)
    pending = open_exception_ids()
    invoices = list(ns.state.table("invoice").values())
    for story, billable in stories:
        key = f"milestone:{psa.pk}:{story}"
        mine = [i for i in invoices if i.get("externalId") == f"TL-INV-{psa.pk}-{story}"]
        if not billable:  # time and materials: progress, not an invoice
            assert not mine and not SyncRun.objects.filter(correlation_id=key).exists()
            continue
        run = SyncRun.objects.get(correlation_id=key)
        assert (run.status == "succeeded" and len(mine) == 1) or (
            run.status == "failed" and key in pending and not mine
        ), key

    # -- resource-to-finance ---------------------------------------------------------------
    sync_people(Connection.objects.get(name="NetSuite (demo)"), psa)
    uk = provisioned.filter(legal_entity_code="UK01").first()
    workspace = uk.context["provision_project"]["psa_project_id"]
    burst = httpx.post(
        f"{kt.url}/__standin__/kantata/time-burst",
        json={"workspace_id": workspace, "count": 60, "approved": True, "user_ids": [1, 2]},
    ).json()
    collect_time_entries(psa)
    pending = open_exception_ids()
    bills = {b.get("externalId") for b in ns.state.table("timebill").values()}
    first, last = int(burst["first_id"]), int(burst["last_id"])
    entry_ids = [
        str(e["id"])
        for e in kt.state.table("time_entries").values()
        if first <= int(e["id"]) <= last
    ]
    assert len(entry_ids) == 60
    posted = refused = 0
    for entry_id in entry_ids:
        if entry_id in bills:
            assert entry_id not in pending
            posted += 1
        else:
            assert entry_id in pending, f"time entry {entry_id} vanished"
            refused += 1
    assert (posted, refused) == (30, 30)  # user 1 is no employee in the ERP
