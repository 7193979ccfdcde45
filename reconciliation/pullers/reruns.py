"""What the re-syncers of customers, contracts and projects share: finding the engine run
that wrote a record, and asking the engine (its public services only) to run it again.

Outcomes are words for people; one that starts with "queued" says the re-sync was accepted
(reconciliation.actions.resync marks the difference so)."""

from __future__ import annotations

from integrations import services
from integrations.choices import RunStatus, Trigger
from integrations.models import Connection, SyncRun
from integrations.workflows.service_engagement import WORKFLOW as SERVICE_ENGAGEMENT

__all__ = ["SERVICE_ENGAGEMENT", "handoff", "rerun", "start"]


def handoff(deal_key: str) -> SyncRun | None:
    """The create-service-engagement run of a deal (`deal:<opportunity id>`), if any."""
    return SyncRun.objects.filter(workflow=SERVICE_ENGAGEMENT, correlation_id=deal_key).first()


def rerun(run: SyncRun, steps: list[str], *, reason: str) -> str:
    """Run `steps` of `run` again; what happened, in words."""
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
        return f"run {run.pk} ({run.workflow}) is already under way"
    if services.rerun_steps(run, steps, reason=reason):
        return f"queued: {', '.join(steps)} of run {run.pk} ({run.workflow}) run again"
    return f"run {run.pk} ({run.workflow}) is already under way"


def start(
    workflow: str,
    correlation_id: str,
    payload: dict[str, str],
    *,
    crm: Connection | None,
    business_key: str = "",
) -> str:
    """Start the run of a transaction that has none yet (as the CRM poll would have)."""
    run, created = services.start_run(
        workflow,
        correlation_id,
        trigger=Trigger.MANUAL,
        source_connection=crm,
        payload={**payload, "source": "reconciliation"},
        business_key=business_key,
    )
    if created:
        return f"queued: run {run.pk} ({workflow} {correlation_id}) started"
    return f"run {run.pk} ({workflow} {correlation_id}) exists already ({run.status})"
