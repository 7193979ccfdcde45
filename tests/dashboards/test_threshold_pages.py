"""The console pages of thresholds and alerts: the list with bands, current value and status;
creating, editing and deleting through the same checks, permission rule and audit as the API;
the alert history with its filters, channel outcomes and CSV export; and the block on a KPI's
page with its "Edit thresholds" link for those allowed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import httpx
import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.choices import Role, TeamKind
from console.models import AuditEvent, User
from dashboards import kpis, rollups, thresholds
from dashboards.models import KpiThreshold, MetricAlert
from dashboards.observations import Dims, Observation
from exceptions import alerts
from exceptions.models import Queue
from integrations.models import LegalEntity
from tests.factories import make_exception, make_team, make_user

from .threshold_setup import (
    WEBHOOK,
    billing_runs,
    billing_threshold,
    money_threshold,
    queue_threshold,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(finance_queue: Queue) -> dict[str, User]:
    LegalEntity.objects.create(
        code="DE01", name="Demo GmbH", country="DE", currency="EUR", region="EMEA"
    )
    finance = finance_queue.team
    pmo = make_team(TeamKind.PMO)
    return {
        "admin": make_user("fin-admin", team=finance, role=Role.ADMIN),
        "resolver": make_user("fin-resolver", team=finance, role=Role.RESOLVER),
        "pmo_admin": make_user("pmo-admin", team=pmo, role=Role.ADMIN),
        "root": make_user("root", is_superuser=True, is_staff=True),
    }


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "kpi": "billing_exception_rate",
        "queue": "",
        "measure": "value",
        "legal_entity_code": "",
        "region": "",
        "connection": "",
        "warning": "3",
        "breach": "8",
        "direction": "",
        "team": "",
        "enabled": "on",
    }
    data.update(changes)
    return data


def row_of(html: str, threshold: KpiThreshold) -> str:
    found = re.search(rf'<tr data-threshold="{threshold.pk}".*?</tr>', html, re.S)
    assert found, f"no row for threshold {threshold.pk}"
    return found.group(0)


# -- the list ---------------------------------------------------------------------------------


def test_list_shows_scope_bands_current_value_and_status(finance_queue, people):
    on_kpi = billing_threshold(finance_queue.team)
    on_queue = queue_threshold(finance_queue, warning=2, breach=4)
    billing_runs(with_exception=1, without=9)  # DE01: 10 %
    make_exception(finance_queue)

    html = signed_in(people["resolver"]).get(reverse("dashboards:thresholds")).content.decode()
    kpi_row = row_of(html, on_kpi)
    assert "Billing exception rate" in kpi_row and "legal entity DE01" in kpi_row
    assert "5 % or more" in kpi_row  # the breach band in words
    assert "10%" in kpi_row and "Breach" in kpi_row
    queue_row = row_of(html, on_queue)
    assert "Queue Finance: active exceptions" in queue_row
    assert "1 exceptions" in queue_row and ">OK<" in queue_row
    # a resolver reads them but changes nothing
    assert "Edit" not in kpi_row and "New threshold" not in html

    admin_html = signed_in(people["admin"]).get(reverse("dashboards:thresholds")).content.decode()
    assert reverse("dashboards:threshold-edit", args=[on_kpi.pk]) in row_of(admin_html, on_kpi)
    assert "New threshold" in admin_html

    # the API's filters narrow the page
    narrowed = signed_in(people["resolver"]).get(
        reverse("dashboards:thresholds"), {"kpi": "billing_exception_rate"}
    )
    assert f'data-threshold="{on_kpi.pk}"' in narrowed.content.decode()
    assert f'data-threshold="{on_queue.pk}"' not in narrowed.content.decode()


def test_money_thresholds_are_masked_for_people_without_finance_rights(finance_queue, people):
    threshold = money_threshold(finance_queue.team)
    hidden = signed_in(people["pmo_admin"]).get(reverse("dashboards:thresholds")).content.decode()
    assert "500" not in row_of(hidden, threshold)
    assert "finance and leadership only" in row_of(hidden, threshold)
    shown = signed_in(people["resolver"]).get(reverse("dashboards:thresholds")).content.decode()
    assert "500 money or less" in row_of(shown, threshold)


# -- create, edit, delete ---------------------------------------------------------------------


def test_a_team_admin_creates_a_threshold_audited_like_the_api(finance_queue, people):
    client = signed_in(people["admin"])
    form = client.get(reverse("dashboards:threshold-new"), {"kpi": "billing_exception_rate"})
    assert form.status_code == 200
    page = form.content.decode()
    # preset from the KPI: its default bands and the admin's team that owns it
    assert re.search(r'<option value="billing_exception_rate" selected>', page)
    assert 'name="warning" value="5"' in page and 'name="breach" value="10"' in page
    assert re.search(rf'<option value="{finance_queue.team.pk}" selected>', page)

    made = client.post(
        reverse("dashboards:threshold-new"),
        form_data(legal_entity_code="DE01", team=finance_queue.team.pk),
    )
    threshold = KpiThreshold.objects.get()
    assert made.status_code == 302
    assert made["Location"] == reverse("dashboards:thresholds") + "?kpi=billing_exception_rate"
    assert threshold.subject == "billing_exception_rate for legal entity DE01"
    event = AuditEvent.objects.get(action="kpi_threshold.created")
    assert event.actor == people["admin"] and event.data["after"]["breach"] == "8.0000"


def test_the_form_refuses_what_the_api_refuses_with_the_same_words(finance_queue, people):
    client = signed_in(people["admin"])
    team = finance_queue.team.pk
    url = reverse("dashboards:threshold-new")

    def errors(**changes: object) -> str:
        response = client.post(url, form_data(team=team, **changes))
        assert response.status_code == 200
        return response.content.decode()

    # where lower is better the breach boundary is at or above the warning
    wrong_order = errors(warning="8", breach="3")
    api = APIClient()
    api.force_authenticate(people["admin"])
    refused = api.post(
        "/api/v1/kpi-thresholds/",
        {"kpi": "billing_exception_rate", "warning": "8", "breach": "3", "team": "finance"},
        format="json",
    )
    [message] = refused.json()["breach"]
    assert message in wrong_order
    assert "Watch either a KPI or a queue" in errors(queue=finance_queue.pk)
    assert "Watch either a KPI or a queue" in errors(kpi="")
    assert "say whether lower or higher is better" in errors(kpi="milestones_completed")
    assert "A queue threshold watches its active or breached count." in errors(
        kpi="", queue=finance_queue.pk
    )
    assert KpiThreshold.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="kpi_threshold").exists()


def test_only_admins_of_the_owning_team_change_it(finance_queue, people):
    threshold = billing_threshold(finance_queue.team, entity="")
    edit = reverse("dashboards:threshold-edit", args=[threshold.pk])
    delete = reverse("dashboards:threshold-delete", args=[threshold.pk])
    resolver, pmo_admin = signed_in(people["resolver"]), signed_in(people["pmo_admin"])
    assert resolver.get(reverse("dashboards:threshold-new")).status_code == 403
    assert resolver.get(edit).status_code == 403
    assert pmo_admin.get(edit).status_code == 403
    assert pmo_admin.post(edit, form_data(breach="9", team=threshold.team_id)).status_code == 403
    assert pmo_admin.post(delete).status_code == 403
    # a PMO admin may create for PMO only: the Finance team is not among the choices
    refused = pmo_admin.post(reverse("dashboards:threshold-new"), form_data(team=threshold.team_id))
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    threshold.refresh_from_db()
    assert threshold.breach == Decimal(5) and KpiThreshold.objects.count() == 1

    # the finance admin may not hand it to a team they do not administer
    admin = signed_in(people["admin"])
    pmo = make_team(TeamKind.PMO)
    assert "Select a valid choice" in admin.post(edit, form_data(team=pmo.pk)).content.decode()
    threshold.refresh_from_db()
    assert threshold.team == finance_queue.team


def test_editing_is_audited_with_before_and_after_and_delete_keeps_alerts(
    finance_queue, people, webhook
):
    threshold = billing_threshold(finance_queue.team)
    billing_runs(with_exception=1, without=9)
    [alert] = thresholds.evaluate()
    client = signed_in(people["admin"])
    edit = reverse("dashboards:threshold-edit", args=[threshold.pk])
    page = client.get(edit).content.decode()
    assert 'name="breach" value="5.0000"' in page

    saved = client.post(
        edit, form_data(legal_entity_code="DE01", warning="2", breach="20", team=threshold.team_id)
    )
    assert saved.status_code == 302
    threshold.refresh_from_db()
    assert threshold.breach == Decimal(20)
    event = AuditEvent.objects.get(action="kpi_threshold.changed")
    assert event.actor == people["admin"] and event.data["changes"] == ["breach"]
    assert (event.data["before"]["breach"], event.data["after"]["breach"]) == ("5.0000", "20.0000")
    listed = client.get(saved["Location"]).content.decode()
    assert "20 % or more" in row_of(listed, threshold)

    delete = reverse("dashboards:threshold-delete", args=[threshold.pk])
    assert "Delete the threshold on" in client.get(delete).content.decode()
    assert client.post(delete).status_code == 302
    assert not KpiThreshold.objects.exists()
    assert AuditEvent.objects.get(action="kpi_threshold.deleted").actor == people["admin"]
    alert.refresh_from_db()  # the history outlives the threshold
    assert alert.threshold is None and alert.kpi == "billing_exception_rate"


def test_a_superuser_manages_any_team(finance_queue, people):
    client = signed_in(people["root"])
    made = client.post(
        reverse("dashboards:threshold-new"),
        form_data(kpi="", queue=finance_queue.pk, measure="breached", team=finance_queue.team.pk),
    )
    assert made.status_code == 302, made.content.decode()
    threshold = KpiThreshold.objects.get()
    assert threshold.subject == "queue Finance: exceptions past their sla"
    assert made["Location"] == reverse("dashboards:thresholds") + "?queue=finance"


# -- the alert history ------------------------------------------------------------------------


@pytest.fixture
def alerts_raised(finance_queue, webhook, monkeypatch) -> list[MetricAlert]:
    """A breach on a KPI (recovered) and a warning on a queue whose webhook failed."""
    on_kpi = billing_threshold(finance_queue.team)
    billing_runs(with_exception=1, without=9)
    thresholds.evaluate()
    billing_runs(with_exception=0, without=90)
    thresholds.evaluate()  # recovered
    on_kpi.enabled = False
    on_kpi.save()
    monkeypatch.setattr(
        alerts, "WEBHOOK_TRANSPORT", httpx.MockTransport(lambda r: httpx.Response(500))
    )
    queue_threshold(finance_queue, warning=1, breach=3)
    make_exception(finance_queue)
    thresholds.evaluate()
    return list(MetricAlert.objects.order_by("pk"))


def test_alert_history_filters_and_shows_each_channel_outcome(alerts_raised, people):
    kpi_alert, queue_alert = alerts_raised
    client = signed_in(people["resolver"])
    html = client.get(reverse("dashboards:alerts")).content.decode()
    assert f'data-alert="{kpi_alert.pk}"' in html and f'data-alert="{queue_alert.pk}"' in html
    kpi_row = re.search(rf'<tr data-alert="{kpi_alert.pk}".*?</tr>', html, re.S).group(0)
    assert "Recovered" in kpi_row and "(worst: breach)" in kpi_row
    assert "opened: email to finance-team@example.com" in kpi_row
    assert "recovered: webhook to " + WEBHOOK in kpi_row
    queue_row = re.search(rf'<tr data-alert="{queue_alert.pk}".*?</tr>', html, re.S).group(0)
    assert "failed: The webhook answered HTTP 500." in queue_row

    def shown(**params: str) -> set[int]:
        page = client.get(reverse("dashboards:alerts"), params).content.decode()
        return {int(pk) for pk in re.findall(r'data-alert="(\d+)"', page)}

    assert shown(state="recovered") == {kpi_alert.pk}
    assert shown(kpi="billing_exception_rate") == {kpi_alert.pk}
    assert shown(queue="finance", open="true") == {queue_alert.pk}
    assert shown(team="finance") == {kpi_alert.pk, queue_alert.pk}
    assert shown(team="pmo") == set()
    bad = client.get(reverse("dashboards:alerts"), {"state": "nonsense"}).content.decode()
    assert 'role="alert"' in bad


def test_alert_history_exports_the_filtered_rows_as_csv(alerts_raised, people):
    kpi_alert, _ = alerts_raised
    response = signed_in(people["resolver"]).get(
        reverse("dashboards:alerts-export"), {"kpi": "billing_exception_rate"}
    )
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["Alert"]) for r in rows] == [kpi_alert.pk]
    [row] = rows
    assert (row["State"], row["Worst"], row["Scope"]) == (
        "Recovered",
        "Breach",
        "legal entity DE01",
    )
    assert (row["Value when opened"], row["Value"], row["Breach"]) == ("10", "1", "5")
    assert "opened email to finance-team@example.com: sent" in row["Notices"]
    assert row["Recovered (UTC)"]


def test_money_alerts_are_masked_in_the_history_and_its_csv(finance_queue, people, webhook):
    money_threshold(finance_queue.team)
    at = timezone.now() - dt.timedelta(hours=1)
    rollups.record_many([Observation("billed_amount", at, 12_345, Dims(currency="EUR"))])
    [alert] = thresholds.evaluate()
    assert alert.value == Decimal("123.45")
    assert len(mail.outbox) == 1

    hidden = signed_in(people["pmo_admin"])
    assert "123.45" not in hidden.get(reverse("dashboards:alerts")).content.decode()
    export = hidden.get(reverse("dashboards:alerts-export"))
    [row] = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert (row["Value"], row["Warning"], row["Breach"]) == ("", "", "")
    shown = signed_in(people["resolver"]).get(reverse("dashboards:alerts")).content.decode()
    assert "123.45" in shown


# -- the KPI page -----------------------------------------------------------------------------


def test_kpi_page_shows_its_thresholds_recent_alerts_and_edit_link_for_admins(
    finance_queue, people, webhook
):
    threshold = billing_threshold(finance_queue.team)
    billing_runs(with_exception=1, without=9)
    [alert] = thresholds.evaluate()
    url = reverse("dashboards:kpi", args=["billing_exception_rate"])

    html = signed_in(people["admin"]).get(url).content.decode()
    section = html[html.index('id="team-thresholds-title"') :]
    assert f'data-threshold="{threshold.pk}"' in section and "legal entity DE01" in section
    assert f'data-alert="{alert.pk}"' in section
    assert reverse("dashboards:thresholds") + "?kpi=billing_exception_rate" in section
    assert "Edit thresholds" in section
    assert reverse("dashboards:threshold-edit", args=[threshold.pk]) in section

    read_only = signed_in(people["resolver"]).get(url).content.decode()
    assert "Edit thresholds" not in read_only
    assert f'data-alert="{alert.pk}"' in read_only
    assert reverse("dashboards:alerts") + "?kpi=billing_exception_rate" in read_only
    # a KPI that is not computed yet has no thresholds block (none can be set on it)
    for kpi in [kpi for kpi in kpis.KPIS if not kpi.live][:1]:
        waiting = signed_in(people["admin"]).get(reverse("dashboards:kpi", args=[kpi.key]))
        assert 'id="team-thresholds-title"' not in waiting.content.decode()


def test_edit_thresholds_of_a_money_kpi_is_offered_to_finance_and_leadership_admins(people):
    url = reverse("dashboards:kpi", args=["billed_amount"])
    assert "Edit thresholds" in signed_in(people["admin"]).get(url).content.decode()
    # a PMO admin may set thresholds on PMO's KPIs, not on money
    assert "Edit thresholds" not in signed_in(people["pmo_admin"]).get(url).content.decode()
    pmo_kpi = reverse("dashboards:kpi", args=["quote_to_project"])
    assert "Edit thresholds" in signed_in(people["pmo_admin"]).get(pmo_kpi).content.decode()
