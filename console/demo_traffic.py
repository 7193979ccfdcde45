"""The demo's traffic generator: business activity in all three domains, continuously, with a
small share of realistic faults — deals closing (now and then with a missing project
template, or entered late with a CloseDate weeks back), milestones completing, approved time
and expenses arriving, amendments approved, subcontractors engaged, customers paying invoices
(in full or in part), finance closing last month's books in the ERP, the odd vendor
hiccup (a 503 from the ERP, a 429 from the PSA) that retries absorb or that lands with IT, and
now and then a person editing a record by hand in a vendor system (an invoice copied, a time
bill deleted, a customer or project renamed) that only reconciliation notices.

It acts only through the stand-ins' own control endpoints, like a person clicking in the
vendors' systems; Throughline then picks the activity up through its normal paths (webhooks,
polling, change feeds). Project wiring like `console.demo`: it names every app.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from django.utils import timezone

from integrations.models import SyncRun

from .demo import KANTATA_TOKEN, standin_urls

logger = logging.getLogger(__name__)

ACCOUNTS = {
    "UK01": "0015g00000Tl001AAB",  # Northwind (GB)
    "US01": "0015g00000Tl002AAB",  # Globex (US)
}
#: the Kantata user who works for each legal entity (NetSuite employees 104 and 101)
STAFF = {"UK01": 2, "US01": 3}
#: the subcontractor engaged on each legal entity's projects (Kantata users of vendor firms)
SUBCONTRACTORS = {"UK01": 14, "US01": 15}
NORTHWIND_DEAL = "0065g00000Tl001AAB"
NORTHWIND_AMENDMENT = "a015g00000Tl001AAB"


@dataclass
class Tick:
    actions: list[str] = field(default_factory=list)


def tick(rng: random.Random | None = None) -> Tick:
    """One round of activity; each action is independent and failures are logged."""
    rng = rng or random.Random()  # noqa: S311 (demo traffic, not security)
    urls = standin_urls()
    done = Tick()
    with httpx.Client(timeout=10) as client:
        for name, action in (
            ("deal", _close_deal),
            ("milestone", _complete_milestone),
            ("time", _submit_time),
            ("expense", _submit_expense),
            ("amendment", _approve_amendment),
            ("subcontractor", _engage_subcontractor),
            ("payment", _pay_invoice),
            ("close", _close_month),
            ("fault", _inject_fault),
            ("manual edit", _manual_edit),
        ):
            try:
                result = action(client, urls, rng)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                logger.info("demo traffic: %s skipped (%s)", name, exc)
                continue
            if result:
                done.actions.append(result)
    return done


def _close_deal(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    if rng.random() > 0.5:
        return ""
    entity = rng.choice(list(ACCOUNTS))
    template = "LEGACY-X" if rng.random() < 0.05 else rng.choice(["FIXED-3", "TM-STD"])
    amount = f"{rng.randrange(20, 400) * 500}.00"
    deal = {
        "account_id": ACCOUNTS[entity],
        "legal_entity": entity,
        "template": template,
        "amount": amount,
        "planned_margin": rng.choice([25, 30, 35, 40]),
    }
    late = ""
    if rng.random() < 0.15:  # entered late: its project started (and earns revenue) back then
        closed_on = timezone.now().date() - dt.timedelta(days=rng.randrange(45, 120))
        deal["close_date"] = closed_on.isoformat()
        late = f", closed on {closed_on}"
    answer = client.post(f"{urls['salesforce']}/__standin__/salesforce/close-deal", json=deal)
    answer.raise_for_status()
    return f"deal {answer.json()['id']} closed ({entity}, {template}, {amount}{late})"


def _provisioned_workspaces() -> list[tuple[str, str]]:
    """(Kantata workspace id, legal entity) of recently provisioned projects."""
    runs = SyncRun.objects.filter(workflow="create_service_engagement", status="succeeded")
    return [
        (r.context["provision_project"]["psa_project_id"], r.legal_entity_code)
        for r in runs.order_by("-id")[:50]
        if "provision_project" in r.context
    ]


def _complete_milestone(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    if rng.random() > 0.3:
        return ""
    workspaces = _provisioned_workspaces()
    if not workspaces:
        return ""
    workspace, _entity = rng.choice(workspaces)
    stories = client.get(f"{urls['kantata']}/__standin__/records/stories").json()["records"]
    open_ones = [
        s
        for s in stories
        if str(s.get("workspace_id")) == workspace
        and s.get("story_type") == "milestone"
        and s.get("state") != "completed"
    ]
    if not open_ones:
        return ""
    story = min(open_ones, key=lambda s: str(s.get("due_date") or ""))
    client.post(
        f"{urls['kantata']}/__standin__/kantata/complete-milestone", json={"story_id": story["id"]}
    ).raise_for_status()
    return f"milestone {story['id']} completed"


def _submit_time(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    workspaces = [(w, e) for w, e in _provisioned_workspaces() if e in STAFF]
    if not workspaces or rng.random() > 0.6:
        return ""
    count = rng.randrange(5, 40)
    workspace, entity = rng.choice(workspaces)
    client.post(
        f"{urls['kantata']}/__standin__/kantata/time-burst",
        json={
            "workspace_id": workspace,
            "count": count,
            "approved": True,
            "user_ids": [STAFF[entity]],
        },
    ).raise_for_status()
    return f"{count} approved time entries"


def _inject_fault(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        client.post(
            f"{urls['netsuite']}/__standin__/faults",
            json={"method": "PUT", "path": "/record/v1/", "status": 503, "times": 1},
        ).raise_for_status()
        return "fault: one ERP 503"
    if roll < 0.08:
        client.post(
            f"{urls['kantata']}/__standin__/faults",
            json={"method": "POST", "path": "/api/v1/", "status": 429, "times": 1},
        ).raise_for_status()
        return "fault: one PSA 429"
    return ""


#: (stand-in, collection, what a person does to one of its records by hand)
MANUAL_EDITS = (
    ("netsuite", "customer", "rename"),
    ("kantata", "workspaces", "rename"),
    ("netsuite", "invoice", "copy"),
    ("netsuite", "timebill", "delete"),
)


def _manual_edit(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    """Now and then someone changes a record by hand in a vendor system, behind
    Throughline's back: the next reconciliation run finds it (a duplicate invoice, a time
    bill missing in the ERP, a customer or project whose name no longer matches)."""
    if rng.random() > 0.03:
        return ""
    vendor, collection, edit = rng.choice(MANUAL_EDITS)
    base = f"{urls[vendor]}/__standin__/records/{collection}"
    records = client.get(base).json()["records"]
    if collection == "workspaces":  # only projects Throughline provisioned
        records = [r for r in records if "[throughline " in str(r.get("description", ""))]
    records = [r for r in records if r.get("externalId") or collection == "workspaces"]
    if not records:
        return ""
    record = rng.choice(records)
    rid = str(record["id"])
    if edit == "copy":
        client.post(f"{base}/{rid}/copy", json={}).raise_for_status()
    elif edit == "delete":
        client.delete(f"{base}/{rid}").raise_for_status()
    else:
        field_name = "title" if collection == "workspaces" else "companyName"
        renamed = f"{record.get(field_name) or 'Record'} (edited)"
        client.post(f"{base}/{rid}", json={field_name: renamed}).raise_for_status()
    return f"manual edit: {edit} {vendor} {collection} {rid}"


def _submit_expense(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    """An approved expense; now and then one above the receipt threshold without a receipt."""
    workspaces = [(w, e) for w, e in _provisioned_workspaces() if e in STAFF]
    if not workspaces or rng.random() > 0.3:
        return ""
    workspace, entity = rng.choice(workspaces)
    cents = 50000 if rng.random() < 0.1 else rng.randrange(1500, 7000)
    created = client.post(
        f"{urls['kantata']}/api/v1/expenses.json",
        json={
            "expense": {
                "workspace_id": workspace,
                "date": timezone.now().date().isoformat(),
                "category": rng.choice(["Travel", "Meals", "Hotel"]),
                "amount_in_cents": cents,
                "user_id": STAFF[entity],
                "billable": True,
            }
        },
        headers={"Authorization": f"Bearer {KANTATA_TOKEN}"},
    )
    created.raise_for_status()
    expense_id = next(iter(created.json()["expenses"]))
    client.post(
        f"{urls['kantata']}/__standin__/kantata/approve", json={"expense_ids": [expense_id]}
    ).raise_for_status()
    return f"expense {expense_id} approved ({cents / 100:.2f})"


def _engage_subcontractor(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    """Now and then a subcontractor is assigned to a milestone of a project: a purchase order
    to their firm follows when assignments are next synchronised."""
    if rng.random() > 0.15:
        return ""
    workspaces = [(w, e) for w, e in _provisioned_workspaces() if e in SUBCONTRACTORS]
    if not workspaces:
        return ""
    workspace, entity = rng.choice(workspaces)
    stories = client.get(f"{urls['kantata']}/__standin__/records/stories").json()["records"]
    milestones = [
        s
        for s in stories
        if str(s.get("workspace_id")) == workspace and s.get("story_type") == "milestone"
    ]
    if not milestones:
        return ""
    story = rng.choice(milestones)
    hours = rng.choice([8, 16, 24, 40])
    created = client.post(
        f"{urls['kantata']}/api/v1/assignments.json",
        json={
            "assignment": {
                "story_id": story["id"],
                "assignee_id": SUBCONTRACTORS[entity],
                "estimated_minutes": hours * 60,
            }
        },
        headers={"Authorization": f"Bearer {KANTATA_TOKEN}"},
    )
    if created.status_code == 422:  # already engaged on that milestone
        return ""
    created.raise_for_status()
    return f"subcontractor {SUBCONTRACTORS[entity]} engaged for {hours} h on story {story['id']}"


def _pay_invoice(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    """Now and then a customer pays an open invoice in the ERP: mostly in full, sometimes
    half of what remains (DSO moves when the payments sync reads it)."""
    if rng.random() > 0.3:
        return ""
    invoices = client.get(f"{urls['netsuite']}/__standin__/records/invoice").json()["records"]
    open_ones = [
        i for i in invoices if Decimal(str(i.get("amountRemaining") or "0")) > 0 and i.get("id")
    ]
    if not open_ones:
        return ""
    invoice = min(open_ones, key=lambda i: str(i.get("tranDate") or ""))
    remaining = Decimal(str(invoice["amountRemaining"]))
    amount = remaining if rng.random() < 0.7 else (remaining / 2).quantize(Decimal("0.01"))
    client.post(
        f"{urls['netsuite']}/__standin__/netsuite/invoice/{invoice['id']}/pay",
        json={"amount": str(amount)},
    ).raise_for_status()
    return f"invoice {invoice.get('tranId')} paid {amount} of {remaining}"


def _close_month(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    """Finance closes the books of the oldest month that ended and is still open (the ERP
    then counts its revenue schedule lines as recognised)."""
    if rng.random() > 0.05:
        return ""
    today = timezone.now().date()
    periods = client.get(f"{urls['netsuite']}/__standin__/records/accountingperiod").json()
    due = [
        p
        for p in periods["records"]
        if not p.get("closed") and p.get("endDate") and p["endDate"] < today.isoformat()
    ]
    if not due:
        return ""
    period = min(due, key=lambda p: p["endDate"])
    client.post(
        f"{urls['netsuite']}/__standin__/netsuite/accounting-period/{period['id']}",
        json={"closed": True},
    ).raise_for_status()
    return f"books of {period.get('periodName')} closed"


def _approve_amendment(client: httpx.Client, urls: dict[str, str], rng: random.Random) -> str:
    """Approve the seeded draft amendment once its deal has been handed over."""
    if (
        rng.random() > 0.1
        or not SyncRun.objects.filter(
            correlation_id=f"deal:{NORTHWIND_DEAL}", status="succeeded"
        ).exists()
    ):
        return ""
    if SyncRun.objects.filter(workflow="update_billing_plan").exists():
        return ""
    client.post(
        f"{urls['salesforce']}/__standin__/salesforce/approve-amendment",
        json={"id": NORTHWIND_AMENDMENT},
    ).raise_for_status()
    return f"amendment {NORTHWIND_AMENDMENT} approved"
