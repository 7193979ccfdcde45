"""SLA thresholds on KPIs and queues: a crossing opens one alert and tells the owning team
once by e-mail and webhook, evaluating again sends nothing more, and the value returning to
ok recovers the alert with one recovery notice. Thresholds are changed only by superusers and
admins of the owning team, and every change is audited with before and after."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from django.core import mail
from rest_framework.test import APIClient

from console.choices import Role, TeamKind
from console.models import AuditEvent
from dashboards import thresholds
from dashboards.models import KpiThreshold, MetricAlert
from dashboards.tasks import evaluate_thresholds
from exceptions import alerts
from exceptions.choices import ExceptionStatus
from tests.factories import make_exception, make_team, make_user

from .threshold_setup import (
    billing_runs,
    billing_threshold,
    queue_threshold,
)

pytestmark = pytest.mark.django_db

State = MetricAlert.AlertState


def test_a_breach_alert_fires_once_and_recovers(finance_queue, webhook):
    threshold = billing_threshold(finance_queue.team)
    billing_runs(with_exception=1, without=9)  # 10 %: a breach of this team's 5 %
    billing_runs(with_exception=0, without=5, entity="UK01")  # another entity: not in scope

    assert evaluate_thresholds() == 1
    alert = MetricAlert.objects.get()
    assert (alert.threshold, alert.kpi, alert.state, alert.worst) == (
        threshold,
        "billing_exception_rate",
        State.BREACH,
        State.BREACH,
    )
    assert alert.value == Decimal("10.00") and alert.scope == {"legal_entity": "DE01"}
    assert alert.notified_at is not None and alert.recovered_at is None
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["finance-team@example.com"]
    assert message.subject == (
        "[Throughline] Breach: Billing exception rate (legal_entity DE01) at 10%"
    )
    assert "warning at 2%, breach at 5%" in message.body
    assert len(webhook) == 1
    posted = json.loads(webhook[0].content)
    assert posted["event"] == "metric_alert.opened"
    assert posted["metric_alert"]["value"] == "10.00"
    assert posted["text"].startswith("Breach: Billing exception rate")
    assert [r["ok"] for r in alert.channel_results] == [True, True]

    # evaluated again, still breached: no second alert, no second notice
    assert evaluate_thresholds() == 0
    assert MetricAlert.objects.count() == 1
    assert len(mail.outbox) == 1 and len(webhook) == 1

    # the facts are fixed: 1 in 100 billing runs needs a person now, under the warning
    billing_runs(with_exception=0, without=90)
    assert evaluate_thresholds() == 1
    alert.refresh_from_db()
    assert alert.state == State.RECOVERED and alert.recovered_at is not None
    assert alert.worst == State.BREACH and alert.value == Decimal("1.00")
    assert len(mail.outbox) == 2 and len(webhook) == 2
    assert mail.outbox[1].subject.startswith("[Throughline] Recovered: Billing exception rate")
    assert json.loads(webhook[1].content)["event"] == "metric_alert.recovered"
    assert evaluate_thresholds() == 0  # recovered once
    assert len(mail.outbox) == 2
    assert AuditEvent.objects.filter(action="metric_alert.recovered").count() == 1


def test_a_queue_warning_raised_to_breach_then_recovered(finance_queue, webhook):
    queue_threshold(finance_queue, warning=2, breach=4)
    assert thresholds.evaluate() == []  # an empty queue is ok
    opened = [make_exception(finance_queue) for _ in range(2)]
    make_exception(finance_queue, status=ExceptionStatus.RESOLVED)  # not active

    [alert] = thresholds.evaluate()
    assert (alert.state, alert.value) == (State.WARNING, Decimal(2))
    assert mail.outbox[-1].subject == (
        "[Throughline] Warning: Queue Finance: active exceptions at 2"
    )
    opened += [make_exception(finance_queue) for _ in range(2)]
    [raised] = thresholds.evaluate()
    assert raised.pk == alert.pk and raised.state == raised.worst == State.BREACH
    assert thresholds.evaluate() == []
    assert len(mail.outbox) == 2 and len(webhook) == 2

    for exc in opened:
        exc.status = ExceptionStatus.RESOLVED
        exc.save()
    [recovered] = thresholds.evaluate()
    assert recovered.state == State.RECOVERED and recovered.value == 0
    assert len(mail.outbox) == 3 and MetricAlert.objects.count() == 1
    # history is kept: a new crossing opens a second alert
    make_exception(finance_queue)
    make_exception(finance_queue)
    thresholds.evaluate()
    assert MetricAlert.objects.count() == 2


def test_a_failing_webhook_is_kept_on_the_alert(finance_queue, monkeypatch):
    monkeypatch.setattr(
        alerts, "WEBHOOK_TRANSPORT", httpx.MockTransport(lambda r: httpx.Response(500))
    )
    queue_threshold(finance_queue, warning=1, breach=1)
    make_exception(finance_queue)
    [alert] = thresholds.evaluate()
    results = {r["channel"]: r for r in alert.channel_results}
    assert results["email"]["ok"] is True
    assert results["webhook"] == {
        **results["webhook"],
        "ok": False,
        "error": "The webhook answered HTTP 500.",
    }


# -- the API: who may change thresholds, and the audit trail -----------------------------------


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_only_admins_of_the_owning_team_change_thresholds_and_changes_are_audited(
    finance_queue,
):
    finance = finance_queue.team
    pmo = make_team(TeamKind.PMO)
    admin = make_user("fin-admin", team=finance, role=Role.ADMIN)
    resolver = make_user("fin-resolver", team=finance, role=Role.RESOLVER)
    pmo_admin = make_user("pmo-admin", team=pmo, role=Role.ADMIN)
    body = {
        "kpi": "billing_exception_rate",
        "legal_entity_code": "DE01",
        "warning": "3",
        "breach": "8",
        "team": finance.slug,
    }

    assert api(resolver).post("/api/v1/kpi-thresholds/", body, format="json").status_code == 403
    assert api(pmo_admin).post("/api/v1/kpi-thresholds/", body, format="json").status_code == 403
    created = api(admin).post("/api/v1/kpi-thresholds/", body, format="json")
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert created.json()["subject"] == "billing_exception_rate for legal entity DE01"
    event = AuditEvent.objects.get(action="kpi_threshold.created")
    assert event.actor == admin and event.data["after"]["breach"] == "8.0000"

    # readable by anyone signed in; changed by its team's admins only
    assert api(resolver).get(f"/api/v1/kpi-thresholds/{pk}/").status_code == 200
    url = f"/api/v1/kpi-thresholds/{pk}/"
    assert api(resolver).patch(url, {"breach": "9"}, format="json").status_code == 403
    assert api(pmo_admin).patch(url, {"breach": "9"}, format="json").status_code == 403
    # an admin may not hand it to a team they do not administer
    moved = api(admin).patch(url, {"team": pmo.slug}, format="json")
    assert moved.status_code == 403
    changed = api(admin).patch(url, {"breach": "9"}, format="json")
    assert changed.status_code == 200 and changed.json()["breach"] == "9.0000"
    event = AuditEvent.objects.get(action="kpi_threshold.changed")
    assert (event.data["before"]["breach"], event.data["after"]["breach"]) == ("8.0000", "9.0000")
    assert event.data["changes"] == ["breach"]

    superuser = make_user("root", is_superuser=True, is_staff=True)
    assert api(pmo_admin).delete(url).status_code == 403
    assert api(superuser).delete(url).status_code == 204
    assert AuditEvent.objects.get(action="kpi_threshold.deleted").data["before"]["kpi"] == (
        "billing_exception_rate"
    )


def test_thresholds_are_validated(finance_queue):
    admin = make_user("fin-admin", team=finance_queue.team, role=Role.ADMIN)
    client = api(admin)

    def post(**body):
        return client.post(
            "/api/v1/kpi-thresholds/",
            {"warning": "1", "breach": "2", "team": finance_queue.team.slug, **body},
            format="json",
        )

    assert "kpi" in post(kpi="no_such_kpi").json()
    assert "kpi" in post().json()  # watches nothing
    assert "kpi" in post(kpi="backlog", queue=finance_queue.slug).json()  # both
    # higher is better: the breach boundary is the lower one
    refused = post(kpi="provisioning_success_rate", warning="90", breach="95")
    assert "breach" in refused.json()
    assert "direction" in post(kpi="milestones_completed").json()  # it has no direction
    assert post(kpi="exceptions_opened", direction="lower").status_code == 201
    # a queue threshold defaults to the queue's team and its active count
    made = client.post(
        "/api/v1/kpi-thresholds/",
        {"queue": finance_queue.slug, "warning": "5", "breach": "10"},
        format="json",
    )
    assert made.status_code == 201, made.json()
    assert (made.json()["team"], made.json()["measure"]) == (finance_queue.team.slug, "active")
    # money KPIs are for Finance and Leadership teams only
    it_admin = make_user("it-admin", team=make_team(TeamKind.IT), role=Role.ADMIN)
    refused = api(it_admin).post(
        "/api/v1/kpi-thresholds/",
        {
            "kpi": "billed_amount",
            "warning": "1",
            "breach": "0",
            "direction": "higher",
            "team": "it",
        },
        format="json",
    )
    assert "team" in refused.json()


def test_metric_alerts_are_listed_and_filtered(finance_queue, webhook):
    queue_threshold(finance_queue, warning=1, breach=3)
    make_exception(finance_queue)
    thresholds.evaluate()
    viewer = make_user("viewer", team=finance_queue.team, role=Role.VIEWER)
    client = api(viewer)
    listed = client.get("/api/v1/metric-alerts/").json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert (row["queue"], row["state"], row["value"], row["masked"]) == (
        finance_queue.slug,
        "warning",
        "1.0000",
        False,
    )
    assert client.get("/api/v1/metric-alerts/?state=breach").json()["count"] == 0
    assert (
        client.get(f"/api/v1/metric-alerts/?queue={finance_queue.slug}&open=true").json()["count"]
        == 1
    )
    assert client.get("/api/v1/metric-alerts/?kpi=backlog").json()["count"] == 0
    assert client.post("/api/v1/metric-alerts/", {}).status_code == 405


def test_thresholds_are_edited_in_the_admin_with_the_same_checks_and_audit(client, finance_queue):
    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    form = {
        "kpi": "time_to_invoice",
        "measure": "value",
        "legal_entity_code": "",
        "region": "EMEA",
        "warning": "30",
        "breach": "20",
        "direction": "",
        "team": finance_queue.team.pk,
        "enabled": "on",
    }
    url = "/admin/dashboards/kpithreshold/add/"
    refused = client.post(url, form)
    assert refused.status_code == 200 and KpiThreshold.objects.count() == 0
    assert "breach boundary is at or above the warning" in refused.content.decode()
    assert client.post(url, {**form, "breach": "72"}).status_code == 302
    threshold = KpiThreshold.objects.get()
    assert threshold.subject == "time_to_invoice for region EMEA"
    event = AuditEvent.objects.get(action="kpi_threshold.created")
    assert event.actor == root and event.data["after"]["region"] == "EMEA"
    assert client.get("/admin/dashboards/metricalert/").status_code == 200
