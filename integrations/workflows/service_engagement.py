"""create-service-engagement: a closed-won deal in CRM becomes a customer in ERP and a project
in PSA, and the ERP and PSA ids are written back to the deal.

Steps (each idempotent, so a retry or replay never creates a second customer or project):
1. fetch_deal           CRM: read the opportunity as it is now; validate it (canonical model).
2. check_legal_entity   ERP: the deal's legal entity exists there with a tax configuration.
3. ensure_erp_customer  ERP: upsert the customer by external id; bind it.
4. provision_project    PSA: project from the template with budget and milestones; bind it.
5. push_contract_to_erp ERP (project route): the project (job) and its billing plan.
6. post_revenue_schedule ERP (revenue route): the revenue schedule from the billing model.
7. write_back_crm       CRM: write the ERP customer id and PSA project id to the opportunity.

Every step serves a batch of deals at once (a poll hands them out RUN_BATCH_SIZE at a time):
one SOQL query reads all the deals, one RESTlet call upserts their customers, jobs, billing
milestones or revenue lines, one Kantata call creates their workspaces and one their
milestones, one sObject Collections call writes them back. A deal whose data a vendor
refuses fails alone; the rest of the batch goes on. A single run is a batch of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from console import audit
from integrations import bindings, corrections, governance, timeline
from integrations.canonical import schemas
from integrations.canonical.errors import MappingError
from integrations.choices import ErpDocument, SystemKind
from integrations.connectors.errors import ConnectorError, NotFoundError, ValidationError
from integrations.connectors.kantata import mapping as kantata_mapping
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.netsuite.client import MILESTONE_RECORD, REVENUE_RECORD
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import LegalEntity, ProjectTemplate

from . import erp_customers
from .base import BatchStep, Step, StepContext, Workflow, group_by
from .failures import StepError
from .planning import plan_project, revenue_schedule

Result = dict[str, Any] | Exception

WORKFLOW = "create_service_engagement"


def deal_id(ctx: StepContext) -> str:
    return str(ctx.run.input.get("Id") or ctx.run.correlation_id.removeprefix("deal:"))


def opportunity(ctx: StepContext) -> schemas.Opportunity:
    return schemas.Opportunity.model_validate(ctx.output("fetch_deal")["opportunity"])


def _each(ctxs: list[StepContext], work: Callable[[StepContext], Any]) -> dict[int, Any]:
    """`work(ctx)` for each context: {run id: its answer, or the exception it raised}."""
    out: dict[int, Any] = {}
    for ctx in ctxs:
        try:
            out[ctx.run.pk] = work(ctx)
        except Exception as exc:  # that deal's own problem
            out[ctx.run.pk] = exc
    return out


def _template(ctx: StepContext, code: str) -> ProjectTemplate | None:
    return ctx.batch.remember(
        ("template", code), lambda: ProjectTemplate.objects.filter(code=code).first()
    )


def _rejected(outcome: dict[str, Any], operation: str, default: str) -> ValidationError:
    """A record the bulk RESTlet refused, as the error a single call would have raised."""
    error = outcome.get("error") or {}
    return ValidationError(
        str(error.get("message") or default),
        vendor_code=str(error.get("code") or "") or None,
        operation=operation,
    )


class FetchDeal(BatchStep):
    name = "fetch_deal"
    system = SystemKind.CRM
    entity_type = "opportunity"

    def entity_ref(self, ctx: StepContext) -> str:
        return deal_id(ctx)

    def run_many(self, ctxs: list[StepContext]) -> list[Result]:
        results: dict[int, Result] = {}
        for crm, group in group_by(ctxs, self.connection).items():
            results.update(self._fetch(crm, group))
        return [results[ctx.run.pk] for ctx in ctxs]

    def _fetch(self, crm: Any, group: list[StepContext]) -> dict[int, Result]:
        client = group[0].client(crm)
        try:
            records = client.get_opportunities([deal_id(ctx) for ctx in group])
        except ValueError:  # an id Salesforce could not hold: read the others one by one
            if len(group) == 1:
                raise
            out: dict[int, Result] = {}
            for ctx in group:
                out.update(self._fetch(crm, [ctx]))
            return out
        opps = _each(group, lambda ctx: self._validate(ctx, records.get(deal_id(ctx))))
        won = [
            ctx
            for ctx in group
            if isinstance(opps[ctx.run.pk], schemas.Opportunity)
            and opps[ctx.run.pk].is_closed
            and opps[ctx.run.pk].is_won
        ]
        if won:
            # Business timestamps for the quote-to-project KPIs, from the CRM's own records.
            ids = [deal_id(ctx) for ctx in won]
            quoted = client.first_quote_dates(ids)
            wins = client.closed_won_times(ids)
            stamps = []
            for ctx in won:
                key, opp = ctx.run.business_key, opps[ctx.run.pk]
                if deal_id(ctx) in quoted:
                    stamps.append((key, "quote", quoted[deal_id(ctx)]))
                stamps.append((key, "closed_won", wins.get(deal_id(ctx)) or opp.modified_at))
            timeline.stamp_many(stamps, source="crm")
        out = {}
        for ctx in group:
            opp = opps[ctx.run.pk]
            if isinstance(opp, Exception):
                out[ctx.run.pk] = opp
            elif not (opp.is_closed and opp.is_won):
                out[ctx.run.pk] = StepError(
                    "deal_not_won",
                    f"The deal is at stage {opp.stage!r}, no longer closed-won.",
                    entity_type="opportunity",
                    entity_ref=opp.source_id,
                )
            else:
                out[ctx.run.pk] = {"opportunity": opp.model_dump(mode="json")}
        return out

    def _validate(self, ctx: StepContext, record: dict[str, Any] | None) -> schemas.Opportunity:
        if record is None:
            raise NotFoundError(
                f"Opportunity {deal_id(ctx)} does not exist",
                vendor_code="NOT_FOUND",
                operation="salesforce.Opportunity.get",
            )
        # a person's corrections of this run's payload win over the CRM's values (this run only)
        record = corrections.apply(record, corrections.of(ctx.run))
        try:
            opp = salesforce_mapping.opportunity_from_salesforce(record)
        except MappingError as exc:
            raise StepError(
                "deal_data_invalid",
                f"The deal cannot be provisioned: {', '.join(exc.fields) or 'payload'} "
                "missing or invalid.",
                entity_type="opportunity",
                entity_ref=deal_id(ctx),
                details={"problems": exc.problems},
            ) from exc
        ctx.route_to(opp.legal_entity_code, title=f"{opp.customer.name}: {opp.name}")
        return opp


class CheckLegalEntity(Step):
    """Per deal, but each subsidiary is read once per batch."""

    name = "check_legal_entity"
    system = SystemKind.ERP
    erp_document = ErpDocument.CUSTOMER
    entity_type = "legal_entity"

    def entity_ref(self, ctx: StepContext) -> str:
        return ctx.run.legal_entity_code

    def run(self, ctx: StepContext) -> dict[str, Any]:
        opp = opportunity(ctx)
        code = opp.legal_entity_code
        entity = ctx.batch.remember(
            ("legal_entity", code), lambda: LegalEntity.objects.filter(code=code).first()
        )
        if entity is None:
            raise StepError(
                "legal_entity_unknown",
                f"The deal names legal entity {code!r}, which Throughline does not know.",
                entity_type="legal_entity",
                entity_ref=code,
            )
        erp = self.connection(ctx)
        subsidiary_id = ctx.batch.remember(
            ("subsidiary_of", erp.pk, code), lambda: erp_customers.subsidiary_of(erp, code)
        )
        currencies = erp_customers.currency_ids(ctx, erp)
        subsidiary = ctx.batch.remember(
            ("subsidiary", erp.pk, subsidiary_id),
            lambda: ctx.client(erp).get_subsidiary(subsidiary_id),
        )
        canonical = netsuite_mapping.legal_entity_from_subsidiary(
            subsidiary, code=code, region=entity.region, currencies=currencies
        )
        if canonical.tax is None:
            raise StepError(
                "tax_configuration_missing",
                f"Subsidiary {canonical.name} (legal entity {code}) has no tax registration "
                f"in {erp.name}, so no customer can be created or invoiced for it.",
                entity_type="legal_entity",
                entity_ref=code,
                connection_id=erp.pk,
                details={"subsidiary_id": subsidiary_id, "subsidiary": canonical.name},
            )
        return {
            "legal_entity": canonical.model_dump(mode="json"),
            "subsidiary_id": subsidiary_id,
            "currency_ids": currencies,
        }


class EnsureErpCustomer(BatchStep):
    name = "ensure_erp_customer"
    system = SystemKind.ERP
    erp_document = ErpDocument.CUSTOMER
    entity_type = "customer"
    rejection_code = "customer_rejected_by_erp"

    def entity_ref(self, ctx: StepContext) -> str:
        fetched = ctx.outputs.get("fetch_deal")
        return fetched["opportunity"]["customer"]["source_id"] if fetched else ""

    def run_many(self, ctxs: list[StepContext]) -> list[Result]:
        results: dict[int, Result] = {}
        for erp, group in group_by(ctxs, self.connection).items():
            needs = []
            for ctx in group:
                checked = ctx.output("check_legal_entity")
                needs.append(
                    erp_customers.CustomerNeed(
                        ctx, opportunity(ctx), checked["subsidiary_id"], checked["currency_ids"]
                    )
                )
            for ctx, outcome in zip(group, erp_customers.ensure_customers(erp, needs), strict=True):
                results[ctx.run.pk] = (
                    outcome
                    if isinstance(outcome, Exception)
                    else {"erp_customer_id": outcome[0], "created": outcome[1]}
                )
        return [results[ctx.run.pk] for ctx in ctxs]


class ProvisionProject(BatchStep):
    """The project in the PSA from its template, with its milestones. A first attempt
    creates the batch's workspaces in one call (each carrying Throughline's reference) and
    their milestones in another; a later attempt, which cannot know what an interrupted one
    wrote, looks the workspace up by reference (and by marker) before creating anything."""

    name = "provision_project"
    system = SystemKind.PSA
    entity_type = "project"
    rejection_code = "project_rejected_by_psa"

    def run_many(self, ctxs: list[StepContext]) -> list[Result]:
        results: dict[int, Result] = {}
        plans = _each(ctxs, self._plan)
        for ctx in ctxs:
            if isinstance(plans[ctx.run.pk], Exception):
                results[ctx.run.pk] = plans[ctx.run.pk]
        ready = [ctx for ctx in ctxs if ctx.run.pk not in results]
        for psa, group in group_by(ready, self.connection).items():
            fresh = [ctx for ctx in group if ctx.attempt == 1]
            if fresh:
                results.update(self._create_fresh(psa, fresh, plans))
            for ctx in group:
                if ctx.run.pk not in results:  # retried, or the bulk call failed
                    results.update(
                        _each([ctx], lambda c, psa=psa: self._provision_one(psa, c, plans))
                    )
        return [results[ctx.run.pk] for ctx in ctxs]

    def _plan(self, ctx: StepContext) -> tuple[ProjectTemplate, schemas.Project]:
        opp = opportunity(ctx)
        template = _template(ctx, opp.project_template)
        if template is None:
            raise StepError(
                "project_template_not_found",
                f"The deal asks for project template {opp.project_template!r}, which does "
                "not exist.",
                entity_type="project_template",
                entity_ref=opp.project_template,
            )
        return template, plan_project(opp, template)

    def _create_fresh(
        self, psa: Any, fresh: list[StepContext], plans: dict[int, Any]
    ) -> dict[int, Result]:
        client = fresh[0].client(psa)
        bodies = _each(
            fresh,
            lambda ctx: (
                kantata_mapping.workspace_from_project(
                    plans[ctx.run.pk][1],
                    marker=kantata_mapping.make_marker(plans[ctx.run.pk][1].key),
                ),
                plans[ctx.run.pk][1].key,
            ),
        )
        results: dict[int, Result] = {
            pk: body for pk, body in bodies.items() if isinstance(body, Exception)
        }
        todo = [ctx for ctx in fresh if ctx.run.pk not in results]
        if not todo:
            return results
        # When a bulk call fails, the deals go one by one through the single path, which
        # looks each workspace up by reference before creating anything: a refused call
        # (Kantata refuses a whole call for one bad workspace) isolates the bad deal, and a
        # call that may or may not have been applied (a 500, a timeout) is not repeated blind.
        try:
            workspaces = client.create_workspaces([bodies[ctx.run.pk] for ctx in todo])
        except ConnectorError:
            return results
        ids = {
            ctx.run.pk: kantata_mapping.project_ref(w)
            for ctx, w in zip(todo, workspaces, strict=True)
        }
        stories = []
        for ctx in todo:
            project = plans[ctx.run.pk][1]
            stories += [
                {**kantata_mapping.story_from_milestone(m), "workspace_id": int(ids[ctx.run.pk])}
                for m in project.milestones
            ]
        try:
            made = client.create_many("stories", stories) if stories else []
        except ConnectorError:  # the workspaces stand: the single path adds the milestones
            return results
        per_workspace: dict[str, int] = {}
        for story in made:
            wid = str(story.get("workspace_id"))
            per_workspace[wid] = per_workspace.get(wid, 0) + 1
        self._record(psa, todo, ids, plans, created=True)
        for ctx in todo:
            project = plans[ctx.run.pk][1]
            results[ctx.run.pk] = {
                "psa_project_id": ids[ctx.run.pk],
                "template": plans[ctx.run.pk][0].code,
                "milestones": len(project.milestones),
                "milestones_created": per_workspace.get(ids[ctx.run.pk], 0),
                "created": True,
            }
        return results

    def _provision_one(self, psa: Any, ctx: StepContext, plans: dict[int, Any]) -> dict[str, Any]:
        template, project = plans[ctx.run.pk]
        client = ctx.client(psa)
        with ctx.batch.focus([ctx]):
            marker = kantata_mapping.make_marker(project.key)
            workspace = client.find_workspace_by_reference(project.key)
            referenced = workspace is not None
            created = False
            if workspace is None:
                workspace = client.find_workspace_by_marker(marker)
            if workspace is None:
                workspace = client.create_workspace(
                    kantata_mapping.workspace_from_project(project, marker=marker), ref=project.key
                )
                created = referenced = True
            workspace_id = kantata_mapping.project_ref(workspace)
            if not referenced:
                client.add_reference(workspace_id, project.key)
            stories = client.create_milestones(
                workspace_id, [kantata_mapping.story_from_milestone(m) for m in project.milestones]
            )
        self._record(psa, [ctx], {ctx.run.pk: workspace_id}, plans, created=created)
        return {
            "psa_project_id": workspace_id,
            "template": template.code,
            "milestones": len(project.milestones),
            "milestones_created": len(stories),
            "created": created,
        }

    def _record(
        self,
        psa: Any,
        ctxs: list[StepContext],
        ids: dict[int, str],
        plans: dict[int, Any],
        *,
        created: bool,
    ) -> None:
        keys = {plans[ctx.run.pk][1].key: ctx for ctx in ctxs}
        bindings.bind_many(
            psa,
            "project",
            {key: ids[ctx.run.pk] for key, ctx in keys.items()},
            runs={key: ctx.run for key, ctx in keys.items()},
        )
        timeline.stamp_many(
            [(ctx.run.business_key, "project_provisioned") for ctx in ctxs], source=psa.name
        )
        if created:
            audit.record_many(
                [
                    (
                        "psa.project.created",
                        f"Project {plans[ctx.run.pk][1].name} created in {psa.name} as "
                        f"{ids[ctx.run.pk]}",
                        ctx.run.correlation_id,
                        {
                            "connection": psa.name,
                            "external_id": ids[ctx.run.pk],
                            "idempotency_key": key,
                        },
                    )
                    for key, ctx in keys.items()
                ]
            )


def _plan(ctx: StepContext) -> tuple[schemas.Opportunity, ProjectTemplate, schemas.Project]:
    opp = opportunity(ctx)
    template = _template(ctx, ctx.output("provision_project")["template"])
    if template is None:
        raise ProjectTemplate.DoesNotExist(ctx.output("provision_project")["template"])
    return opp, template, plan_project(opp, template)


def _upsert_lines(
    client: Any,
    record_type: str,
    lines: dict[int, list[dict[str, Any]]],
    *,
    owner_field: str,
    owners: dict[int, str],
    focus: Any,
) -> dict[int, list[str] | Exception]:
    """Upsert every run's lines of `record_type` in bulk, then make inactive the lines an
    earlier version had that this one does not (one query for all owners). Returns each
    run's line ids in order, or the error that refused one of its lines."""
    flat = [line for run_lines in lines.values() for line in run_lines]
    out: dict[int, list[str] | Exception] = {}
    with focus:
        outcomes = client.upsert_batch(record_type, flat) if flat else []
        by_external = {str(o.get("externalId")): o for o in outcomes}
        keep: dict[str, set[str]] = {}
        for pk, run_lines in lines.items():
            refused = [
                by_external[str(line["externalId"])]
                for line in run_lines
                if by_external[str(line["externalId"])].get("status") == "error"
            ]
            if refused:
                out[pk] = _rejected(refused[0], f"netsuite.{record_type}.bulk_upsert", "refused")
                continue
            out[pk] = [str(by_external[str(line["externalId"])]["id"]) for line in run_lines]
            keep[owners[pk]] = {str(line["externalId"]) for line in run_lines}
        if keep:
            for row in client.inactive_lines(record_type, owner_field, list(keep)):
                owner = str(row.get(owner_field) or "")
                if owner in keep and str(row.get("externalid")) not in keep[owner]:
                    client.update_record(record_type, str(row["id"]), {"isInactive": True})
    return out


class PushContractToErp(BatchStep):
    """The contract structure in the ERP that does the project's accounting: the project
    (job), tied to the customer, and its billing plan (one line per milestone)."""

    name = "push_contract_to_erp"
    system = SystemKind.ERP
    erp_document = ErpDocument.PROJECT
    entity_type = "project"
    rejection_code = "project_rejected_by_erp"

    def run_many(self, ctxs: list[StepContext]) -> list[Result]:
        results: dict[int, Result] = {}
        for erp, group in group_by(ctxs, self.connection).items():
            results.update(self._push(erp, group))
        return [results[ctx.run.pk] for ctx in ctxs]

    def _push(self, erp: Any, group: list[StepContext]) -> dict[int, Result]:
        client = group[0].client(erp)
        results: dict[int, Result] = {}
        plans = _each(group, _plan)
        setup = _each(
            [c for c in group if not isinstance(plans[c.run.pk], Exception)],
            lambda ctx: (
                erp_customers.subsidiary_of(erp, opportunity(ctx).legal_entity_code),
                erp_customers.currency_ids(ctx, erp),
            ),
        )
        for ctx in group:
            failed = plans[ctx.run.pk] if isinstance(plans[ctx.run.pk], Exception) else None
            failed = failed or (
                setup[ctx.run.pk] if isinstance(setup[ctx.run.pk], Exception) else None
            )
            if failed is not None:
                results[ctx.run.pk] = failed
        ready = [ctx for ctx in group if ctx.run.pk not in results]
        needs = [
            erp_customers.CustomerNeed(ctx, plans[ctx.run.pk][0], *setup[ctx.run.pk])
            for ctx in ready
        ]
        customers = dict(
            zip(
                [ctx.run.pk for ctx in ready],
                erp_customers.ensure_customers(erp, needs) if needs else [],
                strict=True,
            )
        )
        jobs: dict[int, dict[str, Any]] = {}
        for ctx in ready:
            opp, _template, project = plans[ctx.run.pk]
            subsidiary_id, currencies = setup[ctx.run.pk]
            customer = customers[ctx.run.pk]
            try:
                if isinstance(customer, Exception):
                    raise customer
                erp_project = project.model_copy(update={"key": f"TL-PRJ-{opp.source_id}"})
                jobs[ctx.run.pk] = netsuite_mapping.job_from_project(
                    erp_project,
                    customer_id=customer[0],
                    subsidiary_id=subsidiary_id,
                    currency_id=erp_customers.currency_id(
                        currencies, opp.currency, erp, project.key
                    ),
                )
            except Exception as exc:
                results[ctx.run.pk] = exc
        serving = [ctx for ctx in ready if ctx.run.pk in jobs]
        if not serving:
            return results
        try:
            with group[0].batch.focus(serving):
                outcomes = client.upsert_batch("job", list(jobs.values()))
        except ConnectorError as exc:
            return {**results, **{ctx.run.pk: exc for ctx in serving}}
        job_ids: dict[int, str] = {}
        for ctx, outcome in zip(serving, outcomes, strict=True):
            if outcome.get("status") == "error":
                results[ctx.run.pk] = _rejected(
                    outcome, "netsuite.job.bulk_upsert", "NetSuite refused the project"
                )
            else:
                job_ids[ctx.run.pk] = str(outcome["id"])
        placed = [ctx for ctx in serving if ctx.run.pk in job_ids]
        bindings.bind_many(
            erp,
            "project",
            {plans[ctx.run.pk][2].key: job_ids[ctx.run.pk] for ctx in placed},
            runs={plans[ctx.run.pk][2].key: ctx.run for ctx in placed},
        )
        lines = {}
        for ctx in placed:
            opp, _template, project = plans[ctx.run.pk]
            erp_project = project.model_copy(update={"key": f"TL-PRJ-{opp.source_id}"})
            lines[ctx.run.pk] = [
                {**m, "custrecord_tl_bm_job": {"id": job_ids[ctx.run.pk]}, "isInactive": False}
                for m in netsuite_mapping.billing_milestone_lines(erp_project)
            ]
        try:
            plans_out = _upsert_lines(
                client,
                MILESTONE_RECORD,
                lines,
                owner_field="custrecord_tl_bm_job",
                owners=job_ids,
                focus=group[0].batch.focus(placed),
            )
        except ConnectorError as exc:
            return {**results, **{ctx.run.pk: exc for ctx in placed}}
        events = []
        for ctx in placed:
            milestone_ids = plans_out[ctx.run.pk]
            if isinstance(milestone_ids, Exception):
                results[ctx.run.pk] = milestone_ids
                continue
            key = f"TL-PRJ-{plans[ctx.run.pk][0].source_id}"
            events.append(
                (
                    "erp.project.upserted",
                    f"Project {key} and its billing plan ({len(milestone_ids)} milestones) "
                    f"upserted in {erp.name}",
                    ctx.run.correlation_id,
                    {
                        "connection": erp.name,
                        "external_id": job_ids[ctx.run.pk],
                        "idempotency_key": key,
                    },
                )
            )
            results[ctx.run.pk] = {
                "erp_job_id": job_ids[ctx.run.pk],
                "erp_connection": erp.pk,
                "billing_plan": milestone_ids,
            }
        audit.record_many(events)
        return results


class PostRevenueSchedule(BatchStep):
    """The revenue schedule, from the contract's billing model, in the ERP that keeps it."""

    name = "post_revenue_schedule"
    system = SystemKind.ERP
    erp_document = ErpDocument.REVENUE_SCHEDULE
    entity_type = "revenue_schedule"
    rejection_code = "project_rejected_by_erp"

    def run_many(self, ctxs: list[StepContext]) -> list[Result]:
        results: dict[int, Result] = {}
        for erp, group in group_by(ctxs, self.connection).items():
            schedules = _each(group, lambda ctx: revenue_schedule(*_plan(ctx)))
            lines = _each(
                [c for c in group if not isinstance(schedules[c.run.pk], Exception)],
                lambda ctx, schedules=schedules: [
                    {**line, "isInactive": False}
                    for line in netsuite_mapping.revenue_schedule_lines(schedules[ctx.run.pk])
                ],
            )
            for ctx in group:
                for source in (schedules, lines):
                    if isinstance(source.get(ctx.run.pk), Exception):
                        results[ctx.run.pk] = source[ctx.run.pk]
                        break
            ready = [ctx for ctx in group if ctx.run.pk not in results]
            if not ready:
                continue
            try:
                ids = _upsert_lines(
                    group[0].client(erp),
                    REVENUE_RECORD,
                    {ctx.run.pk: lines[ctx.run.pk] for ctx in ready},
                    owner_field="custrecord_tl_contract",
                    owners={ctx.run.pk: schedules[ctx.run.pk].contract_key for ctx in ready},
                    focus=group[0].batch.focus(ready),
                )
            except ConnectorError as exc:
                results.update({ctx.run.pk: exc for ctx in ready})
                continue
            events = []
            for ctx in ready:
                schedule = schedules[ctx.run.pk]
                if isinstance(ids[ctx.run.pk], Exception):
                    results[ctx.run.pk] = ids[ctx.run.pk]
                    continue
                events.append(
                    (
                        "erp.revenue_schedule.upserted",
                        f"Revenue schedule {schedule.contract_key} ({len(ids[ctx.run.pk])} "
                        f"lines, {schedule.billing_model}) upserted in {erp.name}",
                        ctx.run.correlation_id,
                        {"connection": erp.name, "idempotency_key": schedule.contract_key},
                    )
                )
                results[ctx.run.pk] = {
                    "contract_key": schedule.contract_key,
                    "lines": len(ids[ctx.run.pk]),
                }
            audit.record_many(events)
        return [results[ctx.run.pk] for ctx in ctxs]


class WriteBackCrm(BatchStep):
    name = "write_back_crm"
    system = SystemKind.CRM
    entity_type = "opportunity"
    rejection_code = "write_back_rejected"

    def entity_ref(self, ctx: StepContext) -> str:
        return deal_id(ctx)

    def run_many(self, ctxs: list[StepContext]) -> list[Result]:
        results: dict[int, Result] = {}
        for crm, group in group_by(ctxs, self.connection).items():
            fields = {
                ctx.run.pk: salesforce_mapping.opportunity_writeback(
                    ctx.output("ensure_erp_customer")["erp_customer_id"],
                    ctx.output("provision_project")["psa_project_id"],
                )
                for ctx in group
            }
            try:
                errors = (
                    group[0]
                    .client(crm)
                    .update_many(
                        "Opportunity", [(deal_id(ctx), fields[ctx.run.pk]) for ctx in group]
                    )
                )
            except ConnectorError as exc:
                results.update({ctx.run.pk: exc for ctx in group})
                continue
            written = [ctx for ctx, error in zip(group, errors, strict=True) if error is None]
            for ctx, error in zip(group, errors, strict=True):
                if error is not None:
                    results[ctx.run.pk] = error
            governance.record_writes(
                crm, "opportunity", {deal_id(ctx): fields[ctx.run.pk] for ctx in written}
            )
            audit.record_many(
                [
                    (
                        "crm.opportunity.written_back",
                        f"ERP and PSA ids written to opportunity {deal_id(ctx)} in {crm.name}",
                        ctx.run.correlation_id,
                        {"connection": crm.name, "fields": fields[ctx.run.pk]},
                    )
                    for ctx in written
                ]
            )
            for ctx in written:
                results[ctx.run.pk] = {"written": fields[ctx.run.pk]}
        return [results[ctx.run.pk] for ctx in ctxs]


class CreateServiceEngagement(Workflow):
    name = WORKFLOW
    title = "Create service engagement"
    milestone = "project_provisioned"
    steps = [
        FetchDeal(),
        CheckLegalEntity(),
        EnsureErpCustomer(),
        ProvisionProject(),
        PushContractToErp(),
        PostRevenueSchedule(),
        WriteBackCrm(),
    ]
