"""Customers: the CRM's accounts that have a closed-won deal against the ERP's customers.

Source, Salesforce (`crm_accounts`): the won Opportunities with their Account's fields, by
SOQL through the client (`won_opportunities`, all pages through nextRecordsUrl). An
incremental pull takes the accounts whose own SystemModstamp, or one of whose won deals',
is at or after the watermark, then reads all the won deals of those accounts (a customer is
judged on all its deals). Accounts without a won deal are not customers and are not pulled;
an account that lost its last won deal leaves the snapshot at the next full pull.

Target, NetSuite (`erp_customers`): customers by SuiteQL (`customers_changed_since`,
incremental by lastmodifieddate), each read once more for its tax registration (SuiteQL
serves none): one GET per customer changed.

Key: `crm-account:<Account Id>`, the customer key of the erp_customers workflow
(`integrations.workflows.erp_customers.customer_key`). In the ERP it comes from the
customer binding (entity type "customer"); a customer whose binding is gone but which carries
Throughline's external id (`TL-<Account Id>`) keeps that key; any other customer is keyed
`erp-customer:<internal id>`, so it shows as missing in source.

Scope: an account belongs in the definition's ERP when its customer is bound there, or when
today's route for one of its won deals' legal entities sends customers or projects there
(the project step creates the customer in the project's ERP too).

Compared, beyond presence:
- status, one vocabulary: `active` | `inactive`. The CRM has no standard active flag on an
  Account: an account with a closed-won deal is an `active` customer. The ERP's `isInactive`
  makes it `inactive`. The ERP owns the customer master: a customer it made inactive is a
  difference for people, which a re-sync does not undo.
- name: Account.Name vs companyName.
- country as the sync carries it: the customer's country reaches the ERP only as the nexus
  country of its tax registration (`customer_to_netsuite`), so the CRM side is the
  BillingCountry of an account with a VAT number (empty without one) and the ERP side the
  country of the customer's first tax registration.
Shown with them (compared once the catalogue names them): `legal_entity` (the legal entity of
the account's first won deal, whose subsidiary the customer was created in; the ERP's
subsidiary through the legal-entity binding) and `currency` (the account's, else that deal's;
the ERP customer's currency).

Validation: a vendor row that is not what the vendor's schema guarantees (not an object, no
id, a timestamp or date that does not parse, a boolean that is not one) raises
ResponseShapeError naming the record and field: the run fails with that reason and IT's queue
gets it, rather than a half-read side passing for missing records. Values the vendor may
legitimately leave empty are compared as empty. An account the CRM mapping refuses (a
country that is not an ISO code, say) is compared with its raw values and the mapping's
complaint under `problem`.

Re-sync (`resync`): unbinds the ERP customer and runs the customer part of the account's
create-service-engagement run again (read the deal, check the legal entity, upsert the
customer by external id, bind it) through `integrations.services.rerun_steps`: a renamed or
deleted customer is written again from the CRM. An account whose deal has no run yet gets
its run started (the upsert replaces the tax registration, so a changed country is written
again too). Not fixed by a re-sync: a status the ERP set, copies in the ERP, and ERP
customers Throughline did not create.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from integrations import bindings
from integrations.canonical.errors import MappingError
from integrations.choices import ErpDocument, RunStatus
from integrations.connectors.registry import build_client
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import SyncRun
from integrations.routing import erp_for

from ..models import Definition
from ..pulling import PullContext
from ..records import PulledRecord
from . import reruns
from .scoping import ErpScope, currency_codes, external_ids_of, keys_of
from .values import (
    day,
    flag,
    need_record,
    newest,
    salesforce_stamp,
    shape_error,
    text,
    utc_stamp,
)

logger = logging.getLogger(__name__)

ENTITY = "customer"
KEY_PREFIX = "crm-account:"
#: the external id Throughline gives an ERP customer (erp_customers.ensure_customers)
EXTERNAL_PREFIX = "TL-"
ACTIVE, INACTIVE = "active", "inactive"
CRM_OPERATION = "reconciliation.customers.crm"
ERP_OPERATION = "reconciliation.customers.erp"
#: the steps of create-service-engagement that write the customer
CUSTOMER_STEPS = ["fetch_deal", "check_legal_entity", "ensure_erp_customer"]


def customer_key(account_id: str) -> str:
    return f"{KEY_PREFIX}{account_id}"


# -- source: Salesforce accounts --------------------------------------------------------------
@dataclass
class _Account:
    """One account as its won deals show it."""

    account_id: str
    account: dict[str, Any]
    modified: dt.datetime | None
    #: (close date, deal id, legal entity, currency) of each won deal
    deals: list[tuple[dt.date, str, str, str]] = field(default_factory=list)


def crm_accounts(ctx: PullContext) -> dt.datetime | None:
    """Pull the accounts with a closed-won deal (see the module docstring)."""
    client = ctx.client
    if ctx.full:
        deals = client.won_opportunities()
    else:
        changed = {
            _account_id(deal)
            for by_account in (False, True)
            for deal in client.won_opportunities(ctx.since, by_account=by_account)
        }
        changed.discard("")
        deals = client.won_opportunities_of_accounts(sorted(changed)) if changed else iter(())
    accounts: dict[str, _Account] = {}
    for deal in deals:
        _add_deal(accounts, deal)
    scope = ErpScope(ctx.definition.target)
    already = external_ids_of(ctx.definition.target, ENTITY, [customer_key(a) for a in accounts])
    latest: dt.datetime | None = None
    for account in accounts.values():
        latest = newest(latest, account.modified)
        key = customer_key(account.account_id)
        # a deal without a legal entity goes where unrouted documents go: the primary ERP
        entities = {le for _close, _id, le, _cur in account.deals}
        in_scope = key in already or any(
            scope.routes_here(le, ErpDocument.CUSTOMER, ErpDocument.PROJECT) for le in entities
        )
        if not in_scope:
            continue
        ctx.emit(_account_record(account, key))
    return latest


def _account_id(deal: Any) -> str:
    deal_id = need_record(CRM_OPERATION, deal, "Id")
    return text(CRM_OPERATION, deal, "AccountId", deal_id)


def _add_deal(accounts: dict[str, _Account], deal: Any) -> None:
    deal_id = need_record(CRM_OPERATION, deal, "Id")
    account_id = text(CRM_OPERATION, deal, "AccountId", deal_id)
    account = deal.get("Account")
    if not account_id or account is None:
        # a won deal without an account (or whose account was deleted) names no customer
        logger.info("reconciliation: won deal %s has no account; not a customer", deal_id)
        return
    if not isinstance(account, dict):
        raise shape_error(CRM_OPERATION, deal, f"{deal_id}: Account is not an object")
    close = day(CRM_OPERATION, deal, "CloseDate", deal_id) or dt.date.max
    modified = newest(
        salesforce_stamp(CRM_OPERATION, deal, "SystemModstamp", deal_id),
        salesforce_stamp(CRM_OPERATION, account, "SystemModstamp", deal_id),
    )
    entry = accounts.setdefault(account_id, _Account(account_id, account, None))
    entry.modified = newest(entry.modified, modified)
    entry.deals.append(
        (
            close,
            deal_id,
            text(CRM_OPERATION, deal, "Legal_Entity__c", deal_id),
            text(CRM_OPERATION, deal, "CurrencyIsoCode", deal_id).upper(),
        )
    )


def _account_record(account: _Account, key: str) -> PulledRecord:
    raw = account.account
    _close, _deal, legal_entity, deal_currency = min(account.deals)
    fields: dict[str, str] = {}
    try:
        customer = salesforce_mapping.customer_from_salesforce(raw, account.account_id)
        name, country = customer.name, customer.country or ""
        vat, currency = customer.tax_registration, customer.currency or ""
    except MappingError as exc:
        rid = account.account_id
        name = text(CRM_OPERATION, raw, "Name", rid)
        country = text(CRM_OPERATION, raw, "BillingCountry", rid).upper()
        vat = text(CRM_OPERATION, raw, "VAT_Number__c", rid) or None
        currency = text(CRM_OPERATION, raw, "CurrencyIsoCode", rid).upper()
        fields["problem"] = "; ".join(
            f"{p.get('vendor_field') or p.get('field')}: {p.get('problem')}" for p in exc.problems
        )
    currency = currency or deal_currency
    fields.update(
        {
            "name": name,
            "country": country if vat else "",
            "legal_entity": legal_entity,
            "currency": currency,
        }
    )
    return PulledRecord(
        key=key,
        native_id=account.account_id,
        legal_entity=legal_entity,
        currency=currency,
        status=ACTIVE,
        fields=fields,
        modified_at=account.modified,
    )


# -- target: NetSuite customers ---------------------------------------------------------------
def erp_customers(ctx: PullContext) -> dt.datetime | None:
    """Pull the ERP's customers (see the module docstring)."""
    client = ctx.client
    rows = client.customers_changed_since(ctx.since)
    ids = [need_record(ERP_OPERATION, row, "id") for row in rows]
    keys = keys_of(ctx.connection, ENTITY, ids)
    entities = keys_of(
        ctx.connection, "legal_entity", {text(ERP_OPERATION, r, "subsidiary", "") for r in rows}
    )
    currencies = currency_codes(client) if rows else {}
    countries = client.customer_tax_countries(ids) if ids else {}
    latest: dt.datetime | None = None
    for rid, row in zip(ids, rows, strict=True):
        modified = utc_stamp(ERP_OPERATION, row, "lastmodifieddate", rid)
        latest = newest(latest, modified)
        external = text(ERP_OPERATION, row, "externalid", rid)
        key = keys.get(rid) or _key_from_external_id(external) or f"erp-customer:{rid}"
        subsidiary = text(ERP_OPERATION, row, "subsidiary", rid)
        currency = currencies.get(text(ERP_OPERATION, row, "currency", rid), "")
        legal_entity = entities.get(subsidiary, "")
        ctx.emit(
            PulledRecord(
                key=key,
                native_id=rid,
                legal_entity=legal_entity,
                currency=currency,
                status=INACTIVE if flag(ERP_OPERATION, row, "isinactive", rid) else ACTIVE,
                fields={
                    "name": text(ERP_OPERATION, row, "companyname", rid),
                    "country": countries.get(rid) or "",
                    "legal_entity": legal_entity,
                    "currency": currency,
                    "external_id": external,
                },
                modified_at=modified,
            )
        )
    return latest


def _key_from_external_id(external_id: str) -> str | None:
    """The key of a customer Throughline created (external id `TL-<Account Id>`)."""
    if external_id.startswith(EXTERNAL_PREFIX) and len(external_id) > len(EXTERNAL_PREFIX):
        return customer_key(external_id[len(EXTERNAL_PREFIX) :])
    return None


# -- re-sync ------------------------------------------------------------------------------------
def resync(definition: Definition, keys: list[str]) -> dict[str, str]:
    """Write these accounts' customers into the definition's ERP again (see the module
    docstring); what happened to each key, in words."""
    erp = definition.target
    outcomes: dict[str, str] = {}
    waiting: dict[str, str] = {}  # account id -> key, for accounts without a run
    for key in dict.fromkeys(keys):
        if not key.startswith(KEY_PREFIX):
            outcomes[key] = "not a customer Throughline created: nothing to re-sync"
            continue
        account_id = key[len(KEY_PREFIX) :]
        run = (
            SyncRun.objects.filter(
                workflow=reruns.SERVICE_ENGAGEMENT,
                context__fetch_deal__opportunity__customer__source_id=account_id,
            )
            .order_by("-pk")
            .first()
        )
        if run is None:
            waiting[account_id] = key
            continue
        if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
            outcomes[key] = f"run {run.pk} ({run.workflow}) is already under way"
            continue
        if erp_for(run.legal_entity_code, ErpDocument.CUSTOMER).pk != erp.pk:
            outcomes[key] = (
                f"{erp.name} receives this customer with the project: re-sync the project"
            )
            continue
        bindings.unbind(erp, ENTITY, key)  # the step looks it up by external id and binds it
        outcomes[key] = reruns.rerun(run, CUSTOMER_STEPS, reason=f"reconciliation re-sync {key}")
    if waiting:
        outcomes.update(_start_handoffs(definition, waiting))
    return outcomes


def _start_handoffs(definition: Definition, waiting: dict[str, str]) -> dict[str, str]:
    """Start the hand-off of a won deal of each account that has no run yet."""
    outcomes = {
        key: "no closed-won deal in the CRM: nothing to re-sync" for key in waiting.values()
    }
    with build_client(definition.source) as client:
        first: dict[str, tuple[str, str]] = {}
        for deal in client.won_opportunities_of_accounts(sorted(waiting)):
            deal_id = need_record(CRM_OPERATION, deal, "Id")
            account_id = text(CRM_OPERATION, deal, "AccountId", deal_id)
            close = text(CRM_OPERATION, deal, "CloseDate", deal_id)
            if account_id in waiting and (close, deal_id) < first.get(account_id, ("~", "")):
                first[account_id] = (close, deal_id)
    for account_id, (_close, deal_id) in first.items():
        outcomes[waiting[account_id]] = reruns.start(
            reruns.SERVICE_ENGAGEMENT,
            f"deal:{deal_id}",
            {"Id": deal_id},
            crm=definition.source,
        )
    return outcomes
