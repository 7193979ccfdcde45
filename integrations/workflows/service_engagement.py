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
"""

from __future__ import annotations

from typing import Any

from console import audit
from integrations import bindings, governance, timeline
from integrations.canonical import schemas
from integrations.canonical.errors import MappingError
from integrations.choices import ErpDocument, SystemKind
from integrations.connectors.kantata import mapping as kantata_mapping
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import LegalEntity, ProjectTemplate

from . import erp_customers
from .base import Step, StepContext, Workflow
from .failures import StepError
from .planning import plan_project, revenue_schedule

WORKFLOW = "create_service_engagement"


def deal_id(ctx: StepContext) -> str:
    return str(ctx.run.input.get("Id") or ctx.run.correlation_id.removeprefix("deal:"))


def opportunity(ctx: StepContext) -> schemas.Opportunity:
    return schemas.Opportunity.model_validate(ctx.output("fetch_deal")["opportunity"])


class FetchDeal(Step):
    name = "fetch_deal"
    system = SystemKind.CRM
    entity_type = "opportunity"

    def entity_ref(self, ctx: StepContext) -> str:
        return deal_id(ctx)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        crm = ctx.client(self.connection(ctx))
        record = crm.get_opportunity(deal_id(ctx))
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
        if opp.is_closed and opp.is_won:
            # Business timestamps for the quote-to-project KPIs, from the CRM's own records.
            key = ctx.run.business_key
            quoted = crm.first_quote_date(opp.source_id)
            if quoted is not None:
                timeline.stamp(key, "quote", quoted, source="crm")
            won = crm.closed_won_at(record)
            timeline.stamp(key, "closed_won", won or opp.modified_at, source="crm")
        if not (opp.is_closed and opp.is_won):
            raise StepError(
                "deal_not_won",
                f"The deal is at stage {opp.stage!r}, no longer closed-won.",
                entity_type="opportunity",
                entity_ref=opp.source_id,
            )
        return {"opportunity": opp.model_dump(mode="json")}


class CheckLegalEntity(Step):
    name = "check_legal_entity"
    system = SystemKind.ERP
    erp_document = ErpDocument.CUSTOMER
    entity_type = "legal_entity"

    def entity_ref(self, ctx: StepContext) -> str:
        return ctx.run.legal_entity_code

    def run(self, ctx: StepContext) -> dict[str, Any]:
        opp = opportunity(ctx)
        code = opp.legal_entity_code
        entity = LegalEntity.objects.filter(code=code).first()
        if entity is None:
            raise StepError(
                "legal_entity_unknown",
                f"The deal names legal entity {code!r}, which Throughline does not know.",
                entity_type="legal_entity",
                entity_ref=code,
            )
        erp = self.connection(ctx)
        subsidiary_id = erp_customers.subsidiary_of(erp, code)
        currencies = erp_customers.currency_ids(ctx, erp)
        subsidiary = ctx.client(erp).get_subsidiary(subsidiary_id)
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


class EnsureErpCustomer(Step):
    name = "ensure_erp_customer"
    system = SystemKind.ERP
    erp_document = ErpDocument.CUSTOMER
    entity_type = "customer"
    rejection_code = "customer_rejected_by_erp"

    def entity_ref(self, ctx: StepContext) -> str:
        fetched = ctx.outputs.get("fetch_deal")
        return fetched["opportunity"]["customer"]["source_id"] if fetched else ""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        checked = ctx.output("check_legal_entity")
        internal_id, created = erp_customers.ensure_customer(
            ctx,
            self.connection(ctx),
            opportunity(ctx),
            subsidiary_id=checked["subsidiary_id"],
            currencies=checked["currency_ids"],
        )
        return {"erp_customer_id": internal_id, "created": created}


class ProvisionProject(Step):
    name = "provision_project"
    system = SystemKind.PSA
    entity_type = "project"
    rejection_code = "project_rejected_by_psa"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        opp = opportunity(ctx)
        template = ProjectTemplate.objects.filter(code=opp.project_template).first()
        if template is None:
            raise StepError(
                "project_template_not_found",
                f"The deal asks for project template {opp.project_template!r}, which does "
                "not exist.",
                entity_type="project_template",
                entity_ref=opp.project_template,
            )
        project = plan_project(opp, template)
        psa = self.connection(ctx)
        client = ctx.client(psa)
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
        bindings.bind(psa, "project", project.key, workspace_id, run=ctx.run)
        timeline.stamp(ctx.run.business_key, "project_provisioned", source=psa.name)
        if created:
            audit.record(
                "psa.project.created",
                f"Project {project.name} created in {psa.name} as {workspace_id}",
                correlation_id=ctx.run.correlation_id,
                connection=psa.name,
                external_id=workspace_id,
                idempotency_key=project.key,
            )
        return {
            "psa_project_id": workspace_id,
            "template": template.code,
            "milestones": len(project.milestones),
            "milestones_created": len(stories),
            "created": created,
        }


def _plan(ctx: StepContext) -> tuple[schemas.Opportunity, ProjectTemplate, schemas.Project]:
    opp = opportunity(ctx)
    template = ProjectTemplate.objects.get(code=ctx.output("provision_project")["template"])
    return opp, template, plan_project(opp, template)


class PushContractToErp(Step):
    """The contract structure in the ERP that does the project's accounting: the project
    (job), tied to the customer, and its billing plan (one line per milestone)."""

    name = "push_contract_to_erp"
    system = SystemKind.ERP
    erp_document = ErpDocument.PROJECT
    entity_type = "project"
    rejection_code = "project_rejected_by_erp"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        opp, _template, project = _plan(ctx)
        erp = self.connection(ctx)
        client = ctx.client(erp)
        subsidiary_id = erp_customers.subsidiary_of(erp, opp.legal_entity_code)
        currencies = erp_customers.currency_ids(ctx, erp)
        customer_id, _ = erp_customers.ensure_customer(
            ctx, erp, opp, subsidiary_id=subsidiary_id, currencies=currencies
        )
        erp_project = project.model_copy(update={"key": f"TL-PRJ-{opp.source_id}"})
        job_id = client.upsert_job(
            erp_project.key,
            netsuite_mapping.job_from_project(
                erp_project,
                customer_id=customer_id,
                subsidiary_id=subsidiary_id,
                currency_id=erp_customers.currency_id(currencies, opp.currency, erp, project.key),
            ),
        )
        bindings.bind(erp, "project", project.key, job_id, run=ctx.run)
        milestone_ids = client.upsert_billing_plan(
            job_id, netsuite_mapping.billing_milestone_lines(erp_project)
        )
        audit.record(
            "erp.project.upserted",
            f"Project {erp_project.key} and its billing plan ({len(milestone_ids)} milestones) "
            f"upserted in {erp.name}",
            correlation_id=ctx.run.correlation_id,
            connection=erp.name,
            external_id=job_id,
            idempotency_key=erp_project.key,
        )
        return {"erp_job_id": job_id, "erp_connection": erp.pk, "billing_plan": milestone_ids}


class PostRevenueSchedule(Step):
    """The revenue schedule, from the contract's billing model, in the ERP that keeps it."""

    name = "post_revenue_schedule"
    system = SystemKind.ERP
    erp_document = ErpDocument.REVENUE_SCHEDULE
    entity_type = "revenue_schedule"
    rejection_code = "project_rejected_by_erp"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        opp, template, project = _plan(ctx)
        schedule = revenue_schedule(opp, template, project)
        erp = self.connection(ctx)
        ids = ctx.client(erp).upsert_revenue_schedule(
            schedule.contract_key, netsuite_mapping.revenue_schedule_lines(schedule)
        )
        audit.record(
            "erp.revenue_schedule.upserted",
            f"Revenue schedule {schedule.contract_key} ({len(ids)} lines, "
            f"{schedule.billing_model}) upserted in {erp.name}",
            correlation_id=ctx.run.correlation_id,
            connection=erp.name,
            idempotency_key=schedule.contract_key,
        )
        return {"contract_key": schedule.contract_key, "lines": len(ids)}


class WriteBackCrm(Step):
    name = "write_back_crm"
    system = SystemKind.CRM
    entity_type = "opportunity"
    rejection_code = "write_back_rejected"

    def entity_ref(self, ctx: StepContext) -> str:
        return deal_id(ctx)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        crm = self.connection(ctx)
        fields = salesforce_mapping.opportunity_writeback(
            ctx.output("ensure_erp_customer")["erp_customer_id"],
            ctx.output("provision_project")["psa_project_id"],
        )
        ctx.client(crm).update("Opportunity", deal_id(ctx), fields)
        governance.record_write(crm, "opportunity", deal_id(ctx), fields)
        audit.record(
            "crm.opportunity.written_back",
            f"ERP and PSA ids written to opportunity {deal_id(ctx)} in {crm.name}",
            correlation_id=ctx.run.correlation_id,
            connection=crm.name,
            fields=fields,
        )
        return {"written": fields}


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
