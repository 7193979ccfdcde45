"""Inbound events: the one door through which outside systems hand work to Throughline
(vendor webhooks, iPaaS flows such as Boomi, MuleSoft or Workato, in-house apps).

Each event type names the canonical data it carries and the composite service it starts.
An event is validated, stored as received (accepted or rejected, so nothing is lost), and a
repeat of the same idempotency key returns the first outcome instead of starting work twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .choices import Trigger
from .models import Connection, InboundEvent, SyncRun
from .services import start_run
from .workflows.service_engagement import WORKFLOW as SERVICE_ENGAGEMENT

logger = logging.getLogger(__name__)


class EventRejected(Exception):
    """The event is not valid; `problems` lists what is wrong, field by field."""

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class DealClosedWon(BaseModel):
    """A deal won in a CRM: Throughline reads the deal itself from the CRM connection."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    opportunity_id: str = Field(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    crm_connection: int | None = None


@dataclass(frozen=True)
class EventType:
    name: str
    schema: type[BaseModel]
    #: starts the work; returns the run, or None when the event fans out to subscribers
    start: Callable[[BaseModel, str], SyncRun | None]
    description: str


def _start_service_engagement(data: BaseModel, source: str) -> SyncRun:
    assert isinstance(data, DealClosedWon)
    crm = None
    if data.crm_connection is not None:
        crm = Connection.objects.filter(pk=data.crm_connection, system="crm").first()
        if crm is None:
            raise EventRejected(
                "unknown CRM connection",
                [{"field": "crm_connection", "problem": "no CRM connection with this id"}],
            )
    run, _created = start_run(
        SERVICE_ENGAGEMENT,
        f"deal:{data.opportunity_id}",
        trigger=Trigger.API,
        source_connection=crm,
        payload={"Id": data.opportunity_id, "source": source},
    )
    return run


class AmendmentApproved(BaseModel):
    """A contract amendment approved in a CRM: Throughline reads it from the CRM."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    amendment_id: str = Field(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    opportunity_id: str = Field(default="", max_length=40, pattern=r"^[A-Za-z0-9_-]*$")
    crm_connection: int | None = None


def _start_billing_plan_update(data: BaseModel, source: str) -> SyncRun:
    from .workflows.billing_plan import WORKFLOW as UPDATE_BILLING_PLAN

    assert isinstance(data, AmendmentApproved)
    crm = Connection.objects.filter(pk=data.crm_connection, system="crm").first()
    run, _created = start_run(
        UPDATE_BILLING_PLAN,
        f"amendment:{data.amendment_id}",
        trigger=Trigger.API,
        source_connection=crm,
        payload={"amendment_id": data.amendment_id, "source": source},
        business_key=f"deal:{data.opportunity_id}" if data.opportunity_id else "",
    )
    return run


class MilestoneCompleted(BaseModel):
    """A billing milestone completed in a PSA (Throughline reads it from the PSA)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    psa_connection: int
    story_id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")


def _publish_milestone(data: BaseModel, source: str) -> None:
    from . import outbox

    assert isinstance(data, MilestoneCompleted)
    psa = Connection.objects.filter(pk=data.psa_connection, system="psa").first()
    if psa is None:
        raise EventRejected(
            "unknown PSA connection",
            [{"field": "psa_connection", "problem": "no PSA connection with this id"}],
        )
    payload = {
        "psa_connection": psa.pk,
        "story_id": data.story_id,
        "workspace_id": "",
        "event_id": f"api:{source}",
        "deal_key": "",
    }
    outbox.publish("milestone.completed", payload, key=f"milestone:{psa.pk}:{data.story_id}")
    return None


EVENT_TYPES: dict[str, EventType] = {
    "opportunity.closed_won": EventType(
        "opportunity.closed_won",
        DealClosedWon,
        _start_service_engagement,
        "A deal was won: create the service engagement (ERP customer, PSA project, write-back).",
    ),
    "contract_amendment.approved": EventType(
        "contract_amendment.approved",
        AmendmentApproved,
        _start_billing_plan_update,
        "A contract amendment was approved: update the budget and milestones in the PSA and "
        "the billing plan and revenue schedule in the ERP.",
    ),
    "milestone.completed": EventType(
        "milestone.completed",
        MilestoneCompleted,
        _publish_milestone,
        "A billing milestone was completed: invoice it (and tell the analytics store and the "
        "customer notification endpoints); the run appears under /api/v1/runs/ with the "
        "correlation id milestone:<psa connection>:<story id>.",
    ),
}


def accept(
    event_type: str, data: Any, *, source: str, idempotency_key: str
) -> tuple[InboundEvent, bool]:
    """Validate and act on an event; returns (event, created). Raises EventRejected after
    recording the rejection."""
    existing = InboundEvent.objects.filter(
        idempotency_key=idempotency_key, status=InboundEvent.Status.ACCEPTED
    ).first()
    if existing is not None:
        return existing, False
    kind = EVENT_TYPES.get(event_type)
    try:
        if kind is None:
            raise EventRejected(
                f"unknown event type {event_type!r}",
                [{"field": "type", "problem": f"one of {', '.join(sorted(EVENT_TYPES))}"}],
            )
        try:
            parsed = kind.schema.model_validate(data)
        except ValidationError as exc:
            raise EventRejected(
                "the event's data is not valid",
                [
                    {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                    for e in exc.errors(include_url=False, include_input=False)
                ],
            ) from None
        with transaction.atomic():
            run = kind.start(parsed, source)
            event = InboundEvent.objects.create(
                source=source[:120],
                event_type=event_type,
                idempotency_key=idempotency_key,
                payload=data if isinstance(data, dict) else {"data": data},
                status=InboundEvent.Status.ACCEPTED,
                run=run,
            )
        return event, True
    except EventRejected as exc:
        _record_rejection(event_type, data, source, idempotency_key, exc)
        raise
    except IntegrityError:  # the same key raced us: the first one wins
        first = InboundEvent.objects.get(
            idempotency_key=idempotency_key, status=InboundEvent.Status.ACCEPTED
        )
        return first, False


def _record_rejection(
    event_type: str, data: Any, source: str, key: str, exc: EventRejected
) -> None:
    InboundEvent.objects.create(
        source=source[:120],
        event_type=event_type[:80],
        idempotency_key=key[:200],
        payload=data if isinstance(data, dict) else {"data": str(data)[:10000]},
        status=InboundEvent.Status.REJECTED,
        error=f"{exc}: {exc.problems}"[:1000],
    )
    logger.warning("inbound %s from %s rejected: %s", event_type, source, exc)
