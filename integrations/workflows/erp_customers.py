"""The ERP customer of a deal, in whichever ERP a step writes to: found by binding, else
upserted by external id (so a retry or a second ERP never creates it twice)."""

from __future__ import annotations

from console import audit
from integrations import bindings, timeline
from integrations.canonical import schemas
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
    client = ctx.client(erp)
    return netsuite_mapping.currency_ids(client.suiteql("SELECT id, symbol FROM currency"))


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


def ensure_customer(
    ctx: StepContext,
    erp: Connection,
    opportunity: schemas.Opportunity,
    *,
    subsidiary_id: str,
    currencies: dict[str, str],
) -> tuple[str, bool]:
    """The customer's internal id in `erp`, creating it there if needed: (id, created)."""
    customer = opportunity.customer
    key = customer_key(opportunity)
    bound = bindings.lookup(erp, "customer", key)
    if bound:
        timeline.stamp(ctx.run.business_key, "customer_ready", source=erp.name)
        return bound, False
    external_id = f"TL-{customer.source_id}"
    body = netsuite_mapping.customer_to_netsuite(
        customer,
        external_id=external_id,
        subsidiary_id=subsidiary_id,
        currency_id=currency_id(
            currencies, customer.currency or opportunity.currency, erp, customer.source_id
        ),
    )
    internal_id = ctx.client(erp).upsert_by_external_id("customer", external_id, body)
    bindings.bind(erp, "customer", key, internal_id, run=ctx.run)
    timeline.stamp(ctx.run.business_key, "customer_ready", source=erp.name)
    audit.record(
        "erp.customer.upserted",
        f"Customer {customer.name} upserted in {erp.name} as {internal_id}",
        correlation_id=ctx.run.correlation_id,
        connection=erp.name,
        external_id=internal_id,
        idempotency_key=external_id,
    )
    return internal_id, True
