"""The shared HTTP client every connector uses: one place for timeouts, pooling, auth,
retries with backoff that honour Retry-After, error classification and call telemetry.

A vendor client subclasses `ConnectorHttpClient` and overrides `describe_error` (read the
vendor's error body) and, where the vendor bends HTTP, `error_class` (for example Salesforce
answers 403 REQUEST_LIMIT_EXCEEDED when it means "rate limited").
"""

from __future__ import annotations

import logging
import math
import ssl
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, NamedTuple

import certifi
import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from .errors import (
    ConnectorError,
    RateLimitedError,
    ResponseShapeError,
    TransientError,
    error_class_for_status,
)

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class VendorErrorDetail(NamedTuple):
    """What a vendor's error body says, in vendor-neutral terms."""

    message: str
    code: str | None = None
    field: str | None = None


@dataclass(frozen=True)
class CallRecord:
    """One logical API call (all its attempts), as reported to the telemetry sink."""

    connection_id: int | None
    operation: str
    method: str
    path: str
    status: int | None
    latency_ms: float
    attempts: int
    started_at: datetime
    idempotency_key: str | None = None
    error_kind: str = ""
    error_message: str = ""
    rate_limit: dict[str, str] = field(default_factory=dict)

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)


TelemetrySink = Callable[[CallRecord], None]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "nan" or "inf" from a vendor must not reach sleep() or a JSON field
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context (certifi's roots) shared by every client of the process:
    building one loads the CA bundle, ~30 ms, and each run builds several clients."""
    return ssl.create_default_context(cafile=certifi.where())


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


class ConnectorHttpClient:
    """A pooled httpx client with the project's retry, error and telemetry rules."""

    #: headers copied into telemetry when present (rate-limit headroom)
    rate_limit_headers: tuple[str, ...] = ()
    #: header name used to send an idempotency key, if the vendor has one
    idempotency_header: str | None = None

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        connection_id: int | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        on_call: TelemetrySink | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection_id = connection_id
        self.on_call = on_call
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=auth,
            verify=tls_context(),
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            transport=transport,
            headers={"User-Agent": "Throughline/0.1", "Accept": "application/json"}
            | (headers or {}),
        )

    # -- vendor hooks -------------------------------------------------------------------
    def describe_error(self, response: httpx.Response) -> VendorErrorDetail:
        """Read the vendor's error body. The default copes with any JSON or text."""
        try:
            body = response.json()
        except ValueError:
            return VendorErrorDetail(response.text[:500] or response.reason_phrase)
        if isinstance(body, dict):
            return VendorErrorDetail(str(body.get("message") or body)[:500])
        return VendorErrorDetail(str(body)[:500])

    def error_class(
        self, response: httpx.Response, detail: VendorErrorDetail
    ) -> type[ConnectorError]:
        """The error kind for a failed response; override for vendor quirks."""
        return error_class_for_status(response.status_code)

    # -- calls --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        ok: Iterable[int] | None = None,
    ) -> httpx.Response:
        """Send one logical call, retrying what is safe to retry; raise a ConnectorError.

        `ok` lists statuses that are not errors (default: any 2xx). A request is retried on
        a retryable error only when repeating it cannot do the work twice: the method is
        idempotent, an idempotency key travels with it, or the vendor refused it outright
        (429, 503, connection refused) so it was never processed.
        """
        method = method.upper()
        ok_statuses = set(ok) if ok is not None else None
        send_headers = dict(headers or {})
        if idempotency_key and self.idempotency_header:
            send_headers[self.idempotency_header] = idempotency_key
        safe_to_repeat = method in IDEMPOTENT_METHODS or idempotency_key is not None
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        attempts = 0
        last_response: httpx.Response | None = None
        retry_after: float | None = None  # Retry-After of the latest attempt's answer

        def attempt() -> httpx.Response:
            nonlocal attempts, last_response, retry_after
            attempts += 1
            retry_after = None
            try:
                response = self.http.request(
                    method, path, params=params, json=json, data=data, headers=send_headers
                )
            except httpx.ConnectError as exc:
                raise _NotSent(f"connection failed: {exc}", operation=operation) from exc
            except httpx.TimeoutException as exc:
                raise TransientError(f"timed out: {exc}", operation=operation) from exc
            except httpx.TransportError as exc:
                raise TransientError(f"transport error: {exc}", operation=operation) from exc
            last_response = response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            good = (
                response.status_code in ok_statuses
                if ok_statuses is not None
                else response.is_success
            )
            if good:
                return response
            raise self._error_from(response, operation)

        def may_retry(exc: BaseException) -> bool:
            if not isinstance(exc, ConnectorError) or not exc.retryable:
                return False
            if safe_to_repeat or isinstance(exc, (_NotSent, RateLimitedError)):
                return True
            return exc.status == 503

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=lambda state: self._wait(state, retry_after),
            retry=retry_if_exception(may_retry),
            reraise=True,
            sleep=self._sleep,
        )
        error: ConnectorError | None = None
        try:
            return retrying(attempt)
        except _NotSent as exc:
            error = TransientError(exc.message, operation=operation)
            raise error from exc
        except ConnectorError as exc:
            error = exc
            raise
        finally:
            self._report(
                CallRecord(
                    connection_id=self.connection_id,
                    operation=operation,
                    method=method,
                    path=str(httpx.URL(path).path) if "://" in path else path.split("?")[0],
                    status=last_response.status_code if last_response is not None else None,
                    latency_ms=(time.perf_counter() - t0) * 1000,
                    attempts=attempts,
                    started_at=started_at,
                    idempotency_key=idempotency_key,
                    error_kind=error.kind if error else "",
                    error_message=error.message[:500] if error else "",
                    rate_limit=self._rate_limit_headers(last_response),
                )
            )

    def get_json(self, path: str, *, operation: str, **kw: Any) -> Any:
        """GET and decode JSON, raising ResponseShapeError for a body that is not JSON."""
        return self.decode(self.request("GET", path, operation=operation, **kw), operation)

    def decode(self, response: httpx.Response, operation: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ResponseShapeError(
                "vendor answered with a body that is not JSON",
                status=response.status_code,
                body=response.text[:2000],
                operation=operation,
            ) from exc

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ConnectorHttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _error_from(self, response: httpx.Response, operation: str) -> ConnectorError:
        detail = self.describe_error(response)
        cls = self.error_class(response, detail)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:2000]
        kwargs: dict[str, Any] = {
            "status": response.status_code,
            "vendor_code": detail.code,
            "field": detail.field,
            "body": body,
            "operation": operation,
        }
        if issubclass(cls, RateLimitedError):
            kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
        return cls(detail.message, **kwargs)

    def _wait(self, state: RetryCallState, retry_after: float | None = None) -> float:
        """Seconds before the next attempt: the vendor's Retry-After (on a rate limit, or on
        the latest answer, such as a 503), capped at max_retry_after; else jittered backoff."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            retry_after = exc.retry_after
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        backoff = wait_exponential_jitter(multiplier=self.backoff_initial, max=self.backoff_max)
        return backoff(state)

    def _rate_limit_headers(self, response: httpx.Response | None) -> dict[str, str]:
        if response is None:
            return {}
        return {h: response.headers[h] for h in self.rate_limit_headers if h in response.headers}

    def _report(self, record: CallRecord) -> None:
        logger.debug(
            "api call %s %s %s -> %s in %.1f ms (%d attempts)",
            record.operation,
            record.method,
            record.path,
            record.status,
            record.latency_ms,
            record.attempts,
        )
        if self.on_call is not None:
            try:
                self.on_call(record)
            except Exception:  # telemetry must never break the call it describes
                logger.exception("telemetry sink failed for %s", record.operation)


class _NotSent(TransientError):
    """The request never reached the vendor (connection refused): always safe to repeat."""
