"""release-milestone-billing (project-to-cash): a billing milestone completed in the PSA
becomes an invoice in the ERP with the right legal entity, currency and tax; its number and
status go back to the milestone in the PSA and to the deal in the CRM.

Steps (idempotent: the invoice is upserted by an external id made from the milestone, the
PSA reference and the CRM invoice record are upserts too):
1. load_milestone           PSA: the milestone as it is now, and the deal it belongs to.
2. ensure_invoice_customer  ERP (invoice route): the customer exists in the ERP that invoices.
3. create_invoice           ERP: upsert the invoice; read back its number, total and status.
4. update_psa               PSA: the invoice number and status on the milestone.
5. update_crm               CRM: the invoice and its status on the deal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from console import audit
from integrations import bindings, governance, timeline
from integrations.canonical import schemas
from integrations.choices import ErpDocument, SystemKind
from integrations.connectors.errors import ValidationError
from integrations.connectors.kantata import mapping as kantata_mapping
from integrations.connectors.netsuite import mapping as netsuite_mapping
from integrations.connectors.salesforce import mapping as salesforce_mapping
from integrations.models import Connection, SyncRun

from . import erp_customers
from .base import Step, StepContext, Workflow
from .failures import StepError

WORKFLOW = "release_milestone_billing"
PAYMENT_TERMS_DAYS = 30


def milestone_invoice_key(psa_connection_id: object, story_id: object) -> str:
    """The canonical key (and ERP externalId) of the invoice of a PSA milestone."""
    return f"TL-INV-{psa_connection_id}-{story_id}"


def invoice_key(ctx: StepContext) -> str:
    return milestone_invoice_key(ctx.run.input["psa_connection"], ctx.run.input["story_id"])


def loaded(ctx: StepContext) -> tuple[schemas.MilestoneCompletion, schemas.Opportunity]:
    out = ctx.output("load_milestone")
    return (
        schemas.MilestoneCompletion.model_validate(out["completion"]),
        schemas.Opportunity.model_validate(out["opportunity"]),
    )


class LoadMilestone(Step):
    name = "load_milestone"
    system = SystemKind.PSA
    entity_type = "milestone"

    def entity_ref(self, ctx: StepContext) -> str:
        return str(ctx.run.input.get("story_id", ""))

    def run(self, ctx: StepContext) -> dict[str, Any]:
        psa = self.connection(ctx)
        client = ctx.client(psa)
        story = client.get("stories", ctx.run.input["story_id"])
        workspace_id = str(story.get("workspace_id", ""))
        deal_key = bindings.canonical_key(psa, "project", workspace_id)
        if deal_key is None:
            raise StepError(
                "project_not_linked",
                f"Kantata project {workspace_id} was not provisioned by Throughline, so its "
                "deal, customer and legal entity are unknown.",
                entity_type="project",
                entity_ref=workspace_id,
                connection_id=psa.pk,
            )
        workspace = client.get("workspaces", workspace_id)
        completion = kantata_mapping.milestone_completion_from_story(
            story, workspace, project_key=deal_key
        )
        handoff = SyncRun.objects.filter(
            workflow="create_service_engagement", correlation_id=deal_key
        ).first()
        if handoff is None or "fetch_deal" not in handoff.context:
            raise StepError(
                "project_not_linked",
                f"The deal {deal_key} of this project has no completed hand-off.",
                entity_type="project",
                entity_ref=workspace_id,
                connection_id=psa.pk,
            )
        opp = schemas.Opportunity.model_validate(handoff.context["fetch_deal"]["opportunity"])
        ctx.route_to(
            opp.legal_entity_code,
            title=f"{opp.customer.name}: {completion.name}",
            business_key=deal_key,
        )
        timeline.stamp(f"{deal_key}/milestone:{completion.psa_milestone_id}", "completed")
        return {
            "completion": completion.model_dump(mode="json"),
            "opportunity": opp.model_dump(mode="json"),
        }


class EnsureInvoiceCustomer(Step):
    name = "ensure_invoice_customer"
    system = SystemKind.ERP
    erp_document = ErpDocument.INVOICE
    entity_type = "customer"
    rejection_code = "customer_rejected_by_erp"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        _completion, opp = loaded(ctx)
        erp = self.connection(ctx)
        subsidiary_id = erp_customers.subsidiary_of(erp, opp.legal_entity_code)
        currencies = erp_customers.currency_ids(ctx, erp)
        customer_id, created = erp_customers.ensure_customer(
            ctx, erp, opp, subsidiary_id=subsidiary_id, currencies=currencies
        )
        return {
            "erp_customer_id": customer_id,
            "subsidiary_id": subsidiary_id,
            "currency_ids": currencies,
            "created": created,
        }


class CreateInvoice(Step):
    name = "create_invoice"
    system = SystemKind.ERP
    erp_document = ErpDocument.INVOICE
    entity_type = "invoice"
    rejection_code = "invoice_rejected_by_erp"

    def entity_ref(self, ctx: StepContext) -> str:
        return invoice_key(ctx)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        erp, invoice, body = self.build(ctx)
        completion, _opp = loaded(ctx)
        key = invoice.key
        client = ctx.client(erp)
        try:
            internal_id = client.upsert_invoice(key, body)
        except ValidationError as exc:
            if "period" in exc.message.lower() and "closed" in exc.message.lower():
                raise StepError(
                    "closed_accounting_period",
                    f"{erp.name} refused the invoice dated {invoice.invoice_date}: {exc.message}",
                    entity_type="invoice",
                    entity_ref=key,
                    connection_id=erp.pk,
                    details={"vendor_code": exc.vendor_code, "field": exc.field},
                ) from exc
            raise
        status = netsuite_mapping.invoice_status_from_netsuite(
            client.get_invoice(internal_id), today=timezone.now().date()
        )
        bindings.bind(erp, "invoice", key, internal_id, run=ctx.run)
        timeline.stamp(ctx.run.business_key, "invoiced", source=erp.name)
        audit.record(
            "erp.invoice.upserted",
            f"Invoice {status.number} ({status.total} {invoice.currency}) upserted in "
            f"{erp.name} for milestone {completion.name}",
            correlation_id=ctx.run.correlation_id,
            connection=erp.name,
            external_id=internal_id,
            idempotency_key=key,
        )
        return {"invoice": status.model_dump(mode="json"), "currency": invoice.currency}

    def build(self, ctx: StepContext) -> tuple[Connection, schemas.Invoice, dict[str, Any]]:
        """The ERP, the canonical invoice and the body the upsert sends (no call is made;
        the console's pre-flight check shows it before a retry)."""
        completion, opp = loaded(ctx)
        customer = ctx.output("ensure_invoice_customer")
        erp = self.connection(ctx)
        item_id = str(erp.settings.get("milestone_item_id") or "")
        if not item_id:
            raise StepError(
                "erp_configuration_missing",
                f"{erp.name} has no milestone billing item configured (connection setting "
                "milestone_item_id).",
                entity_type="connection",
                entity_ref=erp.name,
                connection_id=erp.pk,
            )
        key = invoice_key(ctx)
        invoice = schemas.validate(
            schemas.Invoice,
            {
                "key": key,
                "customer_erp_id": customer["erp_customer_id"],
                "legal_entity_code": opp.legal_entity_code,
                "currency": completion.currency,
                "invoice_date": completion.completed_on,
                "due_date": completion.completed_on + dt.timedelta(days=PAYMENT_TERMS_DAYS),
                "lines": [
                    {
                        "description": f"{opp.name}: {completion.name}"[:255],
                        "unit_price": completion.amount,
                        "amount": completion.amount,
                    }
                ],
                "project_key": completion.project_key,
                "memo": f"Milestone {completion.name} of {opp.name}"[:255],
            },
            source="milestone billing",
        )
        body = netsuite_mapping.invoice_to_netsuite(
            invoice,
            subsidiary_id=customer["subsidiary_id"],
            currency_id=erp_customers.currency_id(
                customer["currency_ids"], invoice.currency, erp, key
            ),
            item_id=item_id,
        )
        return erp, invoice, body


class UpdatePsa(Step):
    name = "update_psa"
    system = SystemKind.PSA
    entity_type = "milestone"

    def entity_ref(self, ctx: StepContext) -> str:
        return str(ctx.run.input.get("story_id", ""))

    def run(self, ctx: StepContext) -> dict[str, Any]:
        psa = self.connection(ctx)
        invoice = schemas.InvoiceStatus.model_validate(ctx.output("create_invoice")["invoice"])
        story_id = str(ctx.run.input["story_id"])
        ctx.client(psa).set_story_reference(
            story_id, ref=invoice.number, model="Invoice", status=psa_status(invoice)
        )
        governance.record_write(psa, "story", story_id, {"invoice": invoice.number})
        return {"reference": invoice.number}


class UpdateCrm(Step):
    name = "update_crm"
    system = SystemKind.CRM
    entity_type = "invoice"
    rejection_code = "write_back_rejected"

    def run(self, ctx: StepContext) -> dict[str, Any]:
        crm = self.connection(ctx)
        _completion, opp = loaded(ctx)
        out = ctx.output("create_invoice")
        invoice = schemas.InvoiceStatus.model_validate(out["invoice"])
        fields = salesforce_mapping.invoice_status_to_salesforce(
            invoice, opportunity_id=opp.source_id, currency=out["currency"]
        )
        record_id, _created = ctx.client(crm).upsert_invoice_status(invoice_key(ctx), fields)
        governance.record_write(crm, "invoice", str(record_id or invoice_key(ctx)), fields)
        return {"crm_invoice_id": record_id}


def psa_status(invoice: schemas.InvoiceStatus) -> str:
    return {"paid": "paid", "overdue": "overdue", "cancelled": "cancelled"}.get(
        invoice.state, "synced"
    )


class ReleaseMilestoneBilling(Workflow):
    name = WORKFLOW
    title = "Release milestone billing"
    milestone = "invoice_created"
    steps = [LoadMilestone(), EnsureInvoiceCustomer(), CreateInvoice(), UpdatePsa(), UpdateCrm()]
