"""A Finance resolver signs in, finds the Finance queue and its open exception, opens it and
reads the explanation; a payload holding a script tag renders as text and never runs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from console.choices import TeamKind
from tests.factories import make_exception, make_queue, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-1"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def finance() -> dict[str, Any]:
    team = make_team(TeamKind.FINANCE)
    queue = make_queue(team)
    user = make_user("fiona", team=team, password=PASSWORD)
    exc = make_exception(
        queue,
        title="Tax configuration missing: legal entity DE01",
        explanation="The ERP subsidiary DE01 has no tax registration.",
        payload={"Id": "006TEST", "Description": SCRIPT},
    )
    return {"team": team, "queue": queue, "user": user, "exc": exc}


def test_finance_resolver_works_an_exception(
    page: Any, live_server: Any, login: Any, finance: dict[str, Any]
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    login(page, live_server, "fiona", PASSWORD)

    main = page.get_by_role("main")
    assert main.get_by_role("heading", name="Your queues", exact=True).is_visible()
    main.get_by_role("link", name=re.compile(r"Finance")).first.wait_for()
    exc_link = main.get_by_role("link", name="Tax configuration missing: legal entity DE01")
    assert exc_link.is_visible()

    main.get_by_role("link", name=re.compile(r"^Finance")).first.click()
    page.wait_for_url(f"{live_server.url}/exceptions/queues/{finance['queue'].slug}/")
    assert page.get_by_role("heading", name="Finance", level=1).is_visible()
    assert page.get_by_role("button", name=re.compile(r"^Retry exception")).count() == 1

    page.get_by_role("link", name="Tax configuration missing: legal entity DE01").click()
    page.wait_for_url(f"{live_server.url}/exceptions/{finance['exc'].pk}/")
    assert page.get_by_text("The ERP subsidiary DE01 has no tax registration.").is_visible()
    assert page.get_by_role("button", name="Retry").is_visible()

    payload = page.locator("pre.json").last
    assert SCRIPT in payload.inner_text()
    assert page.get_by_text(SCRIPT, exact=False).first.is_visible()
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert dialogs == []


def test_login_page_without_session_and_sign_out(
    page: Any, live_server: Any, login: Any, finance: dict[str, Any]
) -> None:
    page.goto(f"{live_server.url}/exceptions/")
    assert "/login/" in page.url
    login(page, live_server, "fiona", PASSWORD)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login/$"))
    assert page.get_by_role("heading", name="Sign in to Throughline").is_visible()
