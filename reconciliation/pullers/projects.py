"""Projects: the PSA's projects of handed-off deals against the ERP's projects (jobs).

Source, Kantata (`psa_projects`): workspaces, archived ones too, through the client
(`workspaces_changed`, incremental by `updated_after`). A workspace is a handed-off deal's
when it is bound to a project key (entity type "project", written by the provisioning
step), else when it carries Throughline's external reference, else Throughline's marker
(`[throughline deal:...]`, written into the description when the workspace is created: a
copy of the workspace carries it too, so a copy is a duplicate). Other workspaces (internal
ones, say) are not projects of deals and are not pulled.

Target, NetSuite (`erp_projects`): jobs by SuiteQL (`jobs_changed_since`, incremental by
lastmodifieddate). Key from the job's project binding; a job whose binding is gone but which
carries Throughline's external id (`TL-PRJ-<Opportunity Id>`) keeps the deal's key; any other
job is keyed `erp-job:<internal id>` (missing in source).

Key: the canonical project key, `deal:<Opportunity Id>` (`integrations.workflows.planning.
plan_project`).

Scope: a workspace belongs in the definition's ERP when its project is bound there, or when
today's route for project documents of its legal entity leads there.

Compared, beyond presence:
- status, one vocabulary: `active` | `closed`. Kantata's workspace status (its `status.key`:
  below 500 - Not Started 300, Active 401, On Hold 410 - is `active`; 500 Completed, 501
  Cancelled and above are `closed`); an archived workspace is `closed`. The ERP job's
  `isInactive` makes it `closed`. Nothing carries a project's status from the PSA to the ERP
  today, so a status difference is for the PMO, not for a re-sync.
- name: the workspace title vs the job's companyName.
- date: the workspace's start_date vs the job's startDate.
Shown: `legal_entity` (the workspace description's "Legal entity:" line, written by
provisioning; the job's subsidiary through the legal-entity binding).

Validation: as for customers (see reconciliation.pullers.customers): a row that is not what
the vendor's schema guarantees raises ResponseShapeError; empty optional values compare as
empty.

Re-sync (`resync`): runs the step that writes the ERP job (`push_contract_to_erp` of the
deal's create-service-engagement run) again through `integrations.services.rerun_steps`: it
upserts the job by external id (a renamed job is renamed back, a deleted one created again
and bound) and its billing plan. That billing plan is the deal's original one: for an
amended deal, re-sync the contracts comparison afterwards to apply the amendment again. Not
fixed by a re-sync: statuses, a title edited in the PSA (the job gets the planned name, not
the PSA's), copies, jobs Throughline did not create.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from integrations.choices import ErpDocument, RunStatus
from integrations.models import Connection, SyncRun
from integrations.workflows.billing_plan import WORKFLOW as UPDATE_BILLING_PLAN

from ..models import Definition
from ..pulling import PullContext
from ..records import PulledRecord
from . import reruns
from .scoping import ErpScope, external_ids_of, keys_of
from .values import (
    day,
    flag,
    need_record,
    newest,
    shape_error,
    text,
    utc_stamp,
)

ENTITY = "project"
KEY_PREFIX = "deal:"
#: the external id Throughline gives an ERP job (service_engagement.PushContractToErp)
JOB_PREFIX = "TL-PRJ-"
ACTIVE, CLOSED = "active", "closed"
#: Kantata status keys from here on are finished projects (500 Completed, 501 Cancelled)
FINISHED_STATUS = 500
PSA_OPERATION = "reconciliation.projects.psa"
ERP_OPERATION = "reconciliation.projects.erp"
_MARKER = re.compile(r"\[throughline (deal:[A-Za-z0-9]+)\]")
_LEGAL_ENTITY = re.compile(r"^Legal entity: *(\S+) *$", re.MULTILINE)


# -- source: Kantata workspaces ---------------------------------------------------------------
def psa_projects(ctx: PullContext) -> dt.datetime | None:
    """Pull the workspaces of handed-off deals (see the module docstring)."""
    workspaces = list(ctx.client.workspaces_changed(ctx.since))
    ids = [need_record(PSA_OPERATION, w, "id") for w in workspaces]
    keys = keys_of(ctx.connection, ENTITY, ids)
    latest: dt.datetime | None = None
    found: list[tuple[str, str, dict[str, Any]]] = []
    for wid, workspace in zip(ids, workspaces, strict=True):
        latest = newest(latest, utc_stamp(PSA_OPERATION, workspace, "updated_at", wid))
        key = keys.get(wid) or _reference_key(workspace, wid) or _marker_key(workspace, wid)
        if key:
            found.append((key, wid, workspace))
    erp = ctx.definition.target
    scope = ErpScope(erp)
    in_erp = external_ids_of(erp, ENTITY, [key for key, _wid, _w in found])
    for key, wid, workspace in found:
        legal_entity = _legal_entity(workspace, wid)
        if key not in in_erp and not scope.routes_here(legal_entity, ErpDocument.PROJECT):
            continue
        ctx.emit(
            PulledRecord(
                key=key,
                native_id=wid,
                legal_entity=legal_entity,
                status=_psa_status(workspace, wid),
                day=day(PSA_OPERATION, workspace, "start_date", wid),
                fields={
                    "name": text(PSA_OPERATION, workspace, "title", wid),
                    "legal_entity": legal_entity,
                },
                modified_at=utc_stamp(PSA_OPERATION, workspace, "updated_at", wid),
            )
        )
    return latest


def _reference_key(workspace: dict[str, Any], wid: str) -> str:
    ref = text(PSA_OPERATION, workspace, "throughline_ref", wid)
    return ref if ref.startswith(KEY_PREFIX) else ""


def _marker_key(workspace: dict[str, Any], wid: str) -> str:
    for name in ("description", "title"):
        match = _MARKER.search(text(PSA_OPERATION, workspace, name, wid))
        if match:
            return match.group(1)
    return ""


def _legal_entity(workspace: dict[str, Any], wid: str) -> str:
    match = _LEGAL_ENTITY.search(text(PSA_OPERATION, workspace, "description", wid))
    return match.group(1) if match else ""


def _psa_status(workspace: dict[str, Any], wid: str) -> str:
    if flag(PSA_OPERATION, workspace, "archived", wid):
        return CLOSED
    status = workspace.get("status")
    key = status.get("key") if isinstance(status, dict) else None
    if isinstance(key, str) and key.isdigit():
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int):
        raise shape_error(PSA_OPERATION, workspace, f"{wid}: status has no numeric key")
    return CLOSED if key >= FINISHED_STATUS else ACTIVE


# -- target: NetSuite jobs --------------------------------------------------------------------
def erp_projects(ctx: PullContext) -> dt.datetime | None:
    """Pull the ERP's jobs (see the module docstring)."""
    rows = ctx.client.jobs_changed_since(ctx.since)
    jobs = read_jobs(ctx.connection, rows, ERP_OPERATION)
    latest: dt.datetime | None = None
    for job in jobs:
        latest = newest(latest, job.modified)
        ctx.emit(
            PulledRecord(
                key=job.key,
                native_id=job.id,
                legal_entity=job.legal_entity,
                status=CLOSED if job.inactive else ACTIVE,
                day=job.start,
                fields={
                    "name": job.name,
                    "legal_entity": job.legal_entity,
                    "external_id": job.external_id,
                },
                modified_at=job.modified,
            )
        )
    return latest


class Job:
    """A NetSuite job row, checked, with its canonical key and legal entity."""

    __slots__ = (
        "currency_id",
        "external_id",
        "id",
        "inactive",
        "key",
        "legal_entity",
        "modified",
        "name",
        "start",
    )

    def __init__(self, row: Any, operation: str) -> None:
        self.id = need_record(operation, row, "id")
        self.external_id = text(operation, row, "externalid", self.id)
        self.name = text(operation, row, "companyname", self.id)
        self.currency_id = text(operation, row, "currency", self.id)
        self.inactive = flag(operation, row, "isinactive", self.id)
        self.start = day(operation, row, "startdate", self.id)
        self.modified = utc_stamp(operation, row, "lastmodifieddate", self.id)
        self.key = ""
        self.legal_entity = text(operation, row, "subsidiary", self.id)  # resolved below


def read_jobs(erp: Connection, rows: list[Any], operation: str) -> list[Job]:
    """Job rows checked and keyed: the project binding, else Throughline's external id,
    else `erp-job:<id>`; the subsidiary turned into its legal entity through the bindings."""
    jobs = [Job(row, operation) for row in rows]
    keys = keys_of(erp, ENTITY, [job.id for job in jobs])
    entities = keys_of(erp, "legal_entity", {job.legal_entity for job in jobs})
    for job in jobs:
        job.key = keys.get(job.id) or _job_key(job.external_id) or f"erp-job:{job.id}"
        job.legal_entity = entities.get(job.legal_entity, "")
    return jobs


def _job_key(external_id: str) -> str:
    if external_id.startswith(JOB_PREFIX) and len(external_id) > len(JOB_PREFIX):
        return f"{KEY_PREFIX}{external_id[len(JOB_PREFIX) :]}"
    return ""


# -- re-sync ------------------------------------------------------------------------------------
def resync(definition: Definition, keys: list[str]) -> dict[str, str]:
    """Write these deals' ERP jobs again (see the module docstring); what happened to each
    key, in words."""
    outcomes: dict[str, str] = {}
    for key in dict.fromkeys(keys):
        if not key.startswith(KEY_PREFIX):
            outcomes[key] = "not a project Throughline created: nothing to re-sync"
            continue
        run = reruns.handoff(key)
        if run is None:
            deal_id = key[len(KEY_PREFIX) :]
            outcomes[key] = reruns.start(
                reruns.SERVICE_ENGAGEMENT, key, {"Id": deal_id}, crm=_primary_crm()
            )
            continue
        outcomes[key] = reruns.rerun(
            run, ["push_contract_to_erp"], reason=f"reconciliation re-sync {key}"
        )
        amended = SyncRun.objects.filter(
            workflow=UPDATE_BILLING_PLAN, business_key=key, status=RunStatus.SUCCEEDED
        ).exists()
        if amended and outcomes[key].startswith("queued"):
            outcomes[key] += (
                "; the billing plan goes back to the deal's original one: re-sync the "
                "contracts comparison afterwards to apply the amendment again"
            )
    return outcomes


def _primary_crm() -> Connection | None:
    """The CRM a deal without a run is read from (the primary one: this comparison's source
    is the PSA)."""
    return Connection.objects.filter(system="crm", enabled=True).order_by("pk").first()
