"""The three journeys of the exception queues (README "Exception queues"), in a real browser
against the real stand-ins, each through the console's pages only:

1. Finance clears a customer exception for one legal entity: filter its queue by legal
   entity, open the exception, read why and how much, fix the cause in the ERP, Retry
   through the pre-flight check; the customer and its job are created once.
2. The PMO pushes a failed provisioning through for one region: PMO Americas, the Umbrella
   exception, Edit the payload (template LEGACY-X -> FIXED-3), review the diff, save and
   replay; one Kantata workspace.
3. IT bulk-retries the rate-limited calls after a Kantata outage: filter the IT queue by
   "Rate limit exhausted", Bulk action -> Retry on all the results, confirm, follow the
   progress page; every deal gets exactly one workspace.

Data comes from the demo seed and the stand-ins (closing deals, injecting faults through
their control endpoints); the users' actions are clicks and form fills only.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from console.demo import DEMO_PASSWORD
from exceptions import bulk
from exceptions.choices import ExceptionCode, ExceptionStatus, IncidentStatus
from exceptions.masking import MASK
from exceptions.models import IntegrationException
from integrations import outbox
from integrations.choices import RunStatus
from integrations.models import Connection, OutboxMessage
from integrations.polling import poll_closed_won
from integrations.standins.server import RunningStandin

pytestmark = [pytest.mark.browser]

INITECH_DEAL = "0065g00000Tl003AAB"
UMBRELLA_DEAL = "0065g00000Tl004AAB"
#: accounts of the deals closed during the Kantata outage (Northwind, Globex, Contoso)
OUTAGE_ACCOUNTS = ["0015g00000Tl001AAB", "0015g00000Tl002AAB", "0015g00000Tl005AAB"]


def _poll_salesforce() -> None:
    """What beat does every few minutes: read the newly won deals and run their workflows."""
    poll_closed_won(Connection.objects.get(vendor="salesforce"))


def _workspaces_of(kantata: RunningStandin, deal_id: str) -> list[dict[str, Any]]:
    """Kantata workspaces carrying Throughline's marker of the deal (its project key)."""
    return [
        w
        for w in kantata.state.table("workspaces").values()
        if deal_id in f"{w.get('title') or ''} {w.get('description') or ''}"
    ]


def _records_of(standins: list[RunningStandin], table: str, **match: Any) -> list[dict]:
    return [
        record
        for standin in standins
        for record in standin.state.table(table).values()
        if all(record.get(key) == value for key, value in match.items())
    ]


def _open_queue(page: Any, name: str) -> None:
    """Through the main menu: Queues, then the queue."""
    menu = page.get_by_role("navigation", name="Main")
    menu.get_by_text("Queues", exact=True).click()
    menu.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name, level=1).wait_for()


def _status_badge(page: Any) -> str:
    return page.locator("header.page-header .badge").inner_text().strip()


def test_finance_clears_a_customer_exception_for_one_legal_entity(
    page: Any, live_server: Any, login: Any, demo: dict[str, Any]
) -> None:
    _poll_salesforce()
    exc = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)
    title = "Tax configuration missing: legal entity DE01"

    login(page, live_server, "finance", DEMO_PASSWORD)
    _open_queue(page, exc.queue.name)

    # Only DE01's work: the filter keeps it, another legal entity's filter hides it.
    filters = page.get_by_role("form", name="Filter exceptions")
    filters.get_by_label("Legal entity").fill("UK01")
    filters.get_by_role("button", name="Apply filters").click()
    page.get_by_text("No exceptions match these filters.").wait_for()
    filters.get_by_label("Legal entity").fill("DE01")
    filters.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"legal_entity_code=DE01"))
    rows = page.get_by_role("table").get_by_role("row").filter(has_text="DE01")
    assert rows.count() == 1
    assert "90000.00 EUR" in rows.first.inner_text()  # finance sees the money

    rows.first.get_by_role("link", name=title).click()
    page.wait_for_url(f"{live_server.url}{exc.get_absolute_url()}")
    assert page.get_by_text(re.compile(r"has no tax registration in NetSuite")).first.is_visible()
    facts = page.locator("dl.facts").first
    assert "90000.00 EUR" in facts.inner_text()
    assert MASK not in page.content()

    # In the ERP (the NetSuite stand-in's page): add the missing tax registration.
    erp = page.context.new_page()
    erp.goto(f"{demo['netsuite'].url}/__standin__/netsuite/")
    row = erp.get_by_role("row").filter(has_text="Throughline Demo GmbH")
    row.get_by_label("Number").fill("DE811234567")
    row.get_by_role("button", name="Add").click()
    erp.get_by_role("row").filter(has_text="DE811234567").wait_for()
    erp.close()

    # Back in Throughline: Retry, through the pre-flight check.
    page.get_by_role("button", name="Retry…").click()
    page.get_by_role("heading", name="Retry: pre-flight check").wait_for()
    assert page.get_by_text("It would fail again").count() == 0
    page.get_by_role("button", name="Retry now").click()
    page.wait_for_url(f"{live_server.url}{exc.get_absolute_url()}")
    assert page.get_by_text("the run succeeded and the exception is resolved").is_visible()
    assert _status_badge(page) == "Resolved"

    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert exc.run.status == RunStatus.SUCCEEDED
    erps = [demo["netsuite"], demo["netsuite_legacy"]]
    # The customer once in each ERP (DE01's projects stay in the legacy one until its
    # migration), the job once, under the legacy ERP's customer; the workspace once.
    for erp in erps:
        assert len(_records_of([erp], "customer", companyName="Initech GmbH")) == 1
    (customer,) = _records_of([demo["netsuite_legacy"]], "customer", companyName="Initech GmbH")
    jobs = _records_of(erps, "job", externalId=f"TL-PRJ-{INITECH_DEAL}")
    assert [job["parent"] for job in jobs] == [customer["id"]]
    assert len(_workspaces_of(demo["kantata"], INITECH_DEAL)) == 1


def test_pmo_pushes_a_failed_provisioning_through_for_one_region(
    page: Any, live_server: Any, login: Any, demo: dict[str, Any]
) -> None:
    _poll_salesforce()
    exc = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    assert _workspaces_of(demo["kantata"], UMBRELLA_DEAL) == []

    login(page, live_server, "pmo", DEMO_PASSWORD)
    _open_queue(page, "PMO Americas")
    page.get_by_role("link", name="Project template not found: project template LEGACY-X").click()
    page.wait_for_url(f"{live_server.url}{exc.get_absolute_url()}")
    # The PMO has no finance rights: the deal's amount is masked.
    assert MASK in page.locator("dl.facts").first.inner_text()
    assert "45000" not in page.locator("pre.json").last.inner_text()

    page.get_by_role("link", name="Edit the payload…").click()
    page.get_by_role("heading", name="Edit the payload and replay").wait_for()
    editor = page.get_by_label("Payload (JSON)")
    text = editor.input_value()
    assert '"Project_Template__c": "LEGACY-X"' in text
    assert MASK in text and "45000" not in text  # the amount stays hidden, and unchanged
    editor.fill(text.replace('"LEGACY-X"', '"FIXED-3"'))
    page.get_by_role("button", name="Review the changes").click()

    diff = page.get_by_role("table", name="Changed fields")
    diff.wait_for()
    changes = diff.get_by_role("row").filter(has_text="Project_Template__c")
    assert changes.count() == 1
    assert diff.get_by_role("row").count() == 2  # the header and this one change only
    assert "LEGACY-X" in changes.inner_text() and "FIXED-3" in changes.inner_text()
    page.get_by_role("button", name="Save and replay").click()

    page.wait_for_url(re.compile(rf"{re.escape(exc.get_absolute_url())}#payload-edits$"))
    page.get_by_text("Edit applied and replayed").first.wait_for()
    assert _status_badge(page) == "Resolved"

    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert exc.run.status == RunStatus.SUCCEEDED
    assert len(_workspaces_of(demo["kantata"], UMBRELLA_DEAL)) == 1


class HeldBulkActions:
    """Outbox messages of bulk actions, held back instead of handed to Celery (which runs
    eagerly here), so the progress page sees the action queued until `release()` plays the
    worker; every other message goes out as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held: list[int] = []
        self._send = outbox.send
        monkeypatch.setattr(outbox, "send", self._hold)

    def _hold(self, ids: Any) -> int:
        ids = list(ids)
        bulk_ids = set(
            OutboxMessage.objects.filter(pk__in=ids, task=bulk.TASK).values_list("pk", flat=True)
        )
        self.held.extend(bulk_ids)
        return self._send([pk for pk in ids if pk not in bulk_ids])

    def release(self) -> int:
        """Hand the held messages to Celery: the worker runs the bulk actions now."""
        held, self.held = self.held, []
        return self._send(held)


@pytest.fixture
def held_bulk_actions(monkeypatch: pytest.MonkeyPatch) -> HeldBulkActions:
    return HeldBulkActions(monkeypatch)


def test_it_bulk_retries_the_rate_limited_calls_after_a_vendor_outage(
    page: Any,
    live_server: Any,
    login: Any,
    demo: dict[str, Any],
    held_bulk_actions: HeldBulkActions,
) -> None:
    _poll_salesforce()  # the demo's own deals first, so only the outage's fail on Kantata
    kantata, salesforce = demo["kantata"], demo["salesforce"]
    # The outage: Kantata refuses every new workspace for volume (Retry-After 0: no waiting
    # in tests), while three deals are won.
    httpx.post(
        f"{kantata.url}/__standin__/faults",
        json={
            "method": "POST",
            "path": r"/api/v1/workspaces",
            "status": 429,
            "headers": {"Retry-After": "0"},
        },
    ).raise_for_status()
    deals = []
    for account in OUTAGE_ACCOUNTS:
        answer = httpx.post(
            f"{salesforce.url}/__standin__/salesforce/close-deal", json={"account_id": account}
        )
        answer.raise_for_status()
        deals.append(answer.json()["id"])
    _poll_salesforce()
    failed = IntegrationException.objects.filter(code=ExceptionCode.RATE_LIMIT_EXHAUSTED)
    assert failed.count() == len(deals)
    assert {e.queue.name for e in failed} == {"IT Integration"}
    # The outage is over.
    httpx.delete(f"{kantata.url}/__standin__/faults").raise_for_status()

    login(page, live_server, "it", DEMO_PASSWORD)
    _open_queue(page, "IT Integration")
    filters = page.get_by_role("form", name="Filter exceptions")
    filters.get_by_label("Problem").select_option(label="Rate limit exhausted")
    filters.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"code=rate_limit_exhausted"))
    filtered = page.url
    table = page.get_by_role("table", name="Exceptions in IT Integration")
    assert table.get_by_role("row").filter(has_text="Rate limit exhausted").count() == len(deals)

    bulk_form = page.get_by_role("form", name="Bulk action on all the results of these filters")
    bulk_form.get_by_label("Action").select_option("retry")
    bulk_form.get_by_role("button", name="Review…").click()
    page.get_by_role("heading", name="Bulk retry: confirm").wait_for()
    assert page.get_by_role("heading", name="3 exceptions match these filters").is_visible()
    page.get_by_role("button", name="Retry 3 exceptions").click()

    page.wait_for_url(re.compile(r"/exceptions/bulk/\d+/$"))
    status = page.locator("[data-bulk=status]")
    assert status.inner_text() == "Queued"
    assert page.locator("[data-bulk=done]").inner_text() == "0"
    # The worker picks the action up; the page follows it (it polls the API) to the end.
    assert held_bulk_actions.release() == 1
    status.filter(has_text="Finished").wait_for()
    assert page.locator("[data-bulk=done]").inner_text() == "3"
    assert page.locator("[data-bulk=succeeded]").inner_text() == "3"
    assert page.get_by_text("Nothing: every exception was done.").is_visible()

    assert all(e.status == ExceptionStatus.RESOLVED for e in failed.all())
    # The outage was one incident (Kantata rate-limited), resolved with its last exception.
    incidents = {e.incident for e in failed.select_related("incident")}
    assert len(incidents) == 1
    assert incidents.pop().status == IncidentStatus.RESOLVED
    for deal in deals:
        assert len(_workspaces_of(kantata, deal)) == 1, deal
    # The filtered queue is clear now, and says so.
    page.goto(filtered)
    page.get_by_text("No exceptions match these filters.").wait_for()
