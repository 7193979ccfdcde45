"""Real-time handoff from Salesforce: the stand-in's signed outbound events (a won deal, an
approved amendment) reach a real HTTP receiver from a background thread, with retries, and
the connector's `verify_signature` / `parse_event` accept exactly what was signed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from integrations.connectors.salesforce import SalesforceClient, parse_event, verify_signature
from integrations.connectors.salesforce.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    idempotency_key,
)
from integrations.standins.server import RunningStandin

from . import test_salesforce_connector as connector_tests

running = connector_tests.running
sf = connector_tests.sf
harness = connector_tests.harness
client = connector_tests.client

SECRET = "whsec-test-0123456789"
OPP_NORTHWIND = "0065g00000Tl001AAB"
OPP_CONTOSO = "0065g00000Tl005AAB"
AMENDMENT = "a015g00000Tl001AAB"
HOOKS = "/__standin__/salesforce/webhooks"


class Receiver:
    """A webhook endpoint on a free port: records every request, answers scripted statuses
    (then 204), optionally after a delay."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(
                    {"headers": dict(self.headers), "body": body, "at": time.monotonic()}
                )
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/salesforce"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked(sf: RunningStandin, receiver: Receiver) -> Iterator[RunningStandin]:
    """The stand-in, its events pointed at the receiver, with quick retries."""
    receiver.requests.clear()
    receiver.statuses.clear()
    receiver.delay = 0.0
    sf.state.webhook_backoff = 0.01
    answer = httpx.post(f"{sf.url}{HOOKS}", json={"url": receiver.url, "secret": SECRET})
    assert answer.json() == {"configured": True, "url": receiver.url}
    yield sf
    assert sf.state.wait_for_webhooks(5)
    sf.state.configure_webhook(None)
    sf.state.webhook_backoff = 1.0


def _delivered(run: RunningStandin) -> list[dict[str, Any]]:
    assert run.state.wait_for_webhooks(5)
    return httpx.get(f"{run.url}{HOOKS}").json()["deliveries"]


# -- delivery ------------------------------------------------------------------------------


def test_a_won_deal_is_announced_with_a_verifiable_signature(
    hooked: RunningStandin, receiver: Receiver, client: SalesforceClient
) -> None:
    client.update("Opportunity", OPP_CONTOSO, {"StageName": "Closed Won"})

    [attempt] = _delivered(hooked)
    assert attempt["delivered"] and attempt["status"] == 204
    [request] = receiver.requests
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(
        SECRET, headers[TIMESTAMP_HEADER], request["body"], headers[SIGNATURE_HEADER]
    )
    event = parse_event(request["body"])
    stamp = client.get("Opportunity", OPP_CONTOSO, ["SystemModstamp"])["SystemModstamp"]
    assert event == {
        "event": "opportunity.closed_won",
        "sobject": "Opportunity",
        "id": OPP_CONTOSO,
        "systemModstamp": stamp,
        "occurredAt": event["occurredAt"],
    }
    assert not verify_signature(
        "another-secret", headers[TIMESTAMP_HEADER], request["body"], headers[SIGNATURE_HEADER]
    )


def test_only_the_change_to_closed_won_is_announced(
    hooked: RunningStandin, receiver: Receiver, client: SalesforceClient
) -> None:
    client.update("Opportunity", OPP_NORTHWIND, {"Amount": 130000})  # already won
    client.update("Opportunity", OPP_CONTOSO, {"StageName": "Closed Lost"})
    client.create(
        "Opportunity", {"Name": "New", "StageName": "Prospecting", "CloseDate": "2027-01-01"}
    )
    won = client.create(
        "Opportunity", {"Name": "Won", "StageName": "Closed Won", "CloseDate": "2027-01-01"}
    )
    _delivered(hooked)
    assert [(e["event"], e["id"]) for e in receiver.events()] == [("opportunity.closed_won", won)]


def test_an_approved_amendment_and_a_demo_deal_are_announced(
    hooked: RunningStandin, receiver: Receiver
) -> None:
    httpx.post(f"{hooked.url}/__standin__/salesforce/approve-amendment", json={"id": AMENDMENT})
    httpx.post(f"{hooked.url}/__standin__/salesforce/approve-amendment", json={"id": AMENDMENT})
    deal = httpx.post(f"{hooked.url}/__standin__/salesforce/close-deal", json={}).json()["id"]

    _delivered(hooked)
    assert [(e["event"], e["sobject"], e["id"]) for e in receiver.events()] == [
        ("contract_amendment.approved", "Contract_Amendment__c", AMENDMENT),
        ("opportunity.closed_won", "Opportunity", deal),
    ]


def test_a_deal_closed_by_hand_on_the_control_surface_is_announced(
    hooked: RunningStandin, receiver: Receiver
) -> None:
    edit = httpx.post(
        f"{hooked.url}/__standin__/records/Opportunity/{OPP_CONTOSO}",
        json={"StageName": "Closed Won"},
    )
    assert edit.status_code == 200
    _delivered(hooked)
    assert [e["id"] for e in receiver.events()] == [OPP_CONTOSO]


def test_failed_deliveries_are_retried_three_times_each_signed_afresh(
    hooked: RunningStandin, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503, 429]
    hooked.state.approve_amendment(AMENDMENT)

    attempts = _delivered(hooked)
    assert [(a["attempt"], a["status"], a["delivered"]) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 429, False),
        (4, 204, True),
    ]
    bodies = {r["body"] for r in receiver.requests}
    assert len(receiver.requests) == 4 and len(bodies) == 1  # the same event each time
    for request in receiver.requests:
        headers = request["headers"]
        assert verify_signature(
            SECRET, headers[TIMESTAMP_HEADER], request["body"], headers[SIGNATURE_HEADER]
        )


def test_the_sender_gives_up_after_three_retries_and_on_a_refusal(
    hooked: RunningStandin, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500, 500, 500, 500]
    hooked.state.approve_amendment(AMENDMENT)
    assert [a["status"] for a in _delivered(hooked)] == [500, 500, 500, 500]

    receiver.statuses = [401]
    hooked.state.close_deal()
    assert [a["status"] for a in _delivered(hooked)][4:] == [401]  # a 4xx is final
    assert len(receiver.requests) == 5


def test_an_unreachable_receiver_is_retried_without_blocking_the_api(
    hooked: RunningStandin, client: SalesforceClient
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks"
    hooked.state.configure_webhook(dead, SECRET)
    client.update("Opportunity", OPP_CONTOSO, {"StageName": "Closed Won"})

    attempts = _delivered(hooked)
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert all(a["status"] is None and a["error"] for a in attempts)


def test_a_slow_receiver_never_delays_the_api_answer(
    hooked: RunningStandin, receiver: Receiver, client: SalesforceClient
) -> None:
    receiver.delay = 1.5
    client.get("Opportunity", OPP_CONTOSO, ["Id"])  # the session exists before timing
    started = time.monotonic()
    client.update("Opportunity", OPP_CONTOSO, {"StageName": "Closed Won"})
    assert time.monotonic() - started < 1.0
    assert hooked.state.wait_for_webhooks(5)
    assert len(receiver.requests) == 1


# -- configuration -------------------------------------------------------------------------


def test_webhook_configuration_endpoint(sf: RunningStandin, receiver: Receiver) -> None:
    url = f"{sf.url}{HOOKS}"
    assert httpx.get(url).json() == {"configured": False, "url": None, "deliveries": []}
    for bad in ({"url": "ftp://x", "secret": "s"}, {"url": receiver.url}, {"secret": "s"}):
        assert httpx.post(url, json=bad).status_code == 400
    assert httpx.post(url, content=b"{").status_code == 400

    httpx.post(url, json={"url": receiver.url, "secret": SECRET})
    shown = httpx.get(url).json()
    assert shown["configured"] is True and SECRET not in json.dumps(shown)
    # the configuration survives a snapshot, not a reset
    assert sf.state.snapshot()["attrs"]["_webhook"] == {"url": receiver.url, "secret": SECRET}
    assert httpx.delete(url).json() == {"configured": False}
    httpx.post(url, json={"url": receiver.url, "secret": SECRET})
    sf.state.reset()
    assert httpx.get(url).json()["configured"] is False


def test_without_a_receiver_nothing_is_sent(
    sf: RunningStandin, receiver: Receiver, client: SalesforceClient
) -> None:
    receiver.requests.clear()
    client.update("Opportunity", OPP_CONTOSO, {"StageName": "Closed Won"})
    assert sf.state.wait_for_webhooks(1)
    assert receiver.requests == []


def test_a_reset_drops_events_still_waiting_to_be_retried(
    hooked: RunningStandin, receiver: Receiver
) -> None:
    hooked.state.webhook_backoff = 0.3
    receiver.statuses = [500] * 4
    hooked.state.approve_amendment(AMENDMENT)
    deadline = time.monotonic() + 5
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    hooked.state.reset()
    assert hooked.state.wait_for_webhooks(5)
    assert len(receiver.requests) == 1


# -- verify_signature and parse_event ------------------------------------------------------

BODY = json.dumps(
    {
        "event": "opportunity.closed_won",
        "sobject": "Opportunity",
        "id": OPP_NORTHWIND,
        "systemModstamp": "2026-11-25T10:22:00.000+0000",
        "occurredAt": "2026-11-25T10:22:01.000Z",
    }
).encode()
NOW = 1_795_600_000


def test_verify_signature_accepts_a_fresh_exact_signature() -> None:
    signature = compute_signature(SECRET, str(NOW), BODY)
    assert signature.startswith("sha256=") and len(signature) == 71
    assert verify_signature(SECRET, str(NOW), BODY, signature, now=NOW)
    assert verify_signature(
        SECRET, str(NOW), BODY, signature.upper().replace("SHA256", "sha256"), now=NOW + 300
    )
    assert verify_signature(SECRET, str(NOW), BODY, signature, now=NOW - 300)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "now"),
    [
        ("other", str(NOW), BODY, None, NOW),  # wrong secret
        (SECRET, str(NOW), BODY + b" ", None, NOW),  # body changed
        (SECRET, str(NOW + 1), BODY, None, NOW),  # timestamp changed after signing
        (SECRET, str(NOW), BODY, None, NOW + 301),  # stale
        (SECRET, str(NOW), BODY, None, NOW - 301),  # from the future
        (SECRET, str(NOW), BODY, "sha1=" + "0" * 64, NOW),
        (SECRET, str(NOW), BODY, "sha256=xyz", NOW),
        (SECRET, str(NOW), BODY, "", NOW),
        (SECRET, "yesterday", BODY, None, NOW),
        (SECRET, "-5", BODY, None, NOW),
        ("", str(NOW), BODY, None, NOW),
    ],
)
def test_verify_signature_refuses_anything_else(
    secret: str, timestamp: str, body: bytes, signature: str | None, now: int
) -> None:
    signed = signature if signature is not None else compute_signature(SECRET, str(NOW), BODY)
    assert verify_signature(secret, timestamp, body, signed, now=now) is False


def test_verify_signature_tolerance_is_adjustable_and_input_types_are_checked() -> None:
    signed = compute_signature(SECRET, str(NOW), BODY)
    assert verify_signature(SECRET, str(NOW), BODY, signed, now=NOW + 30, tolerance=30)
    assert not verify_signature(SECRET, str(NOW), BODY, signed, now=NOW + 31, tolerance=30)
    assert not verify_signature(SECRET, str(NOW), BODY.decode(), signed, now=NOW)  # type: ignore[arg-type]
    assert not verify_signature(SECRET, NOW, BODY, signed, now=NOW)  # type: ignore[arg-type]
    # without `now` the current time counts: a signature made now verifies
    current = str(int(time.time()))
    assert verify_signature(SECRET, current, BODY, compute_signature(SECRET, current, BODY))


def test_parse_event_returns_the_known_fields_as_sent() -> None:
    extra = json.loads(BODY)
    extra["note"] = "ignored"
    event = parse_event(json.dumps(extra).encode())
    assert event == json.loads(BODY)
    assert idempotency_key(event) == (
        f"salesforce:opportunity.closed_won:{OPP_NORTHWIND}:2026-11-25T10:22:00.000+0000"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{oops", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"event": "opportunity.closed_won"}', "lacks sobject, id, systemModstamp"),
        (BODY.replace(b'"0065g00000Tl001AAB"', b"7"), "must be strings"),
        (BODY.replace(b"opportunity.closed_won", b"account.deleted"), "unknown event"),
        (BODY.replace(b'"Opportunity"', b'"Account"'), "is about Opportunity"),
        (BODY.replace(b"0065g00000Tl001AAB", b"006' OR 1=1"), "not a Salesforce record id"),
        (BODY.replace(b"2026-11-25T10:22:00.000+0000", b"yesterday"), "systemModstamp"),
        (BODY.replace(b"2026-11-25T10:22:01.000Z", b"2026-11-25T10:22:01"), "occurredAt"),
        (b" " * (64 * 1024 + 1), "larger than"),
    ],
)
def test_parse_event_refuses_garbage_with_a_clear_message(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_event(body)
