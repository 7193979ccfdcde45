"""The reconciliation REST API: definitions (read, update tolerances and schedule), runs
(list, read, start), a run's differences (filtered, by cursor, as CSV), the actions on
differences (one or several by id) and the acceptances; amounts masked without finance
rights, writes refused to people who only read."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient

from console.models import AuditEvent
from exceptions.masking import MASK
from reconciliation.models import Acceptance, Difference

from . import scenario
from .scenario import differences, invoice_run, record

pytestmark = pytest.mark.django_db

API = "/api/v1/reconciliation"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_definitions_with_last_run_and_next_run(people, run) -> None:
    client = api(people.pmo)
    [item] = client.get(f"{API}/definitions/").json()
    assert item["name"] == run.definition.name and item["kind"] == "invoices"
    assert item["owner"] == "finance" and item["schedule"] == "30 3 * * *"
    assert item["next_run"].startswith("20") and item["periodic_task"]
    assert item["last_run"]["id"] == run.pk and item["last_run"]["match_rate"] == run.match_rate
    assert {r["amount"] for r in item["last_run"]["at_risk"]} == {MASK}
    mine = api(people.finance).get(f"{API}/definitions/{run.definition.pk}/").json()
    assert {r["legal_entity"]: r["amount"] for r in mine["last_run"]["at_risk"]} == {
        "UK01": "385.50",
        "US01": "500.00",
    }


def test_updating_a_definition(people, run) -> None:
    url = f"{API}/definitions/{run.definition.pk}/"
    assert api(people.pmo).patch(url, {"amount_tolerance_cents": 5}).status_code == 403
    client = api(people.finance)
    bad = client.patch(url, {"schedule": "30 25 * * *"}, format="json")
    assert bad.status_code == 400 and "schedule" in str(bad.json())
    assert client.patch(url, {"full_pull_every": 0}, format="json").status_code == 400
    ok = client.patch(
        url,
        {"amount_tolerance_cents": 5, "schedule": "0 6 * * *", "name": "renamed"},
        format="json",
    )
    assert ok.status_code == 200, ok.json()
    assert (ok.json()["amount_tolerance_cents"], ok.json()["name"]) == (5, run.definition.name)
    run.definition.refresh_from_db()
    assert run.definition.schedule == "0 6 * * *"
    assert run.definition.periodic_task.crontab.hour == "6"
    assert AuditEvent.objects.filter(action="reconciliation.definition_changed").count() == 1


def test_runs_list_read_and_start(people, run, django_capture_on_commit_callbacks) -> None:
    other = invoice_run(scenario.definition("customers"))
    client = api(people.pmo)
    listed = client.get(f"{API}/runs/", {"definition": run.definition.pk}).json()
    assert [r["id"] for r in listed["results"]] == [run.pk]
    assert client.get(f"{API}/runs/{other.pk}/").json()["definition"] == "customers"
    body = {"definition": run.definition.pk, "full": True}
    assert client.post(f"{API}/runs/", body, format="json").status_code == 403
    finance = api(people.finance)
    with django_capture_on_commit_callbacks(execute=False):
        started = finance.post(f"{API}/runs/", body, format="json")
    assert started.status_code == 202
    assert (started.json()["status"], started.json()["mode"]) == ("queued", "full")
    again = finance.post(f"{API}/runs/", body, format="json")
    assert again.status_code == 409 and "still queued" in again.json()["detail"]


def test_a_runs_differences_filtered_and_by_cursor(people, run) -> None:
    client = api(people.finance)
    url = f"{API}/runs/{run.pk}/differences/"
    page = client.get(url, {"limit": 2}).json()
    assert [d["key"] for d in page["results"]] == ["u1", "m2"]
    assert page["count"] == 6 and not page["count_capped"]
    second = client.get(page["next"]).json()
    assert [d["key"] for d in second["results"]] == ["m3", "m8"]
    mismatch = client.get(url, {"kind": "field_mismatch", "q": "m4"}).json()["results"]
    [m4] = mismatch
    assert (m4["source_amount"], m4["target_amount"], m4["amount_at_risk"]) == (
        "300.00",
        "299.50",
        "0.50",
    )
    assert m4["field_differences"] == [
        {"field": "amount (GBP)", "source": "300.00", "target": "299.50"}
    ]
    assert m4["source_date"] == "2026-11-02" and m4["state"] == "open"
    us = client.get(url, {"legal_entity": "us01"}).json()["results"]
    assert [d["key"] for d in us] == ["u1"]
    masked = api(people.pmo).get(url, {"kind": "field_mismatch", "q": "m4"}).json()["results"][0]
    assert masked["amount_at_risk"] == MASK and masked["finance_masked"]
    assert masked["field_differences"][0]["source"] == MASK
    assert client.get(url, {"cursor": "bogus"}).status_code == 404
    assert client.get(f"{API}/runs/999999/differences/").status_code == 404


def test_a_runs_differences_as_csv(people, run) -> None:
    url = f"{API}/runs/{run.pk}/differences/"
    response = api(people.finance).get(url, {"format": "csv", "kind": "missing_in_target"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["Key"], r["Amount at risk"]) for r in rows] == [("u1", "500.00"), ("m2", "250.00")]
    assert AuditEvent.objects.filter(action="reconciliation.exported").exists()
    masked = api(people.pmo).get(url, {"format": "csv", "kind": "missing_in_target"})
    rows = list(csv.DictReader(io.StringIO(b"".join(masked.streaming_content).decode())))
    assert {r["Amount at risk"] for r in rows} == {MASK}


def test_acting_on_one_difference(people, run) -> None:
    m4 = differences(run)["m4"]
    url = f"{API}/differences/{m4.pk}"
    assert api(people.pmo).post(f"{url}/accept/", {"reason": "x"}).status_code == 403
    client = api(people.it_admin)
    assert client.post(f"{url}/accept/", {"reason": ""}, format="json").status_code == 400
    done = client.post(f"{url}/accept/", {"reason": "rounding"}, format="json")
    assert done.status_code == 200
    assert done.json()["results"] == [
        {"difference": m4.pk, "key": "m4", "ok": True, "message": "Accepted.", "state": "accepted"}
    ]
    again = client.post(f"{url}/accept/", {"reason": "rounding"}, format="json")
    assert again.status_code == 409 and again.json()["detail"] == "Already accepted."
    retrieved = client.get(f"{url}/").json()
    assert retrieved["acceptance"]["reason"] == "rounding" and retrieved["amount_at_risk"] == MASK
    opened = client.post(f"{API}/differences/{differences(run)['m2'].pk}/open-exception/")
    assert opened.status_code == 200 and opened.json()["results"][0]["state"] == "exception_opened"


def test_acting_on_several_differences_by_id(people, run) -> None:
    diffs = differences(run)
    client = api(people.finance)
    ids = [diffs["m2"].pk, diffs["m3"].pk, diffs["u1"].pk]
    assert client.post(f"{API}/differences/accept/", {"ids": ids}, format="json").status_code == 400
    unknown = client.post(
        f"{API}/differences/accept/", {"ids": [*ids, 999999], "reason": "ok"}, format="json"
    )
    assert unknown.status_code == 400 and "999999" in str(unknown.json())
    Difference.objects.filter(pk=diffs["m3"].pk).update(state=Difference.State.ACCEPTED)
    answer = client.post(
        f"{API}/differences/accept/", {"ids": ids, "reason": "written off"}, format="json"
    ).json()
    assert (answer["done"], answer["refused"]) == (2, 1)
    assert Acceptance.objects.filter(reason="written off").count() == 2
    resync = client.post(
        f"{API}/differences/resync/", {"ids": [diffs["m8"].pk]}, format="json"
    ).json()
    assert resync["refused"] == 1 and "duplicate" in resync["results"][0]["message"]


def test_acceptances_are_listed(people, run) -> None:
    api(people.finance).post(
        f"{API}/differences/{differences(run)['m5'].pk}/accept/",
        {"reason": "paid early"},
        format="json",
    )
    [item] = (
        api(people.pmo)
        .get(f"{API}/acceptances/", {"definition": run.definition.pk})
        .json()["results"]
    )
    assert (item["key"], item["kind"], item["reason"], item["accepted_by"]) == (
        "m5",
        "field_mismatch",
        "paid early",
        "fiona",
    )


def test_reading_needs_a_sign_in(run) -> None:
    assert APIClient().get(f"{API}/definitions/").status_code in (401, 403)
    assert APIClient().get(f"{API}/runs/{run.pk}/differences/").status_code in (401, 403)


def test_a_run_of_sixty_differences_pages_by_fifty(people) -> None:
    run = scenario.finished_run(
        scenario.definition(), [record(f"k{i:03d}", f"{i}.00") for i in range(1, 61)], []
    )
    page = api(people.finance).get(f"{API}/runs/{run.pk}/differences/").json()
    assert len(page["results"]) == 50 and page["next"] and page["previous"] is None
