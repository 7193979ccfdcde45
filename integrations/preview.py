"""Dry runs for the console's pre-flight check before a retry: nothing here writes, neither
to a vendor nor to Throughline's database (no bindings, no timeline stamps, no telemetry).

- `lookup_targets(run)`: do the records the run writes already exist in their targets? Each
  is looked up by the key the step writes it under (an external id, a reference), the same
  key a retry uses to find it instead of creating another.
- `preview_run(run, restart=...)`: what the next attempt would send: the step's request
  body, built with the current mapping from the data that attempt will use (the earlier
  steps' stored outputs for a retry; the record read again from its source, with a person's
  corrections, for a restart). Read-only steps (checks) are simply run: they only read.

Workflows and steps without a lookup or a preview say so rather than guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations import bindings, corrections
from integrations.canonical import schemas
from integrations.choices import ErpDocument, StepStatus, SystemKind
from integrations.connectors.kantata import mapping as kantata_mapping
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import Connection, ProjectTemplate, SyncRun
from integrations.workflows import erp_customers, milestone_billing, service_engagement
from integrations.workflows.base import Batch, StepContext
from integrations.workflows.failures import StepError, describe_failure
from integrations.workflows.planning import plan_project, revenue_schedule
from integrations.workflows.registry import get_workflow

SERVICE_ENGAGEMENT = service_engagement.WORKFLOW
MILESTONE_BILLING = milestone_billing.WORKFLOW


@dataclass(frozen=True)
class TargetLookup:
    """One record looked up in a target system: found (with its id), not found, or the
    lookup failed (`found` None, `error` says why)."""

    connection: str
    record: str
    key: str
    found: bool | None
    external_id: str = ""
    error: str = ""


@dataclass
class StepPreview:
    """What one step would do on the next attempt."""

    step: str
    #: what it would send: (what, the request body)
    sends: list[tuple[str, Any]] = field(default_factory=list)
    #: what it would read or use (the deal as mapped, a checked legal entity)
    uses: Any = None
    #: why the attempt would fail again (a mapping error, a failed check); "" when none
    problem: str = ""
    note: str = ""

    @property
    def sends_json(self) -> list[tuple[str, str]]:
        return [(what, _pretty(body)) for what, body in self.sends]

    @property
    def uses_json(self) -> str:
        return _pretty(self.uses) if self.uses is not None else ""


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _context(run: SyncRun) -> StepContext:
    # a fresh copy: routing a dry run must not touch the caller's instance
    copy = SyncRun.objects.select_related("source_connection").get(pk=run.pk)
    return StepContext(run=copy, batch=Batch())


# -- lookups ------------------------------------------------------------------------------


def _look(
    connection: Callable[[], Connection],
    record: str,
    key: str,
    find: Callable[[Any, str], dict[str, Any] | None],
    ctx: StepContext,
) -> TargetLookup:
    name = ""
    try:
        conn = connection()
        name = conn.name
        found = find(ctx.client(conn), key)
    except Exception as exc:  # a lookup that cannot be made is reported, not raised
        return TargetLookup(name or "—", record, key, None, error=_message(exc))
    if found is None:
        return TargetLookup(name, record, key, False)
    return TargetLookup(name, record, key, True, external_id=str(found.get("id", "")))


def _engagement_lookups(ctx: StepContext) -> list[TargetLookup]:
    deal = service_engagement.deal_id(ctx)
    fetched = ctx.run.context.get("fetch_deal") or {}
    account = ((fetched.get("opportunity") or {}).get("customer") or {}).get("source_id")
    account = account or ctx.run.input.get("AccountId")
    lookups = [
        _look(
            lambda: ctx.connection(SystemKind.PSA),
            "Project workspace",
            f"deal:{deal}",
            lambda client, key: client.find_workspace_by_reference(key),
            ctx,
        )
    ]
    if account:
        lookups.append(
            _look(
                lambda: ctx.erp(ErpDocument.CUSTOMER),
                "Customer",
                f"TL-{account}",
                lambda client, key: client.find_by_external_id("customer", key),
                ctx,
            )
        )
    lookups.append(
        _look(
            lambda: ctx.erp(ErpDocument.PROJECT),
            "Project (job)",
            f"TL-PRJ-{deal}",
            lambda client, key: client.find_by_external_id("job", key),
            ctx,
        )
    )
    return lookups


def _billing_lookups(ctx: StepContext) -> list[TargetLookup]:
    if not {"psa_connection", "story_id"} <= set(ctx.run.input):
        return []
    return [
        _look(
            lambda: ctx.erp(ErpDocument.INVOICE),
            "Invoice",
            milestone_billing.invoice_key(ctx),
            lambda client, key: client.find_by_external_id("invoice", key),
            ctx,
        )
    ]


LOOKUPS: dict[str, Callable[[StepContext], list[TargetLookup]]] = {
    SERVICE_ENGAGEMENT: _engagement_lookups,
    MILESTONE_BILLING: _billing_lookups,
}


def lookup_targets(run: SyncRun) -> list[TargetLookup]:
    """The records `run` writes, looked up in their targets (empty: no lookup for this
    workflow)."""
    lookups = LOOKUPS.get(run.workflow)
    if lookups is None:
        return []
    ctx = _context(run)
    try:
        return lookups(ctx)
    finally:
        ctx.close()


# -- previews -----------------------------------------------------------------------------


def _fetch_deal(ctx: StepContext) -> StepPreview:
    """The deal read again from the CRM, the run's corrections laid over it, mapped."""
    crm = ctx.connection(SystemKind.CRM)
    deal = service_engagement.deal_id(ctx)
    record = ctx.client(crm).get_opportunities([deal]).get(deal)
    if record is None:
        return StepPreview("fetch_deal", problem=f"Opportunity {deal} does not exist in {crm}.")
    fixes = corrections.of(ctx.run)
    opp = salesforce_mapping.opportunity_from_salesforce(corrections.apply(record, fixes))
    ctx.outputs["fetch_deal"] = {"opportunity": opp.model_dump(mode="json")}
    ctx.run.legal_entity_code = opp.legal_entity_code  # the ERP routes use it
    note = f"Read again from {crm}"
    if fixes:
        note += f", with the corrections of {', '.join(sorted(fixes))}"
    problem = "" if opp.is_closed and opp.is_won else f"The deal is at stage {opp.stage!r}."
    return StepPreview(
        "fetch_deal", uses=opp.model_dump(mode="json"), note=note + ".", problem=problem
    )


def _template(opp: schemas.Opportunity) -> ProjectTemplate:
    template = ProjectTemplate.objects.filter(code=opp.project_template).first()
    if template is None:
        raise StepError(
            "project_template_not_found",
            f"Project template {opp.project_template!r} does not exist.",
        )
    return template


def _ensure_customer(ctx: StepContext) -> StepPreview:
    opp = service_engagement.opportunity(ctx)
    checked = ctx.output("check_legal_entity")
    erp = ctx.erp(ErpDocument.CUSTOMER)
    bound = bindings.lookup(erp, "customer", erp_customers.customer_key(opp))
    if bound:
        return StepPreview(
            "ensure_erp_customer",
            note=f"The customer is already bound to {erp} id {bound}: nothing is sent.",
        )
    customer = opp.customer
    external_id = f"TL-{customer.source_id}"
    body = netsuite_mapping.customer_to_netsuite(
        customer,
        external_id=external_id,
        subsidiary_id=checked["subsidiary_id"],
        currency_id=erp_customers.currency_id(
            checked["currency_ids"], customer.currency or opp.currency, erp, customer.source_id
        ),
    )
    return StepPreview(
        "ensure_erp_customer", sends=[(f"Customer upsert to {erp} ({external_id})", body)]
    )


def _provision(ctx: StepContext) -> StepPreview:
    opp = service_engagement.opportunity(ctx)
    template = _template(opp)
    project = plan_project(opp, template)
    psa = ctx.connection(SystemKind.PSA)
    workspace = kantata_mapping.workspace_from_project(
        project, marker=kantata_mapping.make_marker(project.key)
    )
    stories = [kantata_mapping.story_from_milestone(m) for m in project.milestones]
    return StepPreview(
        "provision_project",
        sends=[
            (f"Workspace in {psa} (reference {project.key})", workspace),
            (f"Milestones of the workspace ({len(stories)})", stories),
        ],
        note="The workspace is looked up by its reference first; it is created only when "
        "the lookup finds none.",
    )


def _plan(ctx: StepContext) -> tuple[schemas.Opportunity, ProjectTemplate, schemas.Project]:
    opp = service_engagement.opportunity(ctx)
    code = (ctx.outputs.get("provision_project") or {}).get("template") or opp.project_template
    template = _template(opp.model_copy(update={"project_template": code}))
    return opp, template, plan_project(opp, template)


def _push_contract(ctx: StepContext) -> StepPreview:
    opp, _, project = _plan(ctx)
    erp = ctx.erp(ErpDocument.PROJECT)
    customer_id = bindings.lookup(erp, "customer", erp_customers.customer_key(opp))
    erp_project = project.model_copy(update={"key": f"TL-PRJ-{opp.source_id}"})
    currencies = erp_customers.currency_ids(ctx, erp)
    job = netsuite_mapping.job_from_project(
        erp_project,
        customer_id=customer_id or "0",
        subsidiary_id=erp_customers.subsidiary_of(erp, opp.legal_entity_code),
        currency_id=erp_customers.currency_id(currencies, opp.currency, erp, project.key),
    )
    note = "" if customer_id else "The customer id is filled in once the customer exists."
    return StepPreview(
        "push_contract_to_erp",
        sends=[
            (f"Project (job) upsert to {erp} ({erp_project.key})", job),
            ("Billing plan lines", netsuite_mapping.billing_milestone_lines(erp_project)),
        ],
        note=note,
    )


def _revenue(ctx: StepContext) -> StepPreview:
    schedule = revenue_schedule(*_plan(ctx))
    erp = ctx.erp(ErpDocument.REVENUE_SCHEDULE)
    return StepPreview(
        "post_revenue_schedule",
        sends=[
            (
                f"Revenue schedule lines to {erp} ({schedule.contract_key})",
                netsuite_mapping.revenue_schedule_lines(schedule),
            )
        ],
    )


def _write_back(ctx: StepContext) -> StepPreview:
    fields = salesforce_mapping.opportunity_writeback(
        ctx.output("ensure_erp_customer")["erp_customer_id"],
        ctx.output("provision_project")["psa_project_id"],
    )
    crm = ctx.connection(SystemKind.CRM)
    return StepPreview(
        "write_back_crm",
        sends=[(f"Update of opportunity {service_engagement.deal_id(ctx)} in {crm}", fields)],
    )


def _invoice(ctx: StepContext) -> StepPreview:
    erp, invoice, body = milestone_billing.CreateInvoice().build(ctx)
    return StepPreview(
        "create_invoice",
        sends=[(f"Invoice upsert to {erp} ({invoice.key})", body)],
        note="An upsert by external id: an invoice that exists is updated, never duplicated.",
    )


def _run_check(workflow: str, name: str) -> Callable[[StepContext], StepPreview]:
    """A read-only step (a check) previewed by running it: it only reads."""

    def preview(ctx: StepContext) -> StepPreview:
        step = next(s for s in get_workflow(workflow).steps if s.name == name)
        output = step.run(ctx)
        ctx.outputs[name] = output
        return StepPreview(name, uses=output, note="A check: it reads and writes nothing.")

    return preview


#: steps that only read: a restart previews them on the way to the unfinished step
READS = {(SERVICE_ENGAGEMENT, "fetch_deal"), (SERVICE_ENGAGEMENT, "check_legal_entity")}

PREVIEWS: dict[tuple[str, str], Callable[[StepContext], StepPreview]] = {
    (SERVICE_ENGAGEMENT, "fetch_deal"): _fetch_deal,
    (SERVICE_ENGAGEMENT, "check_legal_entity"): _run_check(
        SERVICE_ENGAGEMENT, "check_legal_entity"
    ),
    (SERVICE_ENGAGEMENT, "ensure_erp_customer"): _ensure_customer,
    (SERVICE_ENGAGEMENT, "provision_project"): _provision,
    (SERVICE_ENGAGEMENT, "push_contract_to_erp"): _push_contract,
    (SERVICE_ENGAGEMENT, "post_revenue_schedule"): _revenue,
    (SERVICE_ENGAGEMENT, "write_back_crm"): _write_back,
    (MILESTONE_BILLING, "create_invoice"): _invoice,
}


def _message(exc: BaseException) -> str:
    return describe_failure(exc).message


def _preview_step(ctx: StepContext, workflow: str, name: str) -> StepPreview:
    preview = PREVIEWS.get((workflow, name))
    if preview is None:
        return StepPreview(name, note="No preview for this step: it runs as it is.")
    try:
        return preview(ctx)
    except Exception as exc:  # the attempt would fail the same way: say why
        return StepPreview(name, problem=_message(exc))


def preview_run(run: SyncRun, *, restart: bool = False) -> list[StepPreview]:
    """What the next attempt of `run` would do at its first unfinished step. A restart reads
    the source again first: the steps that only read (the fetch, the checks) up to that step
    are previewed too. Stops at the first step that would fail."""
    workflow = get_workflow(run.workflow)
    names = workflow.step_names()
    ctx = _context(run)
    try:
        records = {s.name: s for s in ctx.run.steps.all()}
        done = {n for n, r in records.items() if r.status == StepStatus.SUCCEEDED}
        for name in names:
            if name in done:
                ctx.outputs[name] = records[name].output
        target = next((n for n in names if n not in done), None)
        if restart:
            upto = names[: names.index(target) + 1] if target else names
            chosen = [n for n in upto if (run.workflow, n) in READS or n == target]
        else:
            chosen = [target] if target else []
        previews = []
        for name in chosen:
            previews.append(_preview_step(ctx, run.workflow, name))
            if previews[-1].problem:
                break
        return previews
    finally:
        ctx.close()
