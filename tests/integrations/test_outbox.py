"""The transactional outbox: work exists exactly when its transaction committed, a broker
outage delays it without losing it, and fan-out deliveries are independent."""

from __future__ import annotations

import pytest
from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError

from integrations import outbox
from integrations.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)
received: list[tuple[str, object]] = []


@shared_task(name="tests.outbox.record")
def record(value: object) -> None:
    received.append(("record", value))


@shared_task(name="tests.outbox.explode")
def explode(value: object) -> None:
    raise RuntimeError("this consumer is broken")


@pytest.fixture(autouse=True)
def _clear() -> None:
    received.clear()


def test_nothing_is_sent_for_a_rolled_back_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.enqueue("tests.outbox.record", 1)
        raise RuntimeError("the state change failed")
    assert OutboxMessage.objects.count() == 0
    assert received == []


def test_a_committed_message_is_sent_after_commit():
    with transaction.atomic():
        message = outbox.enqueue("tests.outbox.record", 2, key="deal:1")
        assert received == []  # not before the commit
    assert received == [("record", 2)]
    message.refresh_from_db()
    assert message.sent_at is not None


def test_a_broker_outage_delays_the_message_but_loses_nothing(monkeypatch):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(record, "apply_async", broker_down)
    with transaction.atomic():
        outbox.enqueue("tests.outbox.record", 3)
    message = OutboxMessage.objects.get()
    assert message.sent_at is None
    assert "Connection refused" in message.last_error
    assert outbox.backlog() == 1

    monkeypatch.undo()  # the broker is back
    assert outbox.sweep(older_than=__import__("datetime").timedelta(0)) == 1
    assert received == [("record", 3)]
    assert outbox.backlog() == 0


def test_fan_out_deliveries_are_independent(monkeypatch):
    monkeypatch.setattr(outbox, "_subscribers", {})
    outbox.subscribe("milestone.completed", "tests.outbox.explode")
    outbox.subscribe("milestone.completed", "tests.outbox.record")
    with transaction.atomic():
        outbox.publish("milestone.completed", {"milestone": 7}, key="deal:9")
    assert received == [("record", {"topic": "milestone.completed", "milestone": 7})]
    broken, fine = OutboxMessage.objects.order_by("task")
    assert fine.sent_at is not None
    assert broken.task == "tests.outbox.explode"
