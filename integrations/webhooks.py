"""Webhook receivers: vendors push events here (Salesforce's closed-won deals today).

A webhook is untrusted input: the signature is checked against the connection's
`webhook_secret` before anything is read, the body is parsed strictly, every delivery is
kept (integrations.inbound), and a repeat delivery starts nothing new. Polling stays the
backstop for events that never arrive.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .choices import SystemKind, Vendor
from .connectors.salesforce import webhooks as salesforce_webhooks
from .inbound import EventRejected, accept
from .models import Connection

logger = logging.getLogger(__name__)

#: Salesforce event -> Throughline inbound event type
SALESFORCE_EVENTS = {
    "opportunity.closed_won": ("opportunity.closed_won", "opportunity_id"),
    "contract_amendment.approved": ("contract_amendment.approved", "amendment_id"),
}


@csrf_exempt
@require_POST
def salesforce(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = get_object_or_404(
        Connection, pk=connection_id, vendor=Vendor.SALESFORCE, system=SystemKind.CRM
    )
    secret = connection.secrets.get("webhook_secret", "")
    body = request.body
    if not salesforce_webhooks.verify_signature(
        secret,
        request.headers.get(salesforce_webhooks.TIMESTAMP_HEADER, ""),
        body,
        request.headers.get(salesforce_webhooks.SIGNATURE_HEADER, ""),
    ):
        logger.warning("salesforce webhook for %s: bad or missing signature", connection.name)
        return JsonResponse({"detail": "invalid signature"}, status=401)
    try:
        event = salesforce_webhooks.parse_event(body)
    except ValueError as exc:
        return JsonResponse({"detail": str(exc)}, status=400)
    mapped = SALESFORCE_EVENTS.get(event["event"])
    if mapped is None:  # a known Salesforce event Throughline does not act on yet
        return JsonResponse({"detail": "ignored", "event": event["event"]}, status=200)
    kind, id_field = mapped
    try:
        inbound, created = accept(
            kind,
            {id_field: event["id"], "crm_connection": connection.pk},
            source=f"webhook:{connection.name}",
            idempotency_key=(
                f"salesforce:{connection.pk}:{event['event']}:{event['id']}:"
                f"{event['systemModstamp']}"
            ),
        )
    except EventRejected as exc:
        return JsonResponse({"detail": str(exc), "problems": exc.problems}, status=400)
    return JsonResponse(
        {"event": inbound.pk, "run": inbound.run_id, "duplicate": not created},
        status=202 if created else 200,
    )
