"""The trace page shows one deal's whole path in time order and what is expected next."""

from django.test import Client

from console.models import User
from exceptions import actions
from exceptions.choices import ExceptionCode
from exceptions.models import IntegrationException
from integrations.models import Connection
from integrations.polling import poll_closed_won


def test_trace_of_a_failed_then_retried_deal(demo):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    exc = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    client = Client()
    client.force_login(User.objects.get(username="pmo"))
    page = client.get(f"/trace/{exc.run.business_key}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "provision_project" in html
    assert "Expected next" in html
    assert "netsuite.customer" in html or "NetSuite (demo)" in html
    path = html[html.index("Path through CRM") :]
    assert (
        path.index("fetch_deal")
        < path.index("ensure_erp_customer")
        < path.index("provision_project")
    )
    assert exc.title in html

    actions.retry(exc, User.objects.get(username="pmo"))  # fails again: template still missing
    html = client.get(f"/trace/{exc.run.business_key}/").content.decode()
    assert "Retry of exception" in html  # the human action is on the path
    assert client.get("/trace/deal:nothing/").status_code == 404
