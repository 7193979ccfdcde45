"""The transactional outbox: `enqueue` (one task) and `publish` (an event to every subscriber,
each an independent delivery) write OutboxMessage rows inside the caller's transaction; after
commit the messages are handed to Celery, and `sweep` re-sends whatever the broker did not
take. A broker outage therefore delays work but loses none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from .models import OutboxMessage

logger = logging.getLogger(__name__)

#: what a broker that is down raises on publish
BROKER_ERRORS = (OperationalError, ConnectionError, OSError)
#: a claimed message not marked sent after this long is sent again by the sweeper
CLAIM_LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class Subscriber:
    task: str
    queue: Callable[[dict[str, Any]], str] | None = None


_subscribers: dict[str, list[Subscriber]] = {}


def subscribe(
    topic: str, task: str, *, queue: Callable[[dict[str, Any]], str] | None = None
) -> None:
    """Deliver every event of `topic` to `task` (called once, at app start-up)."""
    subscribers = _subscribers.setdefault(topic, [])
    if all(s.task != task for s in subscribers):
        subscribers.append(Subscriber(task, queue))


def subscribers(topic: str) -> list[Subscriber]:
    return list(_subscribers.get(topic, []))


def enqueue(
    task: str,
    *args: Any,
    queue: str = "",
    key: str = "",
    topic: str = "",
    countdown: int = 0,
    **kwargs: Any,
) -> OutboxMessage:
    """Write one task message in the current transaction; it is sent after commit.
    `countdown` defers low-priority work (it runs that many seconds after hand-off)."""
    message = OutboxMessage.objects.create(
        task=task,
        args=list(args),
        kwargs=kwargs,
        queue=queue,
        key=key[:160],
        topic=topic,
        countdown=countdown,
    )
    transaction.on_commit(lambda: send([message.pk]))
    return message


def publish(topic: str, payload: dict[str, Any], *, key: str = "") -> list[OutboxMessage]:
    """Fan an event out: one message per subscriber, so each consumer succeeds or fails on
    its own (the ERP invoice, the analytics store, the customer notification)."""
    messages = OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                task=s.task,
                args=[{"topic": topic, **payload}],
                queue=s.queue(payload) if s.queue else "",
                key=key[:160],
                topic=topic,
            )
            for s in subscribers(topic)
        ]
    )
    if not messages:
        logger.warning("event %s (%s) has no subscriber", topic, key)
        return []
    # bulk_create sets primary keys on PostgreSQL and SQLite alike
    ids = [m.pk for m in messages]
    transaction.on_commit(lambda: send(ids))
    return messages


def send(ids: Iterable[int]) -> int:
    """Hand the given unsent messages to Celery; return how many went."""
    sent = 0
    for message in OutboxMessage.objects.filter(pk__in=list(ids), sent_at__isnull=True):
        if _send_one(message):
            sent += 1
        else:
            break  # the broker is down: the sweeper tries again later
    return sent


def sweep(*, older_than: timedelta = timedelta(seconds=5), limit: int = 1000) -> int:
    """Send messages the after-commit hand-off did not (broker outage, crashed process)."""
    now = timezone.now()
    pending = (
        OutboxMessage.objects.filter(sent_at__isnull=True, created_at__lt=now - older_than)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE))
        .order_by("created_at")[:limit]
    )
    sent = 0
    for message in pending:
        if not _send_one(message):
            break
        sent += 1
    if sent:
        logger.info("outbox sweep sent %d messages", sent)
    return sent


def backlog() -> int:
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()


def _send_one(message: OutboxMessage) -> bool:
    now = timezone.now()
    claimed = (
        OutboxMessage.objects.filter(pk=message.pk, sent_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE))
        .update(claimed_at=now, attempts=message.attempts + 1)
    )
    if not claimed:
        return True  # another process has it
    try:
        task = current_app.tasks[message.task]
        options: dict[str, Any] = {"queue": message.queue} if message.queue else {}
        if message.countdown:
            options["countdown"] = message.countdown
        task.apply_async(args=message.args, kwargs=message.kwargs, **options)
    except KeyError:
        logger.error("outbox: message %s names unknown task %s", message.pk, message.task)
        _failed(message, f"unknown task {message.task}")
        return True
    except BROKER_ERRORS as exc:  # the broker refused: keep the message for the sweeper
        logger.warning("outbox: broker refused %s (%s): %s", message.task, message.pk, exc)
        _failed(message, str(exc))
        return False
    except Exception:
        # Only with eagerly run tasks (tests, CELERY_TASK_ALWAYS_EAGER): the consumer itself
        # failed. The hand-off happened; the consumer records its own failure.
        logger.exception("outbox: consumer %s failed on message %s", message.task, message.pk)
    OutboxMessage.objects.filter(pk=message.pk).update(sent_at=timezone.now())
    return True


def _failed(message: OutboxMessage, error: str) -> None:
    OutboxMessage.objects.filter(pk=message.pk).update(claimed_at=None, last_error=error[:500])
