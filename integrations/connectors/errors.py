"""The connector error taxonomy: every vendor failure becomes one of these few kinds.

Workflows and the exception classifier reason about these classes, never about a vendor's
status codes or error bodies; each vendor client maps its own error shapes onto them.
"""

from __future__ import annotations

from typing import Any


class ConnectorError(Exception):
    """A call to a vendor API failed.

    `retryable` says whether sending the same request again later may succeed.
    """

    kind = "error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        vendor_code: str | None = None,
        field: str | None = None,
        body: Any = None,
        operation: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.vendor_code = vendor_code
        self.field = field
        self.body = body
        self.operation = operation

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe description, kept on steps and exceptions."""
        return {
            "kind": self.kind,
            "message": self.message,
            "status": self.status,
            "vendor_code": self.vendor_code,
            "field": self.field,
            "operation": self.operation,
            "body": self.body,
        }


class TransientError(ConnectorError):
    """Network failure, timeout or 5xx: the vendor may answer next time."""

    kind = "transient"
    retryable = True


class RateLimitedError(ConnectorError):
    """The vendor refused the call for volume; `retry_after` seconds if it said so."""

    kind = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "retry_after": self.retry_after}


class AuthError(ConnectorError):
    """Credentials rejected or expired beyond refresh."""

    kind = "auth"


class ValidationError(ConnectorError):
    """The vendor rejected the data: `field` and `vendor_code` say what and why."""

    kind = "validation"


class NotFoundError(ConnectorError):
    """The addressed record does not exist."""

    kind = "not_found"


class ConflictError(ConnectorError):
    """Duplicate, version or idempotency conflict (409, 412, several matches)."""

    kind = "conflict"


class ResponseShapeError(ConnectorError):
    """The vendor answered 2xx with a body that does not have the documented shape."""

    kind = "bad_response"


ERROR_KINDS: dict[str, type[ConnectorError]] = {
    cls.kind: cls
    for cls in (
        ConnectorError,
        TransientError,
        RateLimitedError,
        AuthError,
        ValidationError,
        NotFoundError,
        ConflictError,
        ResponseShapeError,
    )
}


def error_class_for_status(status: int) -> type[ConnectorError]:
    """The default kind for an HTTP status; vendor clients refine it from the body."""
    if status in (401, 403):
        return AuthError
    if status == 429:
        return RateLimitedError
    if status == 404:
        return NotFoundError
    if status in (409, 412):
        return ConflictError
    if status in (400, 422):
        return ValidationError
    if status >= 500 or status == 408:
        return TransientError
    return ConnectorError
