"""Edit the payload, see the diff, replay (exceptions.payload_edits), over the demo's
stand-ins: the diff is the server's; the allow-list and finance rights limit what a role may
change; financial edits wait for a second person (never their author); applying replays the
whole workflow with the correction and never creates a record twice."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from console.choices import Role
from console.models import AuditEvent, Membership, Team, User
from exceptions import actions, payload_edits
from exceptions.actions import ActionRefused, InvalidInput, NotAllowed
from exceptions.choices import ExceptionCode, ExceptionStatus, PayloadEditStatus
from exceptions.masking import MASK
from exceptions.models import IntegrationException, PayloadEdit
from integrations import corrections
from integrations.choices import RunStatus
from integrations.models import Connection
from integrations.polling import poll_closed_won

UMBRELLA = "0065g00000Tl004AAB"
WRITE_BACK = {"method": "PATCH", "path": "/services/data/.*/composite/sobjects", "status": 503}


def poll() -> None:
    poll_closed_won(Connection.objects.get(vendor="salesforce"))


def user(name: str) -> User:
    return User.objects.get(username=name)


def member(name: str, *teams: tuple[str, str]) -> User:
    person = User.objects.create_user(name, password="pw-for-tests-1")
    for slug, role in teams:
        Membership.objects.create(user=person, team=Team.objects.get(slug=slug), role=role)
    return person


def umbrella_exception() -> IntegrationException:
    return IntegrationException.objects.select_related("queue__team", "run").get(
        code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND
    )


def edited(exc: IntegrationException, **changes: Any) -> dict[str, Any]:
    return {**exc.payload, **changes}


def workspaces(standins) -> list[dict]:
    marker = f"[throughline deal:{UMBRELLA}]"
    rows = standins["kantata"].state.table("workspaces").values()
    return [w for w in rows if marker in (w.get("description") or "") + (w.get("title") or "")]


def test_diff_lists_each_changed_field_with_before_and_after() -> None:
    before = {"Name": "A", "Account": {"Name": "Old", "City": "X"}, "Lines": [1, 2], "Gone": 1}
    after = {"Name": "A", "Account": {"Name": "New", "City": "X"}, "Lines": [1, 3], "New": 2}
    changes = {c.path: (c.before, c.after) for c in payload_edits.diff(before, after)}
    assert changes == {
        "Account.Name": ("Old", "New"),
        "Lines": ([1, 2], [1, 3]),
        "Gone": (1, None),
        "New": (None, 2),
    }


def test_financial_fields_are_one_definition() -> None:
    assert payload_edits.is_financial("Amount")
    assert payload_edits.is_financial("CurrencyIsoCode")
    assert payload_edits.is_financial("Account.VAT_Number__c")
    assert payload_edits.is_financial("bank.iban")
    assert not payload_edits.is_financial("Project_Template__c")
    assert not payload_edits.is_financial("Legal_Entity__c")


def test_editing_the_template_and_replaying_provisions_exactly_one_workspace(demo):
    poll()
    exc = umbrella_exception()
    pmo = user("pmo")
    assert exc.queue.name == "PMO Americas"

    edit = payload_edits.propose(exc, pmo, edited(exc, Project_Template__c="FIXED-3"))

    assert (edit.status, edit.needs_approval) == (PayloadEditStatus.APPLIED, False)
    assert edit.changed_fields == [
        {"path": "Project_Template__c", "before": "LEGACY-X", "after": "FIXED-3"}
    ]
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert exc.run.status == RunStatus.SUCCEEDED
    assert exc.run.input["Project_Template__c"] == "FIXED-3"
    assert corrections.of(exc.run) == {"Project_Template__c": "FIXED-3"}
    assert exc.run.context["provision_project"]["template"] == "FIXED-3"
    assert len(workspaces(demo)) == 1
    # the CRM keeps its own value: the correction was for this run
    assert demo["salesforce"].state.table("Opportunity")[UMBRELLA]["Project_Template__c"] == (
        "LEGACY-X"
    )
    trail = list(
        AuditEvent.objects.filter(object_id=str(exc.pk), action__startswith="exception.payload")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert trail == ["exception.payload_edit.proposed", "exception.payload_edit.applied"]
    assert AuditEvent.objects.filter(action="run.input_corrected", actor=pmo).exists()


def test_a_replay_after_a_later_failure_finds_the_workspace_instead_of_a_second(demo):
    poll()
    exc = umbrella_exception()
    demo["salesforce"].state.add_fault(**WRITE_BACK)  # the replay fails after provisioning
    payload_edits.propose(exc, user("pmo"), edited(exc, Project_Template__c="FIXED-3"))
    run = exc.run
    run.refresh_from_db()
    assert (run.status, run.error["step"]) == (RunStatus.FAILED, "write_back_crm")
    assert len(workspaces(demo)) == 1

    demo["salesforce"].state.clear_faults()
    stuck = IntegrationException.objects.get(run=run, step__name="write_back_crm")
    assert actions.restart(stuck, user("it")).ok  # the whole workflow again
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert len(workspaces(demo)) == 1
    opp = demo["salesforce"].state.table("Opportunity")[UMBRELLA]
    assert opp["Throughline_PSA_Project_Id__c"] == workspaces(demo)[0]["id"]


def test_the_role_limits_which_fields_change(demo):
    poll()
    exc = umbrella_exception()
    pmo = user("pmo")
    with pytest.raises(InvalidInput, match="cannot be changed here: Id"):
        payload_edits.propose(exc, pmo, edited(exc, Id="0065g00000Tl999AAB"))
    with pytest.raises(NotAllowed, match="Changing Amount needs finance rights"):
        payload_edits.propose(exc, pmo, edited(exc, Amount=1.0))
    with pytest.raises(NotAllowed, match="Only members of PMO"):
        payload_edits.propose(exc, user("finance"), edited(exc, Project_Template__c="FIXED-3"))
    viewer = member("vicky", ("pmo", Role.VIEWER))
    with pytest.raises(NotAllowed):
        payload_edits.propose(exc, viewer, edited(exc, Project_Template__c="FIXED-3"))
    with pytest.raises(InvalidInput, match="Nothing changed"):
        payload_edits.propose(exc, pmo, dict(exc.payload))
    with pytest.raises(InvalidInput, match="not valid JSON"):
        payload_edits.propose(exc, pmo, "{not json")
    assert not PayloadEdit.objects.exists()


def test_masked_values_sent_back_keep_their_real_value(demo):
    poll()
    exc = umbrella_exception()
    pmo = user("pmo")
    shown = payload_edits.for_editor(exc.payload, pmo)
    assert shown["Amount"] == MASK
    checked = payload_edits.review(exc, pmo, json.dumps({**shown, "Legal_Entity__c": "UK01"}))
    assert [c.path for c in checked.changes] == ["Legal_Entity__c"]
    assert checked.after["Amount"] == exc.payload["Amount"]


def test_a_financial_edit_waits_for_a_second_person(demo):
    poll()
    exc = umbrella_exception()
    # a PMO resolver who is also in Finance: finance rights, and may act on the PMO queue
    pam = member("pam", ("pmo", Role.RESOLVER), ("finance", Role.VIEWER))
    edit = payload_edits.propose(exc, pam, edited(exc, Amount=50000.0))
    assert (edit.status, edit.needs_approval) == (PayloadEditStatus.PENDING, True)
    exc.run.refresh_from_db()
    assert exc.run.status == RunStatus.FAILED  # nothing replayed yet
    assert exc.run.input["Amount"] != 50000.0

    with pytest.raises(NotAllowed, match="a second person must approve"):
        payload_edits.approve(edit, pam)
    with pytest.raises(NotAllowed):
        payload_edits.approve(edit, user("finance"))  # not of the queue's team
    with pytest.raises(ActionRefused, match="waiting for approval"):
        payload_edits.propose(exc, pam, edited(exc, Project_Template__c="FIXED-3"))

    result = payload_edits.approve(edit, user("pmo"))
    edit.refresh_from_db()
    assert (edit.status, edit.decided_by) == (PayloadEditStatus.APPLIED, user("pmo"))
    assert exc.run.__class__.objects.get(pk=exc.run_id).input["Amount"] == 50000.0
    assert "Edit approved" in result.message
    assert AuditEvent.objects.filter(
        action="exception.payload_edit.approved", actor=user("pmo")
    ).exists()
    with pytest.raises(ActionRefused, match="applied already"):
        payload_edits.reject(edit, user("pmo"))


def test_reject_and_withdraw(demo):
    poll()
    exc = umbrella_exception()
    pam = member("pam", ("pmo", Role.RESOLVER), ("finance", Role.VIEWER))
    first = payload_edits.propose(exc, pam, edited(exc, Amount=1.0))
    assert payload_edits.reject(first, user("pmo")).message == "Edit rejected."
    second = payload_edits.propose(exc, pam, edited(exc, Amount=2.0))
    assert payload_edits.reject(second, pam).message == "Edit withdrawn."
    assert list(PayloadEdit.objects.values_list("status", flat=True)) == [
        PayloadEditStatus.REJECTED,
        PayloadEditStatus.REJECTED,
    ]
    exc.run.refresh_from_db()
    assert exc.run.status == RunStatus.FAILED


def test_an_edit_of_a_payload_that_changed_since_is_refused(demo):
    poll()
    exc = umbrella_exception()
    pam = member("pam", ("pmo", Role.RESOLVER), ("finance", Role.VIEWER))
    edit = payload_edits.propose(exc, pam, edited(exc, Amount=1.0))
    IntegrationException.objects.filter(pk=exc.pk).update(payload={**exc.payload, "Name": "X"})
    with pytest.raises(ActionRefused, match="payload changed since this edit"):
        payload_edits.approve(edit, user("pmo"))
    edit.refresh_from_db()
    assert edit.status == PayloadEditStatus.PENDING  # nothing half-done


def test_payload_page_reviews_the_diff_then_saves(demo):
    poll()
    exc = umbrella_exception()
    client = Client()
    client.force_login(user("pmo"))
    url = reverse("exceptions:payload", args=[exc.pk])
    page = client.get(url)
    assert page.status_code == 200
    shown = json.loads(page.context["form"].initial["payload"])
    assert shown["Amount"] == MASK
    text = json.dumps({**shown, "Project_Template__c": "FIXED-3"})
    review = client.post(url, {"payload": text, "step": "review"})
    body = review.content.decode()
    assert "Your changes" in body and "FIXED-3" in body and "LEGACY-X" in body
    assert not PayloadEdit.objects.exists()
    saved = client.post(url, {"payload": text, "step": "save"}, follow=True)
    assert b"Edit applied and replayed: the run succeeded" in saved.content
    assert b"Payload edits" in saved.content

    outsider = Client()
    outsider.force_login(user("finance"))
    assert b"Only members of PMO" in outsider.get(url).content


def test_payload_edits_api_with_approval(demo):
    poll()
    exc = umbrella_exception()
    pam = member("pam", ("pmo", Role.RESOLVER), ("finance", Role.VIEWER))
    author, approver = APIClient(), APIClient()
    author.force_authenticate(pam)
    approver.force_authenticate(user("pmo"))
    url = f"/api/v1/exceptions/{exc.pk}/payload-edits/"
    response = author.post(url, {"payload": edited(exc, Amount=46000.0)}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["needs_approval"]) == ("pending", True)
    assert body["changes"][0]["path"] == "Amount"
    # the approver has no finance rights: the amounts are masked for them
    listed = approver.get("/api/v1/payload-edits/", {"status": "pending"}).json()["results"]
    assert listed[0]["changes"][0]["after"] == MASK
    assert author.post(f"/api/v1/payload-edits/{body['id']}/approve/").status_code == 403
    response = approver.post(f"/api/v1/payload-edits/{body['id']}/approve/")
    assert response.status_code == 200
    assert response.json()["status"] == "applied"
    # the replay ran with the new amount, and failed again on the template: fix that too
    exc.refresh_from_db()
    assert (exc.status, exc.payload["Amount"]) == (ExceptionStatus.OPEN, 46000.0)
    fixed = approver.post(
        url, {"payload": edited(exc, Project_Template__c="FIXED-3")}, format="json"
    )
    assert fixed.status_code == 201, fixed.content
    assert fixed.json()["status"] == "applied"
    exc.refresh_from_db()
    assert exc.status == ExceptionStatus.RESOLVED
    assert exc.run.context["fetch_deal"]["opportunity"]["amount"] == "46000.00"
    assert [e["status"] for e in approver.get(url).json()] == ["applied", "applied"]
