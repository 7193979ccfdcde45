"""Outbound events from Salesforce to Throughline: verify and read what the Throughline
managed package's flow POSTs when a deal is won or a contract amendment is approved.

The request (see the stand-in's docstring for the sending side):

    POST <configured URL>
    Content-Type: application/json
    X-Throughline-Timestamp: 1795600000            (unix seconds, when the attempt was signed)
    X-Throughline-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

    {"event": "opportunity.closed_won" | "contract_amendment.approved",
     "sobject": "Opportunity" | "Contract_Amendment__c", "id": "0065g00000Tl001AAB",
     "systemModstamp": "2026-11-25T10:22:00.000+0000", "occurredAt": "2026-11-25T10:22:01.000Z"}

A receiver should: read the raw body, `verify_signature` (constant-time, rejects timestamps
more than `tolerance` seconds from now either way, which bounds replays), `parse_event`, and
answer 2xx quickly - the sender retries a failed delivery 3 times, so the same event can
arrive more than once: (event, id, systemModstamp) identifies it (`idempotency_key`). An
event is only a hint: fetch the record (`SalesforceClient.get_opportunity` /
`get_amendment`) before acting on it, and keep polling the SystemModstamp feeds as the
backstop for events that never arrive.

What is Salesforce and what is ours: a record-triggered Flow can POST JSON with its HTTP
Callout action, but only from the flow's asynchronous path (callouts are refused in the
synchronous one). Neither Flow nor Named Credentials sign requests with an HMAC: the
signature and the header names are the managed package's own (an Apex invocable action
using `Crypto.generateMac('hmacSHA256', ...)`), as is the retry policy. Outbound Messages
(workflow rules) would be SOAP with a different shape and are not supported here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import time
from typing import Any

from ...canonical.errors import MappingError
from .mapping import parse_salesforce_datetime

SIGNATURE_HEADER = "X-Throughline-Signature"
TIMESTAMP_HEADER = "X-Throughline-Timestamp"
SIGNATURE_SCHEME = "sha256="
DEFAULT_TOLERANCE = 300
#: event -> the sObject it is about
EVENTS: dict[str, str] = {
    "opportunity.closed_won": "Opportunity",
    "contract_amendment.approved": "Contract_Amendment__c",
}
EVENT_FIELDS = ("event", "sobject", "id", "systemModstamp", "occurredAt")
#: an event is a few hundred bytes; anything much larger is not one
MAX_BODY_BYTES = 64 * 1024

_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_TIMESTAMP = re.compile(r"^\d{1,12}$")
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value for a body signed at `timestamp`: `sha256=<hex>`."""
    message = timestamp.encode("ascii") + b"." + body
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """True when `signature` (the X-Throughline-Signature header) is the HMAC of
    `timestamp + "." + body` under `secret` and `timestamp` (X-Throughline-Timestamp, unix
    seconds) lies within `tolerance` seconds of `now`. Any malformed input is False, never
    an exception; the digest comparison is constant-time."""
    if not isinstance(secret, str) or not secret:
        return False
    if not isinstance(body, bytes | bytearray) or not isinstance(signature, str):
        return False
    if not isinstance(timestamp, str) or not _TIMESTAMP.match(timestamp.strip()):
        return False
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        return False
    current = time.time() if now is None else now
    if not isinstance(current, int | float) or not math.isfinite(current):
        return False
    timestamp = timestamp.strip()
    if abs(current - int(timestamp)) > tolerance:
        return False
    given = signature.strip()
    if given[: len(SIGNATURE_SCHEME)].lower() != SIGNATURE_SCHEME:
        return False
    digest = given[len(SIGNATURE_SCHEME) :]
    if not _HEX_DIGEST.match(digest):
        return False
    expected = compute_signature(secret, timestamp, bytes(body))[len(SIGNATURE_SCHEME) :]
    return hmac.compare_digest(expected.encode(), digest.lower().encode())


def idempotency_key(event: dict[str, Any]) -> str:
    """The key that recognises repeats of one event (a retried delivery sends the same body):
    `salesforce:<event>:<id>:<systemModstamp>`, for an event from `parse_event`."""
    return f"salesforce:{event['event']}:{event['id']}:{event['systemModstamp']}"


def parse_event(body: bytes) -> dict[str, Any]:
    """The event in a (verified) body: a dict with exactly `event`, `sobject`, `id`,
    `systemModstamp` and `occurredAt` as sent (strings; unknown keys are dropped). Raises
    ValueError naming the problem for anything else."""
    if not isinstance(body, bytes | bytearray):
        raise ValueError("the event body must be bytes")
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"the event body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(bytes(body).decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("the event body is not UTF-8") from None
    except ValueError as exc:
        raise ValueError(f"the event body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the event body must be a JSON object")
    missing = [name for name in EVENT_FIELDS if name not in data]
    if missing:
        raise ValueError(f"the event lacks {', '.join(missing)}")
    not_text = [name for name in EVENT_FIELDS if not isinstance(data[name], str)]
    if not_text:
        raise ValueError(f"the event's {', '.join(not_text)} must be strings")
    event = data["event"]
    if event not in EVENTS:
        raise ValueError(f"unknown event {event[:60]!r}; expected one of {', '.join(EVENTS)}")
    if data["sobject"] != EVENTS[event]:
        raise ValueError(f"a {event} event is about {EVENTS[event]}, not {data['sobject'][:60]!r}")
    if not _RECORD_ID.match(data["id"]):
        raise ValueError(f"the event's id {data['id'][:40]!r} is not a Salesforce record id")
    for name in ("systemModstamp", "occurredAt"):
        try:
            parse_salesforce_datetime(data[name], field=name)
        except MappingError:
            raise ValueError(f"the event's {name} is not a datetime: {data[name][:40]!r}") from None
    return {name: data[name] for name in EVENT_FIELDS}
