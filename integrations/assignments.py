"""synchronize-resource-assignment: who is assigned to which project, from the PSA (which
owns assignments) to the ERP that does the project's accounting (its ERP route), as resource
allocations upserted by the assignment's id. Assignments that cannot be placed (a project the
ERP does not have, a person who is no employee there) become exceptions grouped per project.
An assignment of a subcontractor (a PSA user bound to a vendor) becomes a purchase order to
the vendor instead (`purchase_orders`), refused the same way.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.utils.dateparse import parse_datetime

from . import bindings
from .canonical.errors import MappingError
from .choices import ErpDocument
from .connectors.kantata import mapping as kantata_mapping
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .models import Connection, PostingBatch, Watermark
from .purchase_orders import PurchaseOrders
from .routing import erp_for
from .signals import posting_rejected
from .telemetry import CallBuffer
from .workflows.failures import StepFailure

logger = logging.getLogger(__name__)

STREAM = "kantata.assignments"


@dataclass
class AssignmentResult:
    read: int = 0
    synced: int = 0
    refused: int = 0
    purchase_orders: int = 0


def sync_assignments(psa: Connection) -> AssignmentResult:
    mark, _ = Watermark.objects.get_or_create(connection=psa, stream=STREAM)
    since = parse_datetime(mark.value) if mark.value else None
    buffer = CallBuffer()
    psa_client = build_client(psa, on_call=buffer)
    erp_clients: dict[int, object] = {}
    orders = PurchaseOrders(psa, psa_client, on_call=buffer)
    result = AssignmentResult()
    refused: dict[tuple[str, str], list[str]] = defaultdict(list)
    newest = since
    try:
        for raw in psa_client.assignments(since):
            result.read += 1
            changed = parse_datetime(str(raw.get("updated_at") or ""))
            if changed is not None and (newest is None or changed > newest):
                newest = changed
            try:
                assignment = kantata_mapping.assignment_from_kantata(raw)
            except MappingError:
                refused[("assignment_invalid", str(raw.get("workspace_id")))].append(
                    str(raw.get("id"))
                )
                continue
            workspace = assignment.psa_project_id
            deal_key = bindings.canonical_key(psa, "project", workspace)
            if deal_key is None:
                continue  # a project Throughline does not manage: nothing to place
            legal_entity, start, end = _project_frame(deal_key)
            erp = erp_for(legal_entity, ErpDocument.PROJECT) if legal_entity else None
            job_id = bindings.lookup(erp, "project", deal_key) if erp else None
            if erp is None or job_id is None:
                refused[("project_not_in_erp", workspace)].append(assignment.source_id)
                continue
            vendor_key = orders.vendor_of(assignment.person_id)
            if vendor_key is not None:  # a subcontractor: ordered from their firm
                code = orders.place(
                    assignment,
                    vendor_key=vendor_key,
                    erp=erp,
                    job_id=job_id,
                    project_key=deal_key,
                    legal_entity=legal_entity,
                    start=start,
                )
                if code is not None:
                    refused[(code, workspace)].append(assignment.source_id)
                elif assignment.allocated_hours != 0:
                    result.synced += 1
                continue
            person = bindings.canonical_key(psa, "person", assignment.person_id)
            employee = bindings.lookup(erp, "person", person) if person else None
            if employee is None:
                refused[("person_not_in_erp", workspace)].append(assignment.source_id)
                continue
            client = erp_clients.get(erp.pk) or build_client(erp, on_call=buffer)
            erp_clients[erp.pk] = client
            if assignment.allocated_hours == 0:  # the assignment ended: end the allocation
                bound = bindings.lookup(erp, "assignment", assignment.source_id)
                if bound:
                    client.delete_record("resourceAllocation", bound)
                    bindings.unbind(erp, "assignment", assignment.source_id)
                continue
            body = netsuite_mapping.allocation_from_assignment(
                assignment,
                employee_id=employee,
                job_id=job_id,
                default_start=start,
                default_end=end,
            )
            allocation_id = client.upsert_allocation(body["externalId"], body)
            bindings.bind(erp, "assignment", assignment.source_id, allocation_id)
            result.synced += 1
    finally:
        psa_client.close()
        orders.close()
        for client in erp_clients.values():
            client.close()
        buffer.flush()
    result.purchase_orders = orders.placed
    with transaction.atomic():
        for (code, workspace), ids in refused.items():
            result.refused += len(ids)
            failure = StepFailure(
                kind="business",
                code=code,
                message=f"{len(ids)} resource assignments of project {workspace} cannot be "
                "placed in the ERP.",
                entity_type="project",
                entity_ref=workspace,
                connection_id=psa.pk,
                details={
                    "entries": ids[:500],
                    "count": len(ids),
                    **orders.details(code, workspace),
                },
            )
            posting_rejected.send(
                sender=PostingBatch, failure=failure, key=(psa.name, "assignment", code, workspace)
            )
        if newest is not None:
            mark.value = newest.isoformat()
            mark.save(update_fields=["value", "updated_at"])
    return result


def _project_frame(deal_key: str) -> tuple[str, dt.date | None, dt.date | None]:
    """The project's legal entity, start and planned end, from its hand-off."""
    from .models import ProjectTemplate, SyncRun

    run = SyncRun.objects.filter(
        workflow="create_service_engagement", correlation_id=deal_key
    ).first()
    if run is None or "fetch_deal" not in run.context:
        return "", None, None
    start = dt.date.fromisoformat(run.context["fetch_deal"]["opportunity"]["close_date"])
    template = ProjectTemplate.objects.filter(
        code=run.context.get("provision_project", {}).get("template", "")
    ).first()
    end = start + dt.timedelta(days=template.duration_days if template else 90)
    return run.legal_entity_code, start, end
