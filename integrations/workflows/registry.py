"""The workflows Throughline knows, by name."""

from __future__ import annotations

from .base import Workflow
from .billing_plan import UpdateBillingPlan
from .milestone_billing import ReleaseMilestoneBilling
from .service_engagement import CreateServiceEngagement

WORKFLOWS: dict[str, Workflow] = {
    wf.name: wf
    for wf in (CreateServiceEngagement(), ReleaseMilestoneBilling(), UpdateBillingPlan())
}


def get_workflow(name: str) -> Workflow:
    try:
        return WORKFLOWS[name]
    except KeyError:
        raise LookupError(f"unknown workflow {name!r}") from None
