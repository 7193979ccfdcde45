"""How a step says why it failed, in the engine's own terms.

Steps raise `StepError` for business rules (a code such as "tax_configuration_missing", the
entity concerned, the details a person needs). Connector and mapping errors are described by
`describe_failure`, which the engine calls for anything a step raises, so every failure,
including a bug, reaches the exception queues classified instead of crashing the worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from integrations.canonical.errors import MappingError
from integrations.connectors.errors import ConnectorError


class StepError(Exception):
    """A business rule stopped the step."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        entity_type: str = "",
        entity_ref: str = "",
        connection_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.entity_type = entity_type
        self.entity_ref = entity_ref
        self.connection_id = connection_id
        self.details = details or {}


@dataclass
class StepFailure:
    """What the engine reports about a failed step (JSON-safe)."""

    kind: str  # "business" | "connector" | "mapping" | "internal"
    code: str  # business code, or the connector error kind
    message: str
    entity_type: str = ""
    entity_ref: str = ""
    connection_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    vendor_error: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe_failure(
    exc: BaseException,
    *,
    entity_type: str = "",
    entity_ref: str = "",
    connection_id: int | None = None,
    rejection_code: str = "",
    payload: dict[str, Any] | None = None,
) -> StepFailure:
    """Turn whatever a step raised into a StepFailure.

    `rejection_code` names the business meaning of a vendor refusing the data in this step
    (validation or conflict), e.g. "customer_rejected_by_erp".
    """
    payload = payload or {}
    if isinstance(exc, StepError):
        return StepFailure(
            kind="business",
            code=exc.code,
            message=exc.message,
            entity_type=exc.entity_type or entity_type,
            entity_ref=exc.entity_ref or entity_ref,
            connection_id=exc.connection_id or connection_id,
            details=exc.details,
            payload=payload,
        )
    if isinstance(exc, MappingError):
        return StepFailure(
            kind="mapping",
            code="mapping_error",
            message=str(exc),
            entity_type=exc.entity or entity_type,
            entity_ref=entity_ref,
            connection_id=connection_id,
            details={"problems": exc.problems, "source": exc.source},
            payload=payload,
        )
    if isinstance(exc, ConnectorError):
        code = exc.kind
        if exc.kind in ("validation", "conflict") and rejection_code:
            code = rejection_code
        return StepFailure(
            kind="connector",
            code=code,
            message=exc.message,
            entity_type=entity_type,
            entity_ref=entity_ref,
            connection_id=connection_id,
            details={"error_kind": exc.kind, "operation": exc.operation},
            vendor_error=_json_safe(exc.as_dict()),
            payload=payload,
        )
    return StepFailure(
        kind="internal",
        code="internal_error",
        message=f"{type(exc).__name__}: {exc}"[:1000],
        entity_type=entity_type,
        entity_ref=entity_ref,
        connection_id=connection_id,
        payload=payload,
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
