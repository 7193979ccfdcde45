"""The Finance journey of the demo, in a real browser against the real stand-ins: a deal
fails for a subsidiary without tax registration; Finance adds the registration in the ERP
(the NetSuite stand-in's page), presses Retry on its queue page, and the project is
provisioned exactly once while the exception resolves."""

from __future__ import annotations

import re
from typing import Any

import pytest

from console.demo import DEMO_PASSWORD
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.models import Connection
from integrations.polling import poll_closed_won

pytestmark = [pytest.mark.browser]


def test_finance_fixes_the_tax_registration_and_retries_from_the_queue(
    page: Any, live_server: Any, login: Any, demo: dict[str, Any]
) -> None:
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    exc = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)

    # In the ERP: add the missing tax registration to Throughline Demo GmbH.
    page.goto(f"{demo['netsuite'].url}/__standin__/netsuite/")
    row = page.get_by_role("row").filter(has_text="Throughline Demo GmbH")
    row.get_by_label("Number").fill("DE811234567")
    row.get_by_role("button", name="Add").click()
    page.get_by_role("row").filter(has_text="DE811234567").wait_for()

    # In Throughline: the Finance queue, then Retry.
    login(page, live_server, "finance", DEMO_PASSWORD)
    page.get_by_role("main").get_by_role("link", name=re.compile(r"^Finance")).first.click()
    page.get_by_role("heading", name="Finance", level=1).wait_for()
    page.get_by_role("button", name=re.compile(r"^Retry exception")).click()
    page.get_by_text(re.compile("resolved", re.I)).first.wait_for()

    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert exc.run.status == RunStatus.SUCCEEDED
    initech = [
        c
        for c in demo["netsuite"].state.table("customer").values()
        if c.get("companyName") == "Initech GmbH"
    ]
    assert len(initech) == 1
    # The queue is empty now, and says so.
    page.goto(f"{live_server.url}{exc.queue.get_absolute_url()}")
    assert page.get_by_role("button", name=re.compile(r"^Retry exception")).count() == 0
