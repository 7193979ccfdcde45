"""ConnectorHttpClient and the connector error taxonomy, over httpx.MockTransport.

No network and no real sleeping: `sleep=` records the waits tenacity asks for.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from integrations.connectors.errors import (
    ERROR_KINDS,
    AuthError,
    ConflictError,
    ConnectorError,
    NotFoundError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    ValidationError,
    error_class_for_status,
)
from integrations.connectors.http import (
    CallRecord,
    ConnectorHttpClient,
    VendorErrorDetail,
    parse_retry_after,
)

BASE = "https://api.vendor.test/v1/"


class Recorder:
    """A mock vendor: answers from a script (one item per request; the last repeats)."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(item, Exception):
            raise item
        if callable(item):
            return item(request)
        return item


def make(handler, client_cls=ConnectorHttpClient, **kw):
    waits: list[float] = []
    records: list[CallRecord] = []
    kw.setdefault("on_call", records.append)
    client = client_cls(
        BASE, transport=httpx.MockTransport(handler), sleep=waits.append, connection_id=7, **kw
    )
    return client, waits, records


def ok(payload=None, status=200, **kw):
    return httpx.Response(status, json={"ok": True} if payload is None else payload, **kw)


# -- success and telemetry --------------------------------------------------------------


def test_get_success_sends_defaults_and_reports_one_call():
    vendor = Recorder(ok({"id": 1}, headers={"X-Rate-Remaining": "99", "X-Other": "no"}))

    class Client(ConnectorHttpClient):
        rate_limit_headers = ("x-rate-remaining", "X-Rate-Limit")

    client, waits, records = make(vendor, Client, headers={"X-Tenant": "acme"})
    response = client.request("get", "/things/1?fields=a", operation="vendor.thing.get")

    assert response.json() == {"id": 1}
    sent = vendor.requests[0]
    assert str(sent.url) == "https://api.vendor.test/v1/things/1?fields=a"
    assert sent.method == "GET"
    assert sent.headers["User-Agent"] == "Throughline/0.1"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["X-Tenant"] == "acme"
    assert waits == []
    [rec] = records
    assert rec.connection_id == 7
    assert rec.operation == "vendor.thing.get"
    assert rec.method == "GET"
    assert rec.path == "/things/1"  # the query string never reaches telemetry
    assert rec.status == 200
    assert rec.attempts == 1 and rec.retries == 0
    assert rec.error_kind == "" and rec.error_message == ""
    assert rec.rate_limit == {"x-rate-remaining": "99"}
    assert rec.latency_ms >= 0
    assert rec.started_at.tzinfo is not None
    assert rec.idempotency_key is None


def test_params_and_json_body_are_sent():
    vendor = Recorder(ok(status=201))
    client, _, _ = make(vendor)
    client.request(
        "POST", "/things", operation="op", params={"q": "a b"}, json={"name": "Å"}, ok=(201,)
    )
    sent = vendor.requests[0]
    assert sent.url.params["q"] == "a b"
    assert json.loads(sent.content) == {"name": "Å"}


def test_absolute_url_is_reported_by_path_only():
    client, _, records = make(Recorder(ok()))
    client.request("GET", "https://other.vendor.test/services/x?token=secret", operation="op")
    assert records[0].path == "/services/x"


def test_telemetry_record_counts_all_attempts_and_final_error():
    vendor = Recorder(httpx.Response(500, json={"message": "boom"}))
    client, waits, records = make(vendor, max_attempts=3)
    with pytest.raises(TransientError) as excinfo:
        client.request("GET", "/things", operation="vendor.list")
    assert len(vendor.requests) == 3
    assert len(waits) == 2
    [rec] = records  # one record per logical call, not per attempt
    assert rec.attempts == 3 and rec.retries == 2
    assert rec.status == 500
    assert rec.error_kind == "transient"
    assert rec.error_message == "boom"
    assert excinfo.value.message == "boom"


def test_rate_limit_headers_reported_even_when_the_call_fails():
    class Client(ConnectorHttpClient):
        rate_limit_headers = ("Sforce-Limit-Info",)

    vendor = Recorder(httpx.Response(404, headers={"Sforce-Limit-Info": "api-usage=5/100"}))
    client, _, records = make(vendor, Client)
    with pytest.raises(NotFoundError):
        client.request("GET", "/x", operation="op")
    assert records[0].rate_limit == {"Sforce-Limit-Info": "api-usage=5/100"}
    assert records[0].error_kind == "not_found"


def test_telemetry_sink_that_raises_never_breaks_the_call(caplog):
    def broken_sink(record):
        raise RuntimeError("metrics store down")

    client, _, _ = make(Recorder(ok({"v": 1})), on_call=broken_sink)
    assert client.request("GET", "/x", operation="op").json() == {"v": 1}
    assert "telemetry sink failed" in caplog.text


def test_telemetry_sink_that_raises_keeps_the_real_error():
    def broken_sink(record):
        raise RuntimeError("metrics store down")

    client, _, _ = make(Recorder(httpx.Response(404)), on_call=broken_sink)
    with pytest.raises(NotFoundError):
        client.request("GET", "/x", operation="op")


def test_without_sink_calls_still_work():
    client, _, _ = make(Recorder(ok()), on_call=None)
    assert client.request("GET", "/x", operation="op").status_code == 200


# -- retries ----------------------------------------------------------------------------


def test_get_retried_on_500_until_success_with_bounded_backoff():
    vendor = Recorder(httpx.Response(500), httpx.Response(502), ok({"done": True}))
    client, waits, records = make(vendor, backoff_initial=0.5, backoff_max=30.0)
    assert client.request("GET", "/x", operation="op").json() == {"done": True}
    assert len(vendor.requests) == 3
    assert len(waits) == 2
    assert all(0.5 <= w <= 30.0 for w in waits)
    assert records[0].attempts == 3
    assert records[0].status == 200
    assert records[0].error_kind == ""


def test_backoff_never_exceeds_backoff_max():
    client, waits, _ = make(
        Recorder(httpx.Response(500)), max_attempts=6, backoff_initial=1.0, backoff_max=2.0
    )
    with pytest.raises(TransientError):
        client.request("GET", "/x", operation="op")
    assert len(waits) == 5
    assert all(0 < w <= 2.0 for w in waits)


def test_max_attempts_one_means_no_retry():
    vendor = Recorder(httpx.Response(503))
    client, waits, _ = make(vendor, max_attempts=1)
    with pytest.raises(TransientError):
        client.request("GET", "/x", operation="op")
    assert len(vendor.requests) == 1
    assert waits == []


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"])
def test_idempotent_methods_retried_on_500(method):
    vendor = Recorder(httpx.Response(500), ok(status=204))
    client, _, _ = make(vendor)
    assert client.request(method, "/x", operation="op").status_code == 204
    assert len(vendor.requests) == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_without_key_not_retried_on_500(method):
    vendor = Recorder(httpx.Response(500, json={"message": "half done?"}), ok())
    client, waits, records = make(vendor)
    with pytest.raises(TransientError) as excinfo:
        client.request(method, "/orders", operation="op", json={"a": 1})
    assert len(vendor.requests) == 1  # repeating could create the order twice
    assert waits == []
    assert excinfo.value.status == 500
    assert records[0].attempts == 1


def test_post_without_key_not_retried_on_timeout():
    vendor = Recorder(httpx.ReadTimeout("slow"), ok())
    client, _, records = make(vendor)
    with pytest.raises(TransientError, match="timed out"):
        client.request("POST", "/orders", operation="op", json={})
    assert len(vendor.requests) == 1
    assert records[0].status is None
    assert records[0].error_kind == "transient"


@pytest.mark.parametrize(
    "first",
    [
        httpx.Response(429),
        httpx.Response(503),
        httpx.ConnectError("connection refused"),
    ],
    ids=["429", "503", "refused"],
)
def test_post_without_key_retried_when_vendor_refused_outright(first):
    vendor = Recorder(first, ok(status=201))
    client, waits, records = make(vendor)
    response = client.request("POST", "/orders", operation="op", json={}, ok=(201,))
    assert response.status_code == 201
    assert len(vendor.requests) == 2
    assert len(waits) == 1
    assert records[0].attempts == 2


def test_post_with_idempotency_key_sends_header_on_every_attempt_and_retries_500():
    class Client(ConnectorHttpClient):
        idempotency_header = "X-Idempotency-Key"

    vendor = Recorder(httpx.Response(500), httpx.Response(500), ok())
    client, _, records = make(vendor, Client)
    client.request("POST", "/orders", operation="op", json={}, idempotency_key="order-42")
    assert len(vendor.requests) == 3
    assert [r.headers["X-Idempotency-Key"] for r in vendor.requests] == ["order-42"] * 3
    assert records[0].idempotency_key == "order-42"


def test_idempotency_key_header_not_sent_without_vendor_header_name():
    vendor = Recorder(httpx.Response(500), ok())
    client, _, _ = make(vendor)
    # Salesforce upserts pass the external id as key: repeating finds what the first made
    client.request("PATCH", "/upsert/ext/1", operation="op", json={}, idempotency_key="k")
    assert len(vendor.requests) == 2
    assert not any("idempotency" in h.lower() for h in vendor.requests[0].headers)


def test_connection_refused_exhausted_raises_plain_transient_error():
    vendor = Recorder(httpx.ConnectError("refused"))
    client, waits, records = make(vendor, max_attempts=3)
    with pytest.raises(TransientError) as excinfo:
        client.request("POST", "/orders", operation="vendor.order.create", json={})
    assert type(excinfo.value) is TransientError  # the private marker class never leaks
    assert excinfo.value.operation == "vendor.order.create"
    assert "connection failed" in excinfo.value.message
    assert len(vendor.requests) == 3
    assert len(waits) == 2
    assert records[0].status is None
    assert records[0].error_kind == "transient"


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full")]
)
def test_timeouts_become_transient_and_get_is_retried(exc):
    vendor = Recorder(exc, ok())
    client, _, _ = make(vendor)
    assert client.request("GET", "/x", operation="op").status_code == 200
    assert len(vendor.requests) == 2


def test_timeout_exhausted_raises_transient_error():
    client, _, _ = make(Recorder(httpx.ReadTimeout("slow")), max_attempts=2)
    with pytest.raises(TransientError, match="timed out") as excinfo:
        client.request("GET", "/x", operation="op")
    assert excinfo.value.retryable


def test_other_transport_errors_are_transient():
    vendor = Recorder(httpx.RemoteProtocolError("peer closed"))
    client, _, _ = make(vendor, max_attempts=2)
    with pytest.raises(TransientError, match="transport error"):
        client.request("GET", "/x", operation="op")
    assert len(vendor.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422, 418])
def test_non_retryable_statuses_are_not_retried(status):
    vendor = Recorder(httpx.Response(status), ok())
    client, waits, _ = make(vendor)
    with pytest.raises(ConnectorError) as excinfo:
        client.request("GET", "/x", operation="op")
    assert not excinfo.value.retryable
    assert len(vendor.requests) == 1
    assert waits == []


# -- Retry-After ------------------------------------------------------------------------


def test_retry_after_seconds_honoured_on_429():
    vendor = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), ok())
    client, waits, _ = make(vendor)
    client.request("POST", "/x", operation="op")
    assert waits == [7.0]


def test_retry_after_http_date_honoured():
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = format_datetime(when, usegmt=True)
    vendor = Recorder(httpx.Response(429, headers={"Retry-After": header}), ok())
    client, waits, _ = make(vendor, max_retry_after=600)
    client.request("GET", "/x", operation="op")
    [wait] = waits
    assert 115 <= wait <= 121


def test_retry_after_capped_at_max_retry_after():
    vendor = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}), ok())
    client, waits, _ = make(vendor, max_retry_after=45)
    client.request("GET", "/x", operation="op")
    assert waits == [45]


def test_retry_after_honoured_on_503():
    vendor = Recorder(httpx.Response(503, headers={"Retry-After": "4"}), ok())
    client, waits, _ = make(vendor)
    client.request("GET", "/x", operation="op")
    assert waits == [4.0]


def test_stale_retry_after_not_reused_after_a_timeout():
    vendor = Recorder(
        httpx.Response(503, headers={"Retry-After": "40"}), httpx.ReadTimeout("slow"), ok()
    )
    client, waits, _ = make(vendor, backoff_initial=0.1, backoff_max=2)
    client.request("GET", "/x", operation="op")
    assert waits[0] == 40.0
    assert waits[1] <= 2


@pytest.mark.parametrize("header", ["nan", "inf", "soon", ""])
def test_unusable_retry_after_falls_back_to_backoff(header):
    vendor = Recorder(httpx.Response(429, headers={"Retry-After": header}), ok())
    client, waits, _ = make(vendor, backoff_initial=0.5, backoff_max=5)
    client.request("GET", "/x", operation="op")
    [wait] = waits
    assert math.isfinite(wait) and 0 < wait <= 5


def test_rate_limited_error_carries_retry_after():
    vendor = Recorder(httpx.Response(429, headers={"Retry-After": "12"}))
    client, _, records = make(vendor, max_attempts=1)
    with pytest.raises(RateLimitedError) as excinfo:
        client.request("GET", "/x", operation="op")
    assert excinfo.value.retry_after == 12.0
    assert excinfo.value.as_dict()["retry_after"] == 12.0
    assert records[0].error_kind == "rate_limited"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("1e999", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_relative_to_now():
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Tue, 01 Jan 2030 12:01:30 GMT", now=now) == 90.0
    # a date without a zone ("-0000") is read as UTC
    assert parse_retry_after("Tue, 01 Jan 2030 12:00:10 -0000", now=now) == 10.0


# -- error classification ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ValidationError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (408, TransientError),
        (409, ConflictError),
        (412, ConflictError),
        (418, ConnectorError),
        (422, ValidationError),
        (429, RateLimitedError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
    ],
)
def test_error_class_for_status(status, cls):
    assert error_class_for_status(status) is cls


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, ValidationError), (401, AuthError), (404, NotFoundError), (409, ConflictError)],
)
def test_client_raises_class_for_status(status, cls):
    vendor = Recorder(httpx.Response(status, json={"message": "nope", "detail": 1}))
    client, _, _ = make(vendor)
    with pytest.raises(ConnectorError) as excinfo:
        client.request("GET", "/x", operation="vendor.x")
    err = excinfo.value
    assert type(err) is cls
    assert err.status == status
    assert err.message == "nope"
    assert err.body == {"message": "nope", "detail": 1}
    assert err.operation == "vendor.x"


def test_error_message_from_text_and_empty_bodies():
    client, _, _ = make(Recorder(httpx.Response(404, text="no such thing")))
    with pytest.raises(NotFoundError) as excinfo:
        client.request("GET", "/x", operation="op")
    assert excinfo.value.message == "no such thing"
    assert excinfo.value.body == "no such thing"

    client, _, _ = make(Recorder(httpx.Response(404)))
    with pytest.raises(NotFoundError) as excinfo:
        client.request("GET", "/x", operation="op")
    assert excinfo.value.message == "Not Found"


def test_error_message_is_bounded():
    client, _, records = make(Recorder(httpx.Response(400, text="x" * 100_000)))
    with pytest.raises(ValidationError) as excinfo:
        client.request("GET", "/x", operation="op")
    assert len(excinfo.value.message) <= 500
    assert len(excinfo.value.body) <= 2000
    assert len(records[0].error_message) <= 500


def test_json_error_body_without_message_is_described_whole():
    client, _, _ = make(Recorder(httpx.Response(400, json=[{"errorCode": "X"}])))
    with pytest.raises(ValidationError) as excinfo:
        client.request("GET", "/x", operation="op")
    assert "errorCode" in excinfo.value.message


class QuirkyClient(ConnectorHttpClient):
    """Reads `{"errorCode", "field", "msg"}` bodies; 403 LIMIT means rate limited."""

    def describe_error(self, response):
        body = response.json()
        return VendorErrorDetail(body["msg"], code=body["errorCode"], field=body.get("field"))

    def error_class(self, response, detail):
        if response.status_code == 403 and detail.code == "LIMIT":
            return RateLimitedError
        return super().error_class(response, detail)


def test_describe_error_override_fills_code_and_field():
    body = {"errorCode": "REQUIRED", "field": "Name", "msg": "Name is required"}
    client, _, _ = make(Recorder(httpx.Response(400, json=body)), QuirkyClient)
    with pytest.raises(ValidationError) as excinfo:
        client.request("POST", "/x", operation="op", json={})
    err = excinfo.value
    assert (err.message, err.vendor_code, err.field) == ("Name is required", "REQUIRED", "Name")
    assert err.as_dict()["vendor_code"] == "REQUIRED"


def test_error_class_override_makes_403_a_retried_rate_limit():
    limited = httpx.Response(
        403, json={"errorCode": "LIMIT", "msg": "slow down"}, headers={"Retry-After": "3"}
    )
    vendor = Recorder(limited, ok())
    client, waits, _ = make(vendor, QuirkyClient)
    client.request("POST", "/x", operation="op", json={})
    assert len(vendor.requests) == 2
    assert waits == [3.0]

    denied = httpx.Response(403, json={"errorCode": "DENIED", "msg": "no"})
    client, _, _ = make(Recorder(denied), QuirkyClient)
    with pytest.raises(AuthError):
        client.request("GET", "/x", operation="op")


def test_ok_statuses_replace_the_default_2xx_rule():
    client, _, records = make(Recorder(httpx.Response(404)))
    assert client.request("GET", "/x", operation="op", ok=(200, 404)).status_code == 404
    assert records[0].error_kind == ""

    client, _, _ = make(Recorder(httpx.Response(202)))
    with pytest.raises(ConnectorError) as excinfo:
        client.request("GET", "/x", operation="op", ok=[200])
    assert excinfo.value.status == 202


# -- JSON decoding ----------------------------------------------------------------------


def test_get_json_decodes():
    client, _, _ = make(Recorder(ok({"records": [1, 2]})))
    assert client.get_json("/x", operation="op", params={"a": 1}) == {"records": [1, 2]}


@pytest.mark.parametrize("text", ["<html>maintenance</html>", ""])
def test_get_json_non_json_2xx_raises_response_shape_error(text):
    client, _, _ = make(Recorder(httpx.Response(200, text=text)))
    with pytest.raises(ResponseShapeError) as excinfo:
        client.get_json("/x", operation="vendor.read")
    err = excinfo.value
    assert err.kind == "bad_response"
    assert not err.retryable
    assert err.status == 200
    assert err.body == text
    assert err.operation == "vendor.read"


def test_context_manager_closes_the_pool():
    client, _, _ = make(Recorder(ok()))
    with client as entered:
        assert entered is client
    assert client.http.is_closed


# -- errors module ----------------------------------------------------------------------


def test_as_dict_is_complete_and_json_safe():
    err = ValidationError(
        "bad", status=400, vendor_code="E1", field="Name", body={"x": 1}, operation="op"
    )
    data = err.as_dict()
    assert data == {
        "kind": "validation",
        "message": "bad",
        "status": 400,
        "vendor_code": "E1",
        "field": "Name",
        "operation": "op",
        "body": {"x": 1},
    }
    assert json.loads(json.dumps(data)) == data
    assert str(err) == "bad"
    limited = RateLimitedError("slow", retry_after=2.5, status=429).as_dict()
    assert limited["kind"] == "rate_limited" and limited["retry_after"] == 2.5


def test_error_kinds_are_unique_and_round_trip():
    assert len(ERROR_KINDS) == 8
    for kind, cls in ERROR_KINDS.items():
        assert cls.kind == kind
        assert issubclass(cls, ConnectorError)
    retryable = {k for k, cls in ERROR_KINDS.items() if cls.retryable}
    assert retryable == {"transient", "rate_limited"}
