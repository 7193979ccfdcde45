"""Finance's reconciliation journey in a real browser, through the console's pages only:
open Reconciliation from the menu, follow a run to its end (htmx polls its progress and the
page shows the summary when it is done), filter its differences to the field mismatches,
accept one with a reason, and export the filtered differences as CSV.

The run is built from snapshot rows (as tests/reconciliation do), not pulled: the pullers
have their own tests."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from reconciliation.models import Acceptance, Difference, Run
from tests.reconciliation import scenario

from .watching import watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_reviews_a_run_accepts_a_difference_and_exports(
    page: Any, live_server: Any, login: Any
) -> None:
    people = scenario.people()
    run = scenario.invoice_run()
    definition = run.definition
    # the run is still pulling when finance opens it
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.PULLING, phase="pulling target (NetSuite): 1,200 records"
    )
    errors, external = watch(page, live_server)

    login(page, live_server, people.finance.username, scenario.PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reconciliation").click()
    page.get_by_role("heading", name="Reconciliation", level=1).wait_for()
    page.get_by_role("link", name=f"#{run.pk}").click()
    page.get_by_role("heading", name=f"Run #{run.pk} of {definition.name}").wait_for()
    assert page.get_by_text("pulling target (NetSuite): 1,200 records").is_visible()
    assert page.get_by_role("heading", name="Differences").count() == 0

    # the worker finishes: htmx sees it and the page shows the summary
    Run.objects.filter(pk=run.pk).update(status=Run.Status.DONE, phase="done")
    page.get_by_role("heading", name="Differences").wait_for(timeout=10_000)
    assert page.locator('[data-count="field_mismatch"]').inner_text() == "2"
    page.wait_for_function(
        "() => window.Chart && window.Chart.getChart(document.getElementById('recon-risk-chart'))"
    )

    # filter to the field mismatches
    filters = page.get_by_role("form", name="Filter differences")
    filters.get_by_label("Field mismatch").check()
    filters.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**kind=field_mismatch**")
    rows = page.locator("tr[data-difference]")
    assert [rows.nth(i).get_attribute("data-difference") for i in range(rows.count())] == [
        "m4",
        "m5",
    ]
    assert page.get_by_text("300.00 → 299.50").is_visible()

    # accept m4 with a reason
    page.get_by_label("Select m4").check()
    page.get_by_label("Reason to accept (required)").fill("Credit note CN-7 agreed")
    page.get_by_role("button", name="Accept with this reason").click()
    page.get_by_text("1 difference accepted.").wait_for()
    assert "kind=field_mismatch" in page.url
    m4 = page.locator('tr[data-difference="m4"]')
    assert m4.get_by_text("Accepted", exact=True).is_visible()
    assert m4.get_by_text("Credit note CN-7 agreed").is_visible()
    acceptance = Acceptance.objects.get()
    assert (acceptance.key, acceptance.accepted_by) == ("m4", people.finance)
    assert Difference.objects.get(run=run, key="m4").state == Difference.State.ACCEPTED

    # export what the filter shows
    with page.expect_download() as download:
        page.get_by_role("link", name="Export these differences as CSV").click()
    path = Path(download.value.path())
    with path.open(newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert [(r["Key"], r["State"]) for r in exported] == [("m4", "Accepted"), ("m5", "Open")]
    assert exported[0]["Accepted because"] == "Credit note CN-7 agreed"

    assert errors == []
    assert [url for url in external if not url.startswith("data:")] == []
