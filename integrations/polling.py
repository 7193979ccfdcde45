"""Change polling with watermarks: find closed-won deals in a CRM and start their runs."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils.dateparse import parse_datetime

from .choices import Trigger
from .connectors.registry import build_client
from .connectors.salesforce.mapping import parse_salesforce_datetime
from .models import Connection, Watermark
from .services import RunRequest, start_run, start_runs
from .signals import poll_failed, poll_succeeded
from .telemetry import CallBuffer
from .workflows.failures import describe_failure
from .workflows.service_engagement import WORKFLOW as SERVICE_ENGAGEMENT

logger = logging.getLogger(__name__)

CLOSED_WON_STREAM = "opportunity.closed_won"
#: re-read this much before the watermark: deals sharing a timestamp are never missed, and
#: the runs they start are deduplicated by correlation id anyway
OVERLAP = timedelta(seconds=1)


@dataclass
class PollResult:
    seen: int
    started: int
    watermark: str


#: queries made in one poll (each returns up to PAGE_SIZE deals, read page by page)
MAX_PAGES = 20
PAGE_SIZE = 2000  # SOQL answers in pages of 200 through nextRecordsUrl


def poll_closed_won(connection: Connection) -> PollResult:
    """Read won deals changed since the watermark, page after page until the backlog is
    drained; start one run per new deal."""
    total = PollResult(seen=0, started=0, watermark="")
    for _ in range(MAX_PAGES):
        page = _poll_page(connection)
        total.seen += page.seen
        total.started += page.started
        total.watermark = page.watermark
        if page.seen < PAGE_SIZE:
            break
    return total


def _poll_page(connection: Connection) -> PollResult:
    mark, _ = Watermark.objects.get_or_create(connection=connection, stream=CLOSED_WON_STREAM)
    since = parse_datetime(mark.value) if mark.value else None
    buffer = CallBuffer()
    client = build_client(connection, on_call=buffer)
    try:
        records = client.closed_won_opportunities(
            since - OVERLAP if since else None, limit=PAGE_SIZE
        )
    except Exception as exc:
        failure = describe_failure(
            exc, entity_type="connection", entity_ref=connection.name, connection_id=connection.pk
        )
        logger.warning("poll %s failed: %s", connection.name, failure.message)
        with transaction.atomic():
            poll_failed.send(
                sender=Connection, connection=connection, stream=CLOSED_WON_STREAM, failure=failure
            )
        raise
    finally:
        client.close()
        buffer.flush()
    poll_succeeded.send(sender=Connection, connection=connection, stream=CLOSED_WON_STREAM)
    newest = since
    requests = []
    for record in records:
        requests.append(
            RunRequest(
                correlation_id=_correlation_id(record),
                payload=record if isinstance(record, dict) else {"record": str(record)[:10000]},
                title=str(record.get("Name", ""))[:255] if isinstance(record, dict) else "",
            )
        )
        modified = _modstamp(record)
        if modified is not None and (newest is None or modified > newest):
            newest = modified
    with transaction.atomic():  # the runs and the watermark that covers them, together
        started = len(
            start_runs(
                SERVICE_ENGAGEMENT, requests, trigger=Trigger.POLL, source_connection=connection
            )
        )
        if newest is not None:
            mark.value = newest.isoformat()
            mark.save(update_fields=["value", "updated_at"])
    if started:
        logger.info(
            "poll %s: %d deals seen, %d runs started", connection.name, len(records), started
        )
    return PollResult(seen=len(records), started=started, watermark=mark.value)


def _correlation_id(record: object) -> str:
    opp_id = record.get("Id") if isinstance(record, dict) else None
    if isinstance(opp_id, str) and 0 < len(opp_id) <= 40:
        return f"deal:{opp_id}"
    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    return f"deal:invalid-{digest[:16]}"


def _modstamp(record: object) -> datetime | None:
    if not isinstance(record, dict):
        return None
    try:
        return parse_salesforce_datetime(record.get("SystemModstamp"))
    except (TypeError, ValueError):
        return None


AMENDMENT_STREAM = "contract_amendment.approved"


def poll_amendments(connection: Connection) -> PollResult:
    """Approved contract amendments changed since the watermark: one update-billing-plan
    run per amendment."""
    from .workflows.billing_plan import WORKFLOW as UPDATE_BILLING_PLAN

    mark, _ = Watermark.objects.get_or_create(connection=connection, stream=AMENDMENT_STREAM)
    since = parse_datetime(mark.value) if mark.value else None
    buffer = CallBuffer()
    client = build_client(connection, on_call=buffer)
    try:
        records = client.approved_amendments_since(since - OVERLAP if since else None)
    finally:
        client.close()
        buffer.flush()
    newest, started = since, 0
    for record in records:
        amendment_id = str(record.get("Id", ""))[:40]
        if not amendment_id:
            continue
        _run, created = start_run(
            UPDATE_BILLING_PLAN,
            f"amendment:{amendment_id}",
            trigger=Trigger.POLL,
            source_connection=connection,
            payload={"amendment_id": amendment_id},
            business_key=f"deal:{record.get('Opportunity__c', '')}",
        )
        started += int(created)
        modified = _modstamp(record)
        if modified is not None and (newest is None or modified > newest):
            newest = modified
    if newest is not None:
        mark.value = newest.isoformat()
        mark.save(update_fields=["value", "updated_at"])
    return PollResult(seen=len(records), started=started, watermark=mark.value)
