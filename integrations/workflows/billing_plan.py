"""update-billing-plan: an approved contract amendment in the CRM updates the project's
budget and milestones in the PSA and its billing plan and revenue schedule in the ERP.

Steps (each an upsert, so a replay writes nothing twice):
1. load_amendment     CRM: the amendment as it is now, and the deal it amends.
2. update_psa_plan    PSA: the project's budget and milestone plan (completed milestones are
                      billed and never changed: a plan that would change one is refused).
3. update_erp_plan    ERP (project route): the billing plan of the project's job.
4. update_revenue     ERP (revenue route): the revenue schedule from the new plan.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from console import audit
from integrations import bindings, governance
from integrations.canonical import schemas
from integrations.choices import ErpDocument, SystemKind
from integrations.connectors.kantata import mapping as kantata_mapping
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import ProjectTemplate, SyncRun

from .base import Step, StepContext, Workflow
from .failures import StepError
from .planning import revenue_schedule

WORKFLOW = "update_billing_plan"


def _amended(ctx: StepContext) -> tuple[schemas.ContractAmendment, schemas.Opportunity]:
    out = ctx.output("load_amendment")
    return (
        schemas.ContractAmendment.model_validate(out["amendment"]),
        schemas.Opportunity.model_validate(out["opportunity"]),
    )


def _project(ctx: StepContext) -> schemas.Project:
    return schemas.Project.model_validate(ctx.output("load_amendment")["project"])


class LoadAmendment(Step):
    name = "load_amendment"
    system = SystemKind.CRM
    entity_type = "contract_amendment"

    def entity_ref(self, ctx: StepContext) -> str:
        return str(ctx.run.input.get("amendment_id", ""))

    def run(self, ctx: StepContext) -> dict[str, Any]:
        crm = self.connection(ctx)
        record = ctx.client(crm).get_amendment(ctx.run.input["amendment_id"])
        deal_key = f"deal:{record.get('Opportunity__c')}"
        handoff = SyncRun.objects.filter(
            workflow="create_service_engagement", correlation_id=deal_key, status="succeeded"
        ).first()
        if handoff is None:
            raise StepError(
                "amendment_before_handoff",
                "The amended deal has not been handed over yet (no project to amend).",
                entity_type="contract_amendment",
                entity_ref=str(record.get("Id")),
            )
        opp = schemas.Opportunity.model_validate(handoff.context["fetch_deal"]["opportunity"])
        template = ProjectTemplate.objects.get(
            code=handoff.context["provision_project"]["template"]
        )
        start = opp.close_date
        amendment = salesforce_mapping.amendment_from_salesforce(
            record, currency=opp.currency, start=start
        )
        milestones = amendment.milestones or _scaled(template, amendment, start)
        project = schemas.validate(
            schemas.Project,
            {
                "key": deal_key,
                "name": f"{opp.customer.name}: {opp.name}"[:255],
                "customer_name": opp.customer.name,
                "legal_entity_code": opp.legal_entity_code,
                "start_date": start,
                "budget": {"amount": amendment.new_total_value, "currency": opp.currency},
                "milestones": [m.model_dump() for m in milestones],
            },
            source="amendment",
        )
        ctx.route_to(
            opp.legal_entity_code,
            title=f"{opp.customer.name}: amendment to {amendment.new_total_value}",
            business_key=deal_key,
        )
        return {
            "amendment": amendment.model_dump(mode="json"),
            "opportunity": opp.model_dump(mode="json"),
            "project": project.model_dump(mode="json"),
            "billing_model": template.billing_model,
            "workspace_id": handoff.context["provision_project"]["psa_project_id"],
        }


def _scaled(
    template: ProjectTemplate, amendment: schemas.ContractAmendment, start: Any
) -> list[schemas.Milestone]:
    """The template's milestones at the amended total (when the amendment has no plan)."""
    import datetime as dt

    from .planning import split_amount

    items = template.milestones
    amounts = split_amount(amendment.new_total_value, [Decimal(str(m["percent"])) for m in items])
    return [
        schemas.Milestone(
            name=str(m["name"]),
            due_date=start + dt.timedelta(days=int(m.get("offset_days", 0))),
            amount=amount,
            billable=bool(m.get("billable", True)),
        )
        for m, amount in zip(items, amounts, strict=True)
    ]


class UpdatePsaPlan(Step):
    name = "update_psa_plan"
    system = SystemKind.PSA
    entity_type = "project"
    rejection_code = "amendment_conflicts_with_delivery"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        project = _project(ctx)
        workspace = ctx.output("load_amendment")["workspace_id"]
        psa = self.connection(ctx)
        client = ctx.client(psa)
        client.update_workspace_budget(
            workspace, price=project.budget.amount, currency=project.budget.currency
        )
        stories = client.replace_milestone_plan(
            workspace, [kantata_mapping.story_from_milestone(m) for m in project.milestones]
        )
        governance.record_write(psa, "project", workspace, {"price": str(project.budget.amount)})
        audit.record(
            "psa.project.replanned",
            f"Project {workspace} in {psa.name}: budget {project.budget.amount} "
            f"{project.budget.currency}, {len(project.milestones)} milestones",
            correlation_id=ctx.run.correlation_id,
            connection=psa.name,
        )
        return {"milestones": len(stories)}


class UpdateErpPlan(Step):
    name = "update_erp_plan"
    system = SystemKind.ERP
    erp_document = ErpDocument.PROJECT
    entity_type = "project"
    rejection_code = "project_rejected_by_erp"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        project = _project(ctx)
        _amendment, opp = _amended(ctx)
        erp = self.connection(ctx)
        job_id = bindings.lookup(erp, "project", project.key)
        if job_id is None:
            raise StepError(
                "project_not_in_erp",
                f"The project {project.key} has no job in {erp.name} to re-plan.",
                entity_type="project",
                entity_ref=project.key,
                connection_id=erp.pk,
            )
        erp_project = project.model_copy(update={"key": f"TL-PRJ-{opp.source_id}"})
        ids = ctx.client(erp).upsert_billing_plan(
            job_id, netsuite_mapping.billing_milestone_lines(erp_project)
        )
        return {"erp_job_id": job_id, "billing_plan": ids}


class UpdateRevenue(Step):
    name = "update_revenue"
    system = SystemKind.ERP
    erp_document = ErpDocument.REVENUE_SCHEDULE
    entity_type = "revenue_schedule"
    rejection_code = "project_rejected_by_erp"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        project = _project(ctx)
        _amendment, opp = _amended(ctx)
        template = ProjectTemplate(
            code="amended", billing_model=ctx.output("load_amendment")["billing_model"]
        )
        amended_opp = opp.model_copy(update={"amount": project.budget.amount})
        schedule = revenue_schedule(amended_opp, template, project)
        erp = self.connection(ctx)
        ids = ctx.client(erp).upsert_revenue_schedule(
            schedule.contract_key, netsuite_mapping.revenue_schedule_lines(schedule)
        )
        return {"contract_key": schedule.contract_key, "lines": len(ids)}


class UpdateBillingPlan(Workflow):
    name = WORKFLOW
    title = "Update billing plan"
    steps = [LoadAmendment(), UpdatePsaPlan(), UpdateErpPlan(), UpdateRevenue()]
