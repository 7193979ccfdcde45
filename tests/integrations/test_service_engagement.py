"""create-service-engagement over the stand-ins (real HTTP, tasks run in-process): every
closed-won deal ends provisioned exactly once or as an open exception in the owning queue."""

from __future__ import annotations

import pytest

from console.models import AuditEvent, User
from exceptions import actions
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations.choices import RunStatus, StepStatus
from integrations.connectors.kantata.mapping import make_marker
from integrations.connectors.registry import build_client
from integrations.models import Connection, ExternalBinding, SyncRun
from integrations.polling import poll_closed_won
from integrations.telemetry import calls_of_runs
from integrations.workflows.engine import execute_run

INITECH_OPP_NAME = "Cloud migration"
DE_TAX_FIX = {
    "taxRegistration": {
        "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE811234567"}]
    }
}


def crm() -> Connection:
    return Connection.objects.get(vendor="salesforce")


def poll():
    return poll_closed_won(crm())


def customers(standins, name: str | None = None) -> list[dict]:
    rows = list(standins["netsuite"].state.table("customer").values())
    return [r for r in rows if name is None or r.get("companyName") == name]


def workspaces(standins, needle: str = "[throughline deal:") -> list[dict]:
    rows = standins["kantata"].state.table("workspaces").values()
    return [w for w in rows if needle in (w.get("description") or "") + (w.get("title") or "")]


def exception(code: str) -> IntegrationException:
    return IntegrationException.objects.get(code=code)


def fix_tax_configuration() -> None:
    erp = Connection.objects.get(name="NetSuite (demo)")
    with build_client(erp) as client:
        client.update_record("subsidiary", "3", DE_TAX_FIX)


def test_demo_deals_provision_or_land_in_the_owning_queue(demo):
    result = poll()
    assert (result.seen, result.started) == (4, 4)
    assert SyncRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2
    assert SyncRun.objects.filter(status=RunStatus.FAILED).count() == 2

    assert sorted(c["companyName"] for c in customers(demo)) == [
        "Globex Corporation",
        "Northwind Consulting Ltd",
        "Umbrella Advisory LLC",  # its project failed after the customer step
    ]
    assert len(workspaces(demo)) == 2
    milestones = [
        s
        for s in demo["kantata"].state.table("stories").values()
        if s.get("story_type") == "milestone"
    ]
    assert len(milestones) == 3 + 2  # FIXED-3 and TM-STD

    northwind = SyncRun.objects.get(title__startswith="Northwind")
    erp_id = northwind.context["ensure_erp_customer"]["erp_customer_id"]
    psa_id = northwind.context["provision_project"]["psa_project_id"]
    opp = demo["salesforce"].state.table("Opportunity")[northwind.correlation_id.split(":")[1]]
    assert opp["Throughline_ERP_Customer_Id__c"] == erp_id
    assert opp["Throughline_PSA_Project_Id__c"] == psa_id

    tax = exception(ExceptionCode.TAX_CONFIGURATION_MISSING)
    assert (tax.queue.name, tax.legal_entity_code, tax.region) == ("Finance", "DE01", "EMEA")
    assert tax.step.name == "check_legal_entity"
    template = exception(ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    assert template.queue.name == "PMO Americas"
    assert template.entity_ref == "LEGACY-X"
    # The PMO failure happened after the customer was created: the customer stays, bound.
    assert len(customers(demo, "Umbrella Advisory LLC")) == 1

    calls = calls_of_runs([northwind.pk])  # its own calls and the bulk calls it shared
    assert {c.connection.vendor for c in calls} == {"salesforce", "netsuite", "kantata"}
    assert all(c.status_code and c.status_code < 300 for c in calls)
    assert AuditEvent.objects.filter(action="erp.customer.upserted").count() == 3
    assert AuditEvent.objects.filter(action="psa.project.created").count() == 2


def test_fixing_the_tax_configuration_and_retrying_provisions_exactly_once(demo):
    poll()
    tax = exception(ExceptionCode.TAX_CONFIGURATION_MISSING)
    finance = User.objects.get(username="finance")

    result = actions.retry(tax, finance)  # nothing fixed yet: it fails again, same exception
    assert not result.ok
    tax.refresh_from_db()
    assert (tax.status, tax.occurrences) == (ExceptionStatus.OPEN, 2)

    fix_tax_configuration()
    result = actions.retry(tax, finance)
    assert result.ok, result.message
    tax.refresh_from_db()
    assert tax.status == ExceptionStatus.RESOLVED
    assert tax.run.status == RunStatus.SUCCEEDED
    assert len(customers(demo, "Initech GmbH")) == 1
    assert len(workspaces(demo, make_marker(tax.run.correlation_id))) == 1
    opp = demo["salesforce"].state.table("Opportunity")[tax.run.correlation_id.split(":")[1]]
    assert opp["Throughline_PSA_Project_Id__c"]

    with pytest.raises(actions.ActionRefused):
        actions.retry(tax, finance)
    assert AuditEvent.objects.filter(action="exception.retry", actor=finance).count() == 2


def test_a_replay_of_every_step_creates_nothing_twice(demo):
    poll()
    run = SyncRun.objects.get(title__startswith="Northwind")
    before = (len(customers(demo)), len(workspaces(demo)))
    # Forget what Throughline knew: the steps must find the records in the targets.
    ExternalBinding.objects.filter(created_by_run=run).delete()
    run.steps.update(status=StepStatus.PENDING)
    SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.PENDING)
    assert execute_run(run.pk).status == RunStatus.SUCCEEDED
    assert (len(customers(demo)), len(workspaces(demo))) == before


def test_the_echo_of_our_own_write_back_starts_nothing(demo):
    poll()
    again = poll()
    assert again.seen >= 2  # the write-backs changed SystemModstamp: the deals come back
    assert again.started == 0
    assert SyncRun.objects.count() == 4


def test_a_vendor_outage_is_retried_and_then_lands_with_it(demo):
    netsuite = demo["netsuite"].state
    netsuite.add_fault(method="PUT", path="/record/v1/customer", status=503, times=2)
    poll()
    # Two 503s were absorbed by the client's retries: both good deals still provisioned.
    assert SyncRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2

    netsuite.add_fault(method="GET", path="/record/v1/subsidiary", status=503)
    new_opp = _new_closed_won_deal(demo)
    poll()
    outage = exception(ExceptionCode.VENDOR_UNAVAILABLE)
    assert outage.queue.name == "IT Integration"
    assert outage.run.correlation_id == f"deal:{new_opp}"
    assert outage.vendor_error["status"] == 503

    netsuite.clear_faults()
    result = actions.retry(outage, User.objects.get(username="it"))
    assert result.ok, result.message


def test_a_failure_after_the_project_exists_resumes_without_a_second_project(demo):
    kantata = demo["kantata"].state
    kantata.add_fault(method="POST", path="/api/v1/stories", status=500)
    poll()
    lost = IntegrationException.objects.filter(code=ExceptionCode.VENDOR_UNAVAILABLE)
    assert lost.count() == 2  # both good deals: workspace made, milestones not
    assert len(workspaces(demo)) == 2
    kantata.clear_faults()
    it = User.objects.get(username="it")
    for exc in lost:
        assert actions.retry(exc, it).ok
    assert len(workspaces(demo)) == 2
    stories = kantata.table("stories").values()
    assert sum(1 for s in stories if s.get("story_type") == "milestone") == 3 + 2


def test_a_hostile_deal_lands_in_sales_ops_with_its_payload_kept(demo):
    opp_id = _new_closed_won_deal(demo)
    record = demo["salesforce"].state.table("Opportunity")[opp_id]
    record["Name"] = "<script>alert(1)</script>" + "x" * 2_000_000
    record["Amount"] = "twelve thousand"
    poll()
    bad = IntegrationException.objects.get(run__correlation_id=f"deal:{opp_id}")
    assert bad.code == ExceptionCode.DEAL_DATA_INVALID
    assert bad.queue.name == "Sales Ops"
    assert "<script>" in bad.payload["Name"]
    assert {p["field"] for p in bad.vendor_error["details"]["problems"]} >= {"name", "amount"}
    assert len(customers(demo)) == 3  # nothing half-written for the hostile deal


def test_revoked_credentials_land_with_it(demo):
    demo["kantata"].state.revoke_tokens()
    poll()
    auth = IntegrationException.objects.filter(code=ExceptionCode.AUTHENTICATION_FAILED)
    assert auth.count() == 2
    assert {e.queue.name for e in auth} == {"IT Integration"}
    assert {e.category for e in auth} == {"technical"}


def _new_closed_won_deal(standins) -> str:
    with build_client(crm()) as client:
        account = next(
            iter(client.query("SELECT Id FROM Account WHERE Name = 'Globex Corporation'"))
        )
        return client.create(
            "Opportunity",
            {
                "Name": "Managed services",
                "StageName": "Closed Won",
                "Amount": 30000,
                "CloseDate": "2026-11-20",
                "CurrencyIsoCode": "USD",
                "AccountId": account["Id"],
                "Legal_Entity__c": "US01",
                "Project_Template__c": "TM-STD",
            },
        )


def test_a_crm_that_cannot_be_read_lands_with_it_and_resolves_when_it_answers(demo):
    demo["salesforce"].state.add_fault(method="GET", path="/query", status=503)
    with pytest.raises(Exception, match=r"(?i)unavailable|injected"):
        poll()
    outage = IntegrationException.objects.get(run__isnull=True)
    assert outage.code == ExceptionCode.VENDOR_UNAVAILABLE
    assert outage.connection == crm()
    assert outage.queue.name == "IT Integration"
    with pytest.raises(Exception, match=r"(?i)unavailable|injected"):
        poll()  # still down: one exception, two occurrences
    outage.refresh_from_db()
    assert outage.occurrences == 2

    demo["salesforce"].state.clear_faults()
    assert poll().started == 4
    outage.refresh_from_db()
    assert outage.status == ExceptionStatus.RESOLVED
