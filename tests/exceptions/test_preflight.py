"""The pre-flight check before a retry or restart, over the demo's stand-ins: it looks in each
target system for the records the run writes (was it created after all?), re-runs the
mapping to show what will be sent, says why an attempt would fail again, refuses what the
user may not do, masks money for those without finance rights; the page and the API agree."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from console.choices import Role
from console.models import Membership, Team, User
from exceptions import actions, preflight
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.masking import MASK
from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.connectors.registry import build_client
from integrations.models import Connection
from integrations.polling import poll_closed_won

WRITE_BACK = {"method": "PATCH", "path": "/services/data/.*/composite/sobjects", "status": 503}
DE_TAX_FIX = {
    "taxRegistration": {
        "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE811234567"}]
    }
}


def poll() -> None:
    poll_closed_won(Connection.objects.get(vendor="salesforce"))


def user(name: str) -> User:
    return User.objects.get(username=name)


def workspaces(standins, correlation_id: str) -> list[dict]:
    marker = f"[throughline {correlation_id}]"
    rows = standins["kantata"].state.table("workspaces").values()
    return [w for w in rows if marker in (w.get("description") or "") + (w.get("title") or "")]


def lookup(report: preflight.Preflight, record: str):
    return next(found for found in report.lookups if found.record == record)


def test_preflight_finds_what_was_created_before_the_failure_and_restart_adds_nothing(demo):
    demo["salesforce"].state.add_fault(**WRITE_BACK)
    poll()
    exc = IntegrationException.objects.filter(
        code=ExceptionCode.VENDOR_UNAVAILABLE, step__name="write_back_crm"
    ).first()
    assert exc is not None
    it = user("it")

    report = preflight.check(exc, it)
    assert report.allowed, report.refusal
    workspace = lookup(report, "Project workspace")
    assert workspace.found and workspace.key == exc.run.correlation_id
    assert workspace.external_id == exc.run.context["provision_project"]["psa_project_id"]
    assert lookup(report, "Customer").found
    assert lookup(report, "Project (job)").found
    assert {found.record for found in report.already_there} == {
        "Project workspace",
        "Customer",
        "Project (job)",
    }
    (write_back,) = report.previews  # a retry resumes at the failed step: what it sends
    assert write_back.step == "write_back_crm"
    (_what, fields), *_ = write_back.sends
    assert fields["Throughline_PSA_Project_Id__c"] == workspace.external_id
    assert not report.problems

    demo["salesforce"].state.clear_faults()
    result = actions.restart(exc, it)
    assert result.ok, result.message
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert exc.run.status == RunStatus.SUCCEEDED
    assert len(workspaces(demo, exc.run.correlation_id)) == 1


def test_preflight_says_the_retry_would_fail_until_the_data_is_fixed(demo):
    poll()
    exc = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)
    finance = user("finance")

    report = preflight.check(exc, finance)
    assert report.allowed
    assert report.previews[0].step == "check_legal_entity"
    assert "no tax registration" in report.problems[0]
    assert not lookup(report, "Project workspace").found
    assert not lookup(report, "Customer").found

    erp = Connection.objects.get(name="NetSuite (demo)")
    with build_client(erp) as client:
        client.update_record("subsidiary", "3", DE_TAX_FIX)
    report = preflight.check(exc, finance)
    assert not report.problems
    assert report.previews[0].uses["legal_entity"]["code"] == "DE01"


def test_restart_preflight_reads_the_deal_again_and_plans_the_project(demo):
    poll()
    exc = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    report = preflight.check(exc, user("pmo"), preflight.RESTART)
    assert "Restart runs all 7 steps" in report.plan
    assert [p.step for p in report.previews] == [
        "fetch_deal",
        "check_legal_entity",
        "provision_project",
    ]
    fetched = report.previews[0]
    assert fetched.uses["project_template"] == "LEGACY-X"
    assert "Read again from Salesforce (demo)" in fetched.note
    assert report.problems == ["Project template 'LEGACY-X' does not exist."]
    assert fetched.uses["amount"] == MASK  # the PMO has no finance rights

    admin = User.objects.get(is_superuser=True)
    report = preflight.check(exc, admin, preflight.RESTART)
    assert report.previews[0].uses["amount"] == "45000.00"


def test_preflight_refuses_what_the_user_may_not_do(demo):
    poll()
    exc = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)
    report = preflight.check(exc, user("pmo"))
    assert report.refusal == (
        "Only members of Finance with a resolver role can retry this exception."
    )
    assert report.lookups == [] and report.previews == []  # nothing looked up for them

    viewer = User.objects.create_user("vicky", password="pw-for-tests-1")
    Membership.objects.create(user=viewer, team=Team.objects.get(slug="finance"), role=Role.VIEWER)
    assert preflight.check(exc, viewer).refusal.startswith("Only members of Finance")

    actions.retry(exc, user("finance"))  # fails again: the run is failed, open again
    exc.run.status = RunStatus.RUNNING
    exc.run.save(update_fields=["status"])
    report = preflight.check(exc, user("finance"))
    assert report.refusal == "The run is already queued or running; wait for its result."


def test_an_exception_without_a_run_says_there_is_no_lookup(demo):
    poll()
    exc = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)
    IntegrationException.objects.filter(pk=exc.pk).update(run=None, connection=exc.connection)
    exc.refresh_from_db()
    report = preflight.check(exc, user("finance"))
    assert report.lookup_note == "No lookup for this exception: it has no workflow run."
    assert report.plan.startswith("Retry reads NetSuite (demo) again")
    assert preflight.check(exc, user("finance"), preflight.RESTART).refusal.startswith(
        "Nothing to restart"
    )


def test_retry_page_shows_the_check_then_performs_it(demo):
    poll()
    exc = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    client = Client()
    client.force_login(user("pmo"))
    url = reverse("exceptions:replay", args=[exc.pk])
    body = client.get(url).content.decode()
    assert "Was it created after all?" in body
    assert "It would fail again: Project template &#x27;LEGACY-X&#x27; does not exist." in body
    assert "Already in the target system: customer TL-0015g00000Tl004AAB" in body
    assert "Retry now" in body
    response = client.post(url, {"mode": "retry"}, follow=True)
    assert b"Retried, but it failed again" in response.content

    other = Client()
    other.force_login(user("finance"))
    body = other.get(url).content.decode()
    assert "Only members of PMO with a resolver role can retry" in body
    assert "Retry now" not in body


def test_preflight_api(demo):
    poll()
    exc = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    client = APIClient()
    client.force_authenticate(user("pmo"))
    url = f"/api/v1/exceptions/{exc.pk}/preflight/"
    body = client.get(url, {"mode": "restart"}).json()
    assert body["allowed"] is True
    assert body["mode"] == "restart"
    assert {lk["record"]: lk["found"] for lk in body["lookups"]} == {
        "Project workspace": False,
        "Customer": True,
        "Project (job)": False,
    }
    assert next(p["step"] for p in body["previews"]) == "fetch_deal"
    assert body["problems"] == ["Project template 'LEGACY-X' does not exist."]
    assert client.get(url, {"mode": "sideways"}).status_code == 400
