"""Contracts and amendments: the CRM's closed-won deals, at their current contract value,
against what the ERP has contracted for them: the billing plan of the deal's project (job).

Source, Salesforce (`crm_deals`): won Opportunities (`won_opportunities`) and Approved
Contract_Amendment__c records (`approved_amendments`), by SOQL through the client, all pages.
An incremental pull takes the deals whose SystemModstamp, or one of whose approved
amendments', is at or after the watermark, and reads those deals (`get_opportunities`) with
all their approved amendments (`approved_amendments_of`). A deal's contract value is the
New_Total_Value__c of its latest approved amendment (latest Effective_Date__c, then the
latest created), else its Amount: what update-billing-plan makes the ERP's billing plan
(`integrations.workflows.billing_plan`), and what the hand-off put there before any
amendment. The date is the deal's CloseDate, the currency its CurrencyIsoCode, the legal
entity its Legal_Entity__c.

Target, NetSuite (`erp_contracts`): per job (project) created for a deal, the total of its
active billing milestone lines (`customrecord_tl_billing_milestone`, what `upsert_billing_plan`
writes; lines a later plan dropped are inactive and do not count), in the lines' currency;
the date is the job's startDate (the hand-off starts the project on the close date); the
legal entity the job's subsidiary through the legal-entity binding. Incremental: the jobs
changed since the watermark and the jobs whose milestone lines changed (an amendment
re-plans the lines, not the job), each read with all its active lines. Jobs are keyed as in
the projects comparison (reconciliation.pullers.projects.read_jobs).

Key: `deal:<Opportunity Id>`, the project key of the deal.

Scope: a deal belongs in the definition's ERP when its project is bound there, or when
today's route for project documents of its legal entity leads there.

Status, one vocabulary: `active` | `inactive`. A closed-won deal is an `active` contract (the
CRM has no other state for it; a deal no longer won leaves the snapshot at the next full
pull); the ERP job's `isInactive` makes its contract `inactive`.

Amounts are compared to the cent after conversion into the legal entity's currency (the
snapshot does it); `original_amount` and `amendment` are shown beside the CRM's value.

Validation: as for customers (see reconciliation.pullers.customers): a row that is not what
the vendor's schema guarantees (an amount or date that does not parse, say) raises
ResponseShapeError; empty optional values compare as empty.

Re-sync (`resync`): for a deal with an approved amendment, its update-billing-plan run (the
latest amendment's) runs again, or is started when the amendment never reached Throughline;
for a deal without one, the hand-off's steps that write the contract (read the deal, push the
job and its billing plan, post the revenue schedule) run again, all through
`integrations.services`. Not fixed by a re-sync: a job the ERP made inactive, copies, jobs
Throughline did not create.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from integrations.choices import ErpDocument
from integrations.models import SyncRun
from integrations.workflows.billing_plan import WORKFLOW as UPDATE_BILLING_PLAN

from ..models import Definition
from ..pulling import PullContext
from ..records import PulledRecord
from . import reruns
from .projects import KEY_PREFIX, read_jobs
from .scoping import ErpScope, external_ids_of
from .values import (
    amount,
    day,
    need_record,
    newest,
    salesforce_stamp,
    shape_error,
    text,
    utc_stamp,
)

ENTITY = "project"
ACTIVE, INACTIVE = "active", "inactive"
CRM_OPERATION = "reconciliation.contracts.crm"
ERP_OPERATION = "reconciliation.contracts.erp"
#: the hand-off steps that write a deal's contract into the ERP
CONTRACT_STEPS = ["fetch_deal", "push_contract_to_erp", "post_revenue_schedule"]
AMENDMENT_STEPS = ["load_amendment", "update_psa_plan", "update_erp_plan", "update_revenue"]


# -- source: Salesforce deals and amendments --------------------------------------------------
def crm_deals(ctx: PullContext) -> dt.datetime | None:
    """Pull the closed-won deals at their current contract value (see the module docstring)."""
    client = ctx.client
    if ctx.full:
        deals: list[Any] = list(client.won_opportunities())
        amendments: list[Any] = list(client.approved_amendments())
    else:
        changed = {need_record(CRM_OPERATION, d, "Id") for d in client.won_opportunities(ctx.since)}
        for record in client.approved_amendments(ctx.since):
            rid = need_record(CRM_OPERATION, record, "Id")
            changed.add(text(CRM_OPERATION, record, "Opportunity__c", rid))
        changed.discard("")
        ids = sorted(changed)
        deals = [d for d in client.get_opportunities(ids).values() if d.get("IsWon") is True]
        amendments = list(client.approved_amendments_of(ids)) if ids else []
    latest_amendment = _latest_amendments(amendments)
    erp = ctx.definition.target
    scope = ErpScope(erp)
    keys = {f"{KEY_PREFIX}{need_record(CRM_OPERATION, d, 'Id')}" for d in deals}
    in_erp = external_ids_of(erp, ENTITY, keys)
    latest: dt.datetime | None = None
    for deal in deals:
        deal_id = need_record(CRM_OPERATION, deal, "Id")
        amendment = latest_amendment.get(deal_id)
        record = _deal_record(deal, deal_id, amendment)
        latest = newest(latest, record.modified_at)
        if record.key in in_erp or scope.routes_here(record.legal_entity, ErpDocument.PROJECT):
            ctx.emit(record)
    return latest


@dataclass(frozen=True, order=True)
class _Amendment:
    """An approved amendment, ordered by when it takes effect (then its auto number)."""

    effective: dt.date
    name: str
    id: str
    value: Decimal = field(compare=False)
    modified: dt.datetime | None = field(compare=False)


def _latest_amendments(records: list[Any]) -> dict[str, _Amendment]:
    """Per deal: its latest approved amendment (latest effective date, then the latest
    numbered: the one in force)."""
    latest: dict[str, _Amendment] = {}
    for record in records:
        rid = need_record(CRM_OPERATION, record, "Id")
        deal_id = text(CRM_OPERATION, record, "Opportunity__c", rid)
        if record.get("Status__c") != "Approved" or not deal_id:
            continue
        value = amount(CRM_OPERATION, record, "New_Total_Value__c", rid)
        effective = day(CRM_OPERATION, record, "Effective_Date__c", rid)
        if value is None or effective is None:
            raise shape_error(
                CRM_OPERATION, record, f"{rid}: an approved amendment without value or date"
            )
        candidate = _Amendment(
            effective=effective,
            name=text(CRM_OPERATION, record, "Name", rid),
            id=rid,
            value=value,
            modified=salesforce_stamp(CRM_OPERATION, record, "SystemModstamp", rid),
        )
        if deal_id not in latest or candidate > latest[deal_id]:
            latest[deal_id] = candidate
    return latest


def _deal_record(deal: dict[str, Any], deal_id: str, amendment: _Amendment | None) -> Any:
    original = amount(CRM_OPERATION, deal, "Amount", deal_id)
    modified = newest(
        salesforce_stamp(CRM_OPERATION, deal, "SystemModstamp", deal_id),
        amendment.modified if amendment else None,
    )
    return PulledRecord(
        key=f"{KEY_PREFIX}{deal_id}",
        native_id=deal_id,
        legal_entity=text(CRM_OPERATION, deal, "Legal_Entity__c", deal_id),
        currency=text(CRM_OPERATION, deal, "CurrencyIsoCode", deal_id).upper(),
        amount=amendment.value if amendment else original,
        status=ACTIVE,
        day=day(CRM_OPERATION, deal, "CloseDate", deal_id),
        fields={
            "name": text(CRM_OPERATION, deal, "Name", deal_id),
            "original_amount": "" if original is None else str(original),
            "amendment": (amendment.name or amendment.id) if amendment else "",
        },
        modified_at=modified,
    )


# -- target: NetSuite jobs and their billing plans --------------------------------------------
def erp_contracts(ctx: PullContext) -> dt.datetime | None:
    """Pull each job's billing-plan total (see the module docstring)."""
    client = ctx.client
    if ctx.full:
        rows = client.jobs_changed_since(None)
    else:
        changed = {
            need_record(ERP_OPERATION, r, "id") for r in client.jobs_changed_since(ctx.since)
        }
        for line in client.billing_milestones_changed_since(ctx.since):
            rid = need_record(ERP_OPERATION, line, "id")
            changed.add(text(ERP_OPERATION, line, "custrecord_tl_bm_job", rid))
        changed.discard("")
        rows = client.jobs_by_id(sorted(changed)) if changed else []
    jobs = read_jobs(ctx.connection, rows, ERP_OPERATION)
    plans = _plans(client.billing_milestones_of([job.id for job in jobs]) if jobs else [])
    latest: dt.datetime | None = None
    for job in jobs:
        total, currencies, lines, modified = plans.get(job.id, (Decimal(0), set(), 0, None))
        modified = newest(job.modified, modified)
        latest = newest(latest, modified)
        fields = {"lines": str(lines), "external_id": job.external_id}
        if len(currencies) > 1:
            fields["problem"] = (
                f"billing lines in several currencies: {', '.join(sorted(currencies))}"
            )
        ctx.emit(
            PulledRecord(
                key=job.key,
                native_id=job.id,
                legal_entity=job.legal_entity,
                currency=min(currencies) if currencies else "",
                amount=total,
                status=INACTIVE if job.inactive else ACTIVE,
                day=job.start,
                fields=fields,
                modified_at=modified,
            )
        )
    return latest


def _plans(rows: list[Any]) -> dict[str, tuple[Decimal, set[str], int, dt.datetime | None]]:
    """Per job: (total of its active lines, their currencies, how many, newest change)."""
    plans: dict[str, tuple[Decimal, set[str], int, dt.datetime | None]] = {}
    for row in rows:
        rid = need_record(ERP_OPERATION, row, "id")
        job_id = text(ERP_OPERATION, row, "custrecord_tl_bm_job", rid)
        line = amount(ERP_OPERATION, row, "custrecord_tl_bm_amount", rid) or Decimal(0)
        currency = text(ERP_OPERATION, row, "custrecord_tl_bm_currency", rid).upper()
        stamp = utc_stamp(ERP_OPERATION, row, "lastmodified", rid)
        total, currencies, count, modified = plans.get(job_id, (Decimal(0), set(), 0, None))
        plans[job_id] = (
            total + line,
            currencies | ({currency} if currency else set()),
            count + 1,
            newest(modified, stamp),
        )
    return plans


# -- re-sync ------------------------------------------------------------------------------------
def resync(definition: Definition, keys: list[str]) -> dict[str, str]:
    """Bring these deals' contracts in the ERP into step (see the module docstring); what
    happened to each key, in words."""
    from integrations.connectors.registry import build_client

    outcomes: dict[str, str] = {}
    deals: dict[str, str] = {}  # opportunity id -> key
    for key in dict.fromkeys(keys):
        if key.startswith(KEY_PREFIX):
            deals[key[len(KEY_PREFIX) :]] = key
        else:
            outcomes[key] = "not a contract Throughline created: nothing to re-sync"
    if not deals:
        return outcomes
    with build_client(definition.source) as client:
        latest = _latest_amendments(list(client.approved_amendments_of(sorted(deals))))
    for deal_id, key in deals.items():
        reason = f"reconciliation re-sync {key}"
        amendment = latest.get(deal_id)
        if amendment is not None:
            correlation = f"amendment:{amendment.id}"
            run = SyncRun.objects.filter(
                workflow=UPDATE_BILLING_PLAN, correlation_id=correlation
            ).first()
            if run is None:
                outcomes[key] = reruns.start(
                    UPDATE_BILLING_PLAN,
                    correlation,
                    {"amendment_id": amendment.id, "opportunity_id": deal_id},
                    crm=definition.source,
                    business_key=key,
                )
            else:
                outcomes[key] = reruns.rerun(run, AMENDMENT_STEPS, reason=reason)
            continue
        run = reruns.handoff(key)
        if run is None:
            outcomes[key] = reruns.start(
                reruns.SERVICE_ENGAGEMENT, key, {"Id": deal_id}, crm=definition.source
            )
        else:
            outcomes[key] = reruns.rerun(run, CONTRACT_STEPS, reason=reason)
    return outcomes
