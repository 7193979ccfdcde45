"""The demo through the stand-ins: the seeded deals that fail open incidents that alert their
teams once (by e-mail: the demo has no webhook), and fixing the cause and retrying resolves
the incident with its "resolved" alert."""

from __future__ import annotations

from decimal import Decimal

from django.core import mail

from console.models import User
from exceptions import actions
from exceptions.choices import AlertEvent, ExceptionCode, ExceptionStatus, IncidentStatus
from exceptions.incidents import impacts
from exceptions.models import Alert, Incident, IntegrationException
from integrations.connectors.registry import build_client
from integrations.models import Connection
from integrations.polling import poll_closed_won

DE_TAX_FIX = {
    "taxRegistration": {
        "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE811234567"}]
    }
}


def test_the_demos_failures_open_incidents_that_resolve_when_fixed(demo):
    poll_closed_won(Connection.objects.get(vendor="salesforce"))

    tax = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)
    template = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    assert tax.incident.title == "Legal entity DE01 has no tax registration in NetSuite (demo)"
    assert template.incident.title == "Project template LEGACY-X does not exist"
    assert tax.queue.sla_hours == 24 and template.queue.sla_hours == 8
    assert tax.due_at is not None
    assert tax.amount is not None and tax.currency == "EUR"
    money = impacts([tax.incident])[tax.incident_id].money
    assert money == {"EUR": tax.amount} and isinstance(money["EUR"], Decimal)

    to_finance = [m for m in mail.outbox if "finance-team@example.com" in m.to]
    assert len(to_finance) == 1
    assert "Legal entity DE01 has no tax registration" in to_finance[0].subject

    with build_client(Connection.objects.get(name="NetSuite (demo)")) as client:
        client.update_record("subsidiary", "3", DE_TAX_FIX)
    result = actions.retry(tax, User.objects.get(username="finance"))
    assert result.ok, result.message

    tax.refresh_from_db()
    assert tax.status == ExceptionStatus.RESOLVED
    incident = Incident.objects.get(pk=tax.incident_id)
    assert incident.status == IncidentStatus.RESOLVED
    assert Alert.objects.filter(incident=incident, event=AlertEvent.RESOLVED).count() == 1
    resolved = [m for m in mail.outbox if m.subject.startswith("[Throughline] Incident resolved")]
    assert len(resolved) == 1 and "finance-team@example.com" in resolved[0].to
    assert Incident.objects.get(pk=template.incident_id).status == IncidentStatus.OPEN
