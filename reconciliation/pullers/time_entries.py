"""Time: approved PSA time entries (Kantata) against the time bills Throughline posted to the
ERP (NetSuite), and the re-sync that posts entries again.

The key is the PSA time entry id: integrations.postings posts each entry as a timeBill whose
externalId is that id (there is no binding per entry; the externalId is the link). Hours,
person and project are compared, and the day the time was performed; both sides name the
person and the project by their canonical keys, through the bindings (people as the
reference-data sync bound them, projects as the deal key the hand-off bound), so a time bill
moved to another employee or job in the ERP shows as a field difference.

PSA side: approved entries (Kantata's `approved` filter: approved, or in a project without
time approval) of projects Throughline provisioned whose postings go to the definition's ERP
(today's route for the deal's legal entity, as postings uses); incremental by updated_at.
Status "approved".

ERP side: the time bills carrying an externalId (time posted by an integration; hours people
typed into the ERP themselves are not Throughline's to reconcile), incremental by
lastmodifieddate. Status "approved" when supervisorapproval is set, else "not_approved".
A person or project the bindings do not know shows as `erp-employee:<id>` or
`erp-project:<id>`, a PSA user as `psa-user:<id>`: a difference a person can read.

Validation: hours or a day that cannot be read raise ResponseShapeError naming the record
(the run fails with the reason rather than report a false difference); entries out of scope
are skipped and counted in the log. Incremental pulls cannot see an entry leave (deleted, its
approval withdrawn): the next full pull does.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from decimal import Decimal

from integrations.choices import ErpDocument
from integrations.connectors.kantata.mapping import hours_from_minutes
from integrations.postings import repost_time_entries

from ..models import Definition, Side, SnapshotRecord
from ..pulling import PullContext
from ..records import PulledRecord
from .handoffs import Deals
from .scoping import ErpScope, keys_of
from .values import CENT, amount, day, newest, shape_error, stamp

logger = logging.getLogger(__name__)


def psa_time_entries(ctx: PullContext) -> dt.datetime | None:
    """Emit the PSA's approved time entries in scope; return the newest updated_at seen."""
    psa, erp = ctx.connection, ctx.definition.target
    deals = Deals(psa)
    scope = ErpScope(erp)
    people = keys_of(psa, "person")
    latest: dt.datetime | None = None
    skipped = {"not provisioned by Throughline": 0, "posted to another ERP": 0}
    operation = "kantata.time_entries.list"
    for entry in ctx.client.approved_time_entries(ctx.since):
        latest = newest(latest, stamp(entry.get("updated_at")))
        deal = deals.of_workspace(str(entry.get("workspace_id")))
        if deal is None:
            skipped["not provisioned by Throughline"] += 1
            continue
        if not scope.routes_here(deal.legal_entity, ErpDocument.POSTING):
            skipped["posted to another ERP"] += 1
            continue
        eid = str(entry["id"])
        where = f"Kantata time entry {eid}"
        minutes = entry.get("time_in_minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
            raise shape_error(
                operation, entry, f"{where}: time_in_minutes {minutes!r} is not minutes"
            )
        user = str(entry.get("user_id") or "")
        ctx.emit(
            PulledRecord(
                key=eid,
                native_id=eid,
                legal_entity=deal.legal_entity,
                status="approved",
                day=day(operation, entry, "date_performed", where, required=True),
                fields={
                    "hours": _hours(hours_from_minutes(minutes)),
                    "person": people.get(user) or f"psa-user:{user}",
                    "project": deal.key,
                },
                modified_at=stamp(entry.get("updated_at")),
            )
        )
    for reason, count in skipped.items():
        if count:
            logger.info(
                "reconciliation %s: %d time entries skipped: %s", ctx.definition, count, reason
            )
    return latest


def erp_time_bills(ctx: PullContext) -> dt.datetime | None:
    """Emit the time bills an integration posted to the ERP; return the newest
    lastmodifieddate seen."""
    erp = ctx.connection
    people = keys_of(erp, "person")
    projects = keys_of(erp, "project")
    entities = keys_of(erp, "legal_entity")
    latest: dt.datetime | None = None
    operation = "netsuite.timebill.list"
    for row in ctx.client.time_bills(ctx.since):
        latest = newest(latest, stamp(row.get("lastmodifieddate")))
        rid = str(row["id"])
        where = f"NetSuite time bill {rid}"
        employee, job = str(row.get("employee") or ""), str(row.get("customer") or "")
        ctx.emit(
            PulledRecord(
                key=str(row.get("externalid") or f"erp-timebill:{rid}"),
                native_id=rid,
                legal_entity=entities.get(str(row.get("subsidiary") or ""), ""),
                status="approved" if row.get("supervisorapproval") == "T" else "not_approved",
                day=day(operation, row, "trandate", where, required=True),
                fields={
                    "hours": _hours(amount(operation, row, "hours", where, required=True)),
                    "person": people.get(employee) or f"erp-employee:{employee}",
                    "project": projects.get(job) or f"erp-project:{job}",
                },
                modified_at=stamp(row.get("lastmodifieddate")),
            )
        )
    return latest


def _hours(value: Decimal) -> str:
    """Hours to the hundredth (the PSA's minutes give no finer), as compared text."""
    return format(value.quantize(CENT), "f")


def resync(definition: Definition, keys: Iterable[str]) -> dict[str, str]:
    """Post the entries with these keys to the ERP again (integrations.postings'
    `repost_time_entries`: an upsert by externalId each, so a missing time bill is created
    and a drifted one corrected, never a second one). Returns {key: what happened, in
    words}: "queued: ..." when the entry was posted (the next run confirms it), "cannot
    re-sync: ..." when only a person can resolve it (a time bill without an approved entry,
    several time bills for one entry, an entry the posting policy refuses)."""
    wanted = list(dict.fromkeys(keys))
    rows: dict[tuple[str, str], list[SnapshotRecord]] = {}
    for row in SnapshotRecord.objects.filter(definition=definition, key__in=wanted):
        rows.setdefault((row.key, row.side), []).append(row)
    outcomes: dict[str, str] = {}
    postable: list[str] = []
    for key in wanted:
        source = rows.get((key, Side.SOURCE), [])
        target = rows.get((key, Side.TARGET), [])
        if len(target) > 1:
            ids = ", ".join(sorted(row.native_id for row in target))
            outcomes[key] = (
                f"cannot re-sync: {definition.target.name} holds {len(target)} time bills "
                f"for this entry ({ids}); delete the extra ones there"
            )
        elif not source and target:
            outcomes[key] = (
                f"cannot re-sync: no approved time entry in {definition.source.name} has "
                f"time bill {target[0].native_id}; delete it in {definition.target.name} or "
                "accept the difference with a reason"
            )
        elif not source:
            outcomes[key] = "cannot re-sync: the key is in neither side's latest pull"
        else:
            postable.append(source[0].native_id)
    if postable:
        posted = repost_time_entries(definition.source, definition.target, postable)
        for entry_id, outcome in posted.items():
            outcomes[entry_id] = outcome if outcome.startswith("cannot") else f"queued: {outcome}"
    return {key: outcomes[key] for key in wanted}
