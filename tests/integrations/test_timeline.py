"""Stuck transactions: a closed-won deal with no project past its deadline opens an exception
even though no call failed, and reaching the milestone resolves it."""

import datetime as dt

from django.utils import timezone
from kombu.exceptions import OperationalError

from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations import outbox, timeline
from integrations.models import BusinessTimestamp, Connection, Expectation, SyncRun
from integrations.polling import poll_closed_won
from integrations.tasks import run_workflows


def test_a_deal_without_a_project_past_its_deadline_is_stuck_until_it_gets_one(demo, monkeypatch):
    def broker_down(*args, **kwargs):
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(run_workflows, "apply_async", broker_down)
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    assert SyncRun.objects.filter(status="pending").count() == 4  # nothing ran: no failure
    assert Expectation.objects.filter(milestone="project_provisioned").count() == 4
    assert timeline.detect_stuck() == 0  # not due yet

    later = timezone.now() + dt.timedelta(hours=2)
    assert timeline.detect_stuck(now=later) == 4
    assert timeline.detect_stuck(now=later) == 0  # flagged once
    stuck = IntegrationException.objects.filter(code=ExceptionCode.TRANSACTION_STUCK)
    assert stuck.count() == 4
    assert {e.queue.team.kind for e in stuck} == {"pmo"}

    monkeypatch.undo()  # the broker is back: the outbox delivers, the deals provision
    outbox.sweep(older_than=dt.timedelta(0))
    northwind = SyncRun.objects.get(title__startswith="Northwind")
    assert northwind.status == "succeeded"
    resolved = stuck.get(entity_ref=northwind.business_key)
    assert resolved.status == ExceptionStatus.RESOLVED
    names = set(
        BusinessTimestamp.objects.filter(business_key=northwind.business_key).values_list(
            "name", flat=True
        )
    )
    assert {"quote", "closed_won", "customer_ready", "project_provisioned"} <= names
