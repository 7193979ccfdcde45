"""Customer notifications: every enabled endpoint subscribed to a topic gets the event as a
signed JSON POST (`X-Throughline-Signature: sha256=<hex HMAC(secret, timestamp.body)>`),
delivered once per event, retried with backoff, and recorded either way."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx
from celery import shared_task
from django.db import transaction

from .models import NotificationDelivery, NotificationEndpoint

logger = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@shared_task(
    name="integrations.notify_subscribers",
    bind=True,
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=300,
)
def notify_subscribers(self: Any, event: dict[str, Any]) -> int:
    """Deliver `event` to every endpoint subscribed to its topic; retry the failures."""
    topic = str(event.get("topic", ""))
    key = str(event.get("event_id") or event.get("story_id") or "")[:160]
    failed = 0
    for endpoint in NotificationEndpoint.objects.filter(enabled=True):
        if topic not in (endpoint.topics or []):
            continue
        with transaction.atomic():
            delivery, _ = NotificationDelivery.objects.get_or_create(
                endpoint=endpoint, topic=topic, key=f"{event.get('psa_connection', '')}:{key}"
            )
        if delivery.delivered:
            continue
        body = json.dumps(event, sort_keys=True).encode()
        stamp = str(int(time.time()))
        delivery.attempts += 1
        try:
            answer = httpx.post(
                endpoint.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Throughline-Topic": topic,
                    "X-Throughline-Timestamp": stamp,
                    "X-Throughline-Signature": sign(endpoint.secret, stamp, body),
                },
                timeout=10,
            )
            delivery.status_code = answer.status_code
            delivery.delivered = answer.is_success
            delivery.error = "" if answer.is_success else answer.text[:500]
        except httpx.HTTPError as exc:
            delivery.error = str(exc)[:500]
        delivery.save()
        failed += int(not delivery.delivered)
    if failed and self.request.retries < self.max_retries:
        raise self.retry()
    return failed
