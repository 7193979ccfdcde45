"""The ERP customer of a deal, in whichever ERP a step writes to: found by binding, else
upserted by external id (so a retry or a second ERP never creates it twice). A batch of deals
looks its customers up in one query and upserts the missing ones in one bulk call; deals of
the same customer share one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console import audit
from integrations import bindings, timeline
from integrations.canonical import schemas
from integrations.connectors.errors import ValidationError
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.models import Connection

from .base import StepContext
from .failures import StepError


def customer_key(opportunity: schemas.Opportunity) -> str:
    return f"crm-account:{opportunity.customer.source_id}"


def subsidiary_of(erp: Connection, legal_entity_code: str) -> str:
    subsidiary_id = bindings.lookup(erp, "legal_entity", legal_entity_code)
    if subsidiary_id is None:
        raise StepError(
            "legal_entity_not_in_erp",
            f"Legal entity {legal_entity_code} has no subsidiary bound in {erp.name}.",
            entity_type="legal_entity",
            entity_ref=legal_entity_code,
            connection_id=erp.pk,
        )
    return subsidiary_id


def currency_ids(ctx: StepContext, erp: Connection) -> dict[str, str]:
    """The ERP's currencies (ISO code -> internal id), read once per batch."""

    def read() -> dict[str, str]:
        client = ctx.client(erp)
        return netsuite_mapping.currency_ids(client.suiteql("SELECT id, symbol FROM currency"))

    return ctx.batch.remember(("currencies", erp.pk), read)


def currency_id(currencies: dict[str, str], currency: str, erp: Connection, ref: str) -> str:
    if currency not in currencies:
        raise StepError(
            "customer_rejected_by_erp",
            f"Currency {currency} is not set up in {erp.name}.",
            entity_type="customer",
            entity_ref=ref,
            connection_id=erp.pk,
        )
    return currencies[currency]


@dataclass(frozen=True)
class CustomerNeed:
    """One deal's customer to ensure in an ERP, with the ids its body needs."""

    ctx: StepContext
    opportunity: schemas.Opportunity
    subsidiary_id: str
    currencies: dict[str, str]


def ensure_customer(
    ctx: StepContext,
    erp: Connection,
    opportunity: schemas.Opportunity,
    *,
    subsidiary_id: str,
    currencies: dict[str, str],
) -> tuple[str, bool]:
    """The customer's internal id in `erp`, creating it there if needed: (id, created)."""
    (result,) = ensure_customers(erp, [CustomerNeed(ctx, opportunity, subsidiary_id, currencies)])
    if isinstance(result, Exception):
        raise result
    return result


def ensure_customers(
    erp: Connection, needs: list[CustomerNeed]
) -> list[tuple[str, bool] | Exception]:
    """`ensure_customer` for a batch: one result per need, in order ((id, created), or the
    exception that fails that deal only)."""
    keys = [customer_key(n.opportunity) for n in needs]
    bound = bindings.lookup_many(erp, "customer", keys)
    results: dict[int, tuple[str, bool] | Exception] = {}
    bodies: dict[str, dict[str, Any]] = {}  # external id -> body, once per customer
    waiting: dict[str, list[int]] = {}  # external id -> the needs it serves
    for index, (need, key) in enumerate(zip(needs, keys, strict=True)):
        if key in bound:
            results[index] = (bound[key], False)
            continue
        customer = need.opportunity.customer
        external_id = f"TL-{customer.source_id}"
        if external_id not in bodies:
            try:
                bodies[external_id] = netsuite_mapping.customer_to_netsuite(
                    customer,
                    external_id=external_id,
                    subsidiary_id=need.subsidiary_id,
                    currency_id=currency_id(
                        need.currencies,
                        customer.currency or need.opportunity.currency,
                        erp,
                        customer.source_id,
                    ),
                )
            except Exception as exc:  # this customer's data: its deals fail, not the batch
                results[index] = exc
                continue
        waiting.setdefault(external_id, []).append(index)
    if bodies:
        _upsert(erp, needs, keys, bodies, waiting, results)
    stamps = [
        (needs[i].ctx.run.business_key, "customer_ready")
        for i, r in results.items()
        if not isinstance(r, Exception)
    ]
    timeline.stamp_many(stamps, source=erp.name)
    return [results[i] for i in range(len(needs))]


def _upsert(
    erp: Connection,
    needs: list[CustomerNeed],
    keys: list[str],
    bodies: dict[str, dict[str, Any]],
    waiting: dict[str, list[int]],
    results: dict[int, tuple[str, bool] | Exception],
) -> None:
    serving = [needs[i].ctx for ids in waiting.values() for i in ids]
    client = serving[0].client(erp)
    try:
        with serving[0].batch.focus(serving):
            # the registration is replaced, not added again, when the customer exists
            outcomes = client.upsert_batch(
                "customer", list(bodies.values()), replace=("taxRegistration",)
            )
    except Exception as exc:
        for ids in waiting.values():
            for i in ids:
                results[i] = exc
        return
    created: dict[str, str] = {}
    events = []
    for external_id, outcome in zip(bodies, outcomes, strict=True):
        ids = waiting[external_id]
        if outcome.get("status") == "error":
            error = outcome.get("error") or {}
            failure = ValidationError(
                str(error.get("message") or "NetSuite refused the customer"),
                vendor_code=str(error.get("code") or "") or None,
                operation="netsuite.customer.bulk_upsert",
            )
            for i in ids:
                results[i] = failure
            continue
        internal_id = str(outcome["id"])
        created[keys[ids[0]]] = internal_id
        for position, i in enumerate(ids):
            results[i] = (internal_id, position == 0)
        first = needs[ids[0]]
        events.append(
            (
                "erp.customer.upserted",
                f"Customer {first.opportunity.customer.name} upserted in {erp.name} as "
                f"{internal_id}",
                first.ctx.run.correlation_id,
                {
                    "connection": erp.name,
                    "external_id": internal_id,
                    "idempotency_key": external_id,
                },
            )
        )
    bindings.bind_many(
        erp,
        "customer",
        created,
        runs={keys[waiting[e][0]]: needs[waiting[e][0]].ctx.run for e in waiting},
    )
    audit.record_many(events)
