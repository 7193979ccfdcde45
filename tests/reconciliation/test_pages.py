"""The reconciliation pages: definitions with their last and next run, Run now, the settings
form, a run's progress (htmx polling) and summary, its differences filtered, paged and
exported, the actions on the selected ones, one difference, and a definition's history.
Amounts are masked for people without finance rights; only finance resolvers, IT admins and
superusers act."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from console.models import AuditEvent
from exceptions.masking import MASK
from integrations.choices import Vendor
from reconciliation.catalogue import COMPARISONS
from reconciliation.demo import seed_definitions
from reconciliation.models import Acceptance, Definition, Difference, Run
from tests.factories import make_connection

from . import scenario
from .scenario import differences, invoice_run, record

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(client: Client, name: str, *args: object, **query: object) -> str:
    response = client.get(reverse(f"reconciliation:{name}", args=args), query)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def keys_listed(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-difference="')[1:]]


def test_definitions_list_their_last_run_and_next_run(people, run) -> None:
    html = page(client_for(people.finance), "definitions")
    assert run.definition.name in html
    assert "Invoices: PSA billing milestones vs ERP invoices" in html
    assert f"{run.match_rate:.2f} %" in html
    assert "850.00 GBP" not in html  # summed per currency, not across
    # per currency, never added across: m2 250 + m3 75 + m4 0.50 + m8 60; u1 500
    assert "385.50 GBP<br>500.00 USD" in html
    assert 'value="full"' in html and "Run now" in html
    assert reverse("reconciliation:definition-edit", args=[run.definition.pk]) in html
    # PMO reads: no buttons, no amounts
    html = page(client_for(people.pmo), "definitions")
    assert run.definition.name in html and "Run now" not in html
    assert "385.50" not in html and "finance only" in html


def test_run_now_queues_a_run_for_those_who_act(people, django_capture_on_commit_callbacks):
    definition = scenario.definition()
    url = reverse("reconciliation:run-now", args=[definition.pk])
    assert client_for(people.pmo).post(url, {"mode": "full"}).status_code == 403
    assert not Run.objects.exists()
    finance = client_for(people.finance)
    with django_capture_on_commit_callbacks(execute=False):
        response = finance.post(url, {"mode": "full"})
    run = Run.objects.get()
    assert response.url == reverse("reconciliation:run-detail", args=[run.pk])
    assert (run.mode, run.requested_by) == ("full", people.finance)
    response = finance.post(url, {"mode": "incremental"}, follow=True)
    assert f"Run #{run.pk} of {definition.name} is still queued" in response.content.decode()
    assert Run.objects.count() == 1


def test_the_settings_form_validates_the_schedule_and_saves(people) -> None:
    definition = scenario.definition()
    url = reverse("reconciliation:definition-edit", args=[definition.pk])
    assert client_for(people.pmo).get(url).status_code == 403
    finance = client_for(people.finance)
    form = {
        "amount_tolerance_cents": "100",
        "date_tolerance_days": "2",
        "compare_status": "on",
        "settle_minutes": "10",
        "schedule": "61 3 * * *",
        "full_pull_every": "7",
        "enabled": "on",
    }
    response = finance.post(url, form)
    assert response.status_code == 200
    assert "Not a valid crontab schedule" in response.content.decode()
    definition.refresh_from_db()
    assert definition.amount_tolerance_cents == 0
    response = finance.post(url, {**form, "schedule": "0 5 * * *"})
    assert response.url == reverse("reconciliation:history", args=[definition.pk])
    definition.refresh_from_db()
    assert (definition.amount_tolerance_cents, definition.schedule) == (100, "0 5 * * *")
    assert definition.periodic_task.crontab.hour == "5"
    assert AuditEvent.objects.filter(
        action="reconciliation.definition_changed", actor=people.finance
    ).exists()


def test_a_working_run_shows_its_progress_and_htmx_polls_until_done(people) -> None:
    definition = scenario.definition()
    run = Run.objects.create(
        definition=definition,
        status=Run.Status.PULLING,
        phase="pulling target (NetSuite): 1,200 records",
        source_pulled=3400,
        target_pulled=1200,
    )
    client = client_for(people.pmo)
    html = page(client, "run-detail", run.pk)
    progress_url = reverse("reconciliation:run-progress", args=[run.pk])
    assert f'hx-get="{progress_url}"' in html and 'hx-trigger="every 2s"' in html
    assert "vendor/htmx/htmx.min.js" in html
    assert "pulling target (NetSuite): 1,200 records" in html
    assert '<progress max="4" value="2"' in html
    assert "Differences" not in html  # no summary before the comparison
    fragment = client.get(progress_url, HTTP_HX_REQUEST="true")
    assert "HX-Refresh" not in fragment
    assert "data-source-pulled>3400<" in fragment.content.decode()
    # done: the fragment stops polling and the page reloads to show the summary
    Run.objects.filter(pk=run.pk).update(status=Run.Status.DONE, phase="done")
    fragment = client.get(progress_url, HTTP_HX_REQUEST="true")
    assert fragment["HX-Refresh"] == "true"
    assert "hx-trigger" not in fragment.content.decode()
    assert "hx-get" not in page(client, "run-detail", run.pk)


def test_a_failed_run_says_why(people) -> None:
    run = Run.objects.create(
        definition=scenario.definition(), status=Run.Status.FAILED, error="AuthError: expired"
    )
    html = page(client_for(people.finance), "run-detail", run.pk)
    assert "The run failed" in html and "AuthError: expired" in html and "hx-get" not in html


def test_the_summary_counts_each_class_and_the_money_at_risk(people, run) -> None:
    html = page(client_for(people.finance), "run-detail", run.pk)
    for kind, count in [
        ("matched", 1),
        ("missing_in_target", 2),
        ("missing_in_source", 1),
        ("field_mismatch", 2),
        ("duplicate", 1),
    ]:
        assert f'data-count="{kind}">{count}<' in html, kind
    assert f"{run.match_rate:.2f} %" in html
    chart = json.loads(html.split('id="recon-risk-data" type="application/json">')[1].split("<")[0])
    assert chart == {"labels": ["US01 (USD)", "UK01 (GBP)"], "values": ["500.00", "385.50"]}
    assert "vendor/chartjs/chart.umd.min.js" in html
    # the field-level difference of each row, most money at risk first
    assert keys_listed(html) == ["u1", "m2", "m3", "m8", "m4", "m5"]
    assert "<strong>amount (GBP)</strong>: 300.00 → 299.50" in html
    assert "<strong>status</strong>: billed → paid" in html
    assert "<strong>records</strong>: — → INV-8a, INV-8b" in html  # the duplicate
    assert "<strong>amount of all copies (GBP)</strong>: — → 120.00" in html


def test_amounts_are_masked_without_finance_rights(people, run) -> None:
    html = page(client_for(people.it_admin), "run-detail", run.pk)
    assert "recon-risk-data" not in html and "chart.umd.min.js" not in html
    assert "299.50" not in html and "385.50" not in html
    assert f"<strong>amount (GBP)</strong>: {MASK} → {MASK}" in html
    assert "<strong>status</strong>: billed → paid" in html
    assert 'name="ids"' in html  # IT admins act all the same
    html = page(client_for(people.pmo), "run-detail", run.pk)
    assert 'name="ids"' not in html and "Accept with this reason" not in html


def test_differences_filter_by_class_state_legal_entity_and_key(people, run) -> None:
    client = client_for(people.pmo)
    assert keys_listed(page(client, "run-detail", run.pk, kind="field_mismatch")) == ["m4", "m5"]
    assert keys_listed(page(client, "run-detail", run.pk, legal_entity="US01")) == ["u1"]
    assert keys_listed(page(client, "run-detail", run.pk, q="INV-8")) == ["m8"]
    assert keys_listed(page(client, "run-detail", run.pk, q="m5")) == ["m5"]
    Difference.objects.filter(run=run, key="m3").update(state=Difference.State.ACCEPTED)
    assert keys_listed(page(client, "run-detail", run.pk, state="accepted")) == ["m3"]
    both = page(client, "run-detail", run.pk, kind=["missing_in_target", "duplicate"])
    assert keys_listed(both) == ["u1", "m2", "m8"]


def test_differences_are_paged_by_cursor(people) -> None:
    source = [record(f"k{i:03d}", f"{i}.00") for i in range(1, 61)]
    run = scenario.finished_run(scenario.definition(), source, [])
    client = client_for(people.finance)
    first = page(client, "run-detail", run.pk)
    assert keys_listed(first)[:2] == ["k060", "k059"] and len(keys_listed(first)) == 50
    assert "60 differences match" in first
    cursor = first.split('rel="next"')[0].rsplit("cursor=", 1)[1].split('"')[0]
    second = page(client, "run-detail", run.pk, cursor=cursor)
    assert keys_listed(second) == [f"k{i:03d}" for i in range(10, 0, -1)]
    assert 'rel="prev"' in second and 'rel="next"' not in second
    broken = client.get(reverse("reconciliation:run-detail", args=[run.pk]), {"cursor": "nonsense"})
    assert "not valid any more" in broken.content.decode()


def test_csv_export_streams_the_filtered_differences(people, run) -> None:
    url = reverse("reconciliation:run-export", args=[run.pk])
    response = client_for(people.finance).get(url, {"kind": "field_mismatch"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert f"run{run.pk}" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["Key"] for r in rows] == ["m4", "m5"]
    assert rows[0]["Amount at risk"] == "0.50" and rows[0]["Source amount"] == "300.00"
    assert rows[0]["What differs"] == "amount (GBP): 300.00 → 299.50"
    link = reverse("reconciliation:difference", args=[rows[0]["Difference"]])
    assert rows[0]["Link"].endswith(link)
    event = AuditEvent.objects.get(action="reconciliation.exported")
    assert event.data["query"] == "kind=field_mismatch"
    masked = client_for(people.pmo).get(url, {"legal_entity": "us01"})
    rows = list(csv.DictReader(io.StringIO(b"".join(masked.streaming_content).decode())))
    assert [r["Key"] for r in rows] == ["u1"] and rows[0]["Amount at risk"] == MASK


def test_finance_acts_on_the_selected_differences(people, run) -> None:
    diffs = differences(run)
    url = reverse("reconciliation:run-actions", args=[run.pk])
    back = reverse("reconciliation:run-detail", args=[run.pk]) + "?kind=field_mismatch"
    finance = client_for(people.finance)
    ids = [diffs["m4"].pk, diffs["m5"].pk]
    response = finance.post(
        url, {"action": "accept", "ids": ids, "reason": "", "next": back}, follow=True
    )
    assert "Give the reason for accepting" in response.content.decode()
    assert not Acceptance.objects.exists()
    response = finance.post(
        url, {"action": "accept", "ids": ids, "reason": "agreed with the customer", "next": back}
    )
    assert response.url == back
    assert {d.state for k, d in differences(run).items() if k in ("m4", "m5")} == {"accepted"}
    response = finance.post(url, {"action": "open_exception", "ids": [diffs["m2"].pk]}, follow=True)
    m2 = differences(run)["m2"]
    assert m2.state == "exception_opened"
    assert f"Exception #{m2.exception_id} opened in Finance" in response.content.decode()
    nothing = finance.post(url, {"action": "resync", "reason": "x"}, follow=True)
    assert "Select at least one difference." in nothing.content.decode()
    # a `next` elsewhere is not followed
    away = finance.post(url, {"action": "resync", "next": "https://evil.example/"})
    assert away.url == reverse("reconciliation:run-detail", args=[run.pk])
    # differences of another run are not this run's to act on
    other = invoice_run(run.definition)
    response = finance.post(
        url, {"action": "open_exception", "ids": [differences(other)["m3"].pk]}, follow=True
    )
    assert "None of the selected differences belong to this run" in response.content.decode()


def test_people_who_only_read_are_refused_cleanly(people, run) -> None:
    url = reverse("reconciliation:run-actions", args=[run.pk])
    response = client_for(people.pmo).post(
        url, {"action": "accept", "ids": [differences(run)["m4"].pk], "reason": "x"}, follow=True
    )
    assert response.status_code == 200
    assert "Only finance resolvers, IT admins and superusers act" in response.content.decode()
    assert not Acceptance.objects.exists()


def test_one_difference_in_full(people, run) -> None:
    diff = differences(run)["m4"]
    html = page(client_for(people.finance), "difference", diff.pk)
    assert "Field mismatch" in html and "INV-4" in html and "299.50" in html
    assert "Accept with this reason" in html and f'name="ids" value="{diff.pk}"' in html
    html = page(client_for(people.pmo), "difference", diff.pk)
    assert "299.50" not in html and MASK in html and "Accept with this reason" not in html


def test_the_history_charts_the_match_rate_of_each_run(people, run) -> None:
    later = scenario.finished_run(run.definition, scenario.SOURCE, scenario.SOURCE)
    failed = Run.objects.create(definition=run.definition, status=Run.Status.FAILED)
    html = page(client_for(people.finance), "history", run.definition.pk)
    chart = json.loads(html.split('id="recon-rate-data" type="application/json">')[1].split("<")[0])
    assert chart["runs"] == [run.pk, later.pk]
    assert chart["values"] == [run.match_rate, 100.0]
    for r in (run, later, failed):
        assert reverse("reconciliation:run-detail", args=[r.pk]) in html
    assert "chart.umd.min.js" in html


def test_the_demo_has_one_definition_per_comparison(people) -> None:
    for vendor, name in [
        (Vendor.SALESFORCE, "Salesforce (demo)"),
        (Vendor.NETSUITE, "NetSuite (demo)"),
        (Vendor.KANTATA, "Kantata (demo)"),
    ]:
        make_connection(vendor, name=name)
    assert len(seed_definitions()) == len(COMPARISONS)
    pairs = {d.kind: (d.source.name, d.target.name) for d in Definition.objects.all()}
    assert pairs == {
        "customers": ("Salesforce (demo)", "NetSuite (demo)"),
        "contracts": ("Salesforce (demo)", "NetSuite (demo)"),
        "invoices": ("Kantata (demo)", "NetSuite (demo)"),
        "time_entries": ("Kantata (demo)", "NetSuite (demo)"),
        "projects": ("Kantata (demo)", "NetSuite (demo)"),
    }
    Definition.objects.filter(kind="invoices").update(schedule="0 1 * * *")
    assert seed_definitions() == []  # once: people's changes are kept
    assert Definition.objects.get(kind="invoices").schedule == "0 1 * * *"
    html = page(client_for(people.finance), "definitions")
    assert all(d.name in html for d in Definition.objects.all())
