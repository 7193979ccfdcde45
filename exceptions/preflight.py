"""The pre-flight check before a retry or a restart: may it run now, was the record created
after all (looked up in each target system), and what will the next attempt send (the
request body, built with the current mapping from the data it will use)?

Nothing here writes. The lookups and the mapping are the engine's (integrations.services:
`look_up_in_targets`, `preview_replay`); this module puts them together for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from console.models import User
from integrations import services as engine
from integrations.choices import RunStatus
from integrations.workflows.registry import get_workflow

from . import masking
from .actions import can_act
from .choices import ExceptionStatus
from .models import IntegrationException

RETRY = "retry"
RESTART = "restart"
MODES = (RETRY, RESTART)


@dataclass
class Preflight:
    """What a retry (or restart) of one exception would do, checked before it is done."""

    exception: IntegrationException
    mode: str
    #: what the action does, in words
    plan: str
    #: why it cannot run now ("" when it can)
    refusal: str = ""
    #: integrations.preview.TargetLookup items
    lookups: list[Any] = field(default_factory=list)
    lookup_note: str = ""
    #: integrations.preview.StepPreview items
    previews: list[Any] = field(default_factory=list)
    #: how many records the action touches
    records: int = 1

    @property
    def allowed(self) -> bool:
        return not self.refusal

    @property
    def already_there(self) -> list[Any]:
        """The records found in their targets: a replay finds them instead of creating more."""
        return [lookup for lookup in self.lookups if lookup.found]

    @property
    def problems(self) -> list[str]:
        """Why the next attempt would fail again, as the previews see it."""
        return [p.problem for p in self.previews if p.problem]


def _refusal(exc: IntegrationException, user: User, mode: str) -> str:
    if not can_act(user, exc):
        return f"Only members of {exc.queue.team} with a resolver role can {mode} this exception."
    if exc.status == ExceptionStatus.RESOLVED:
        return "This exception is already resolved."
    if exc.run is None:
        if mode == RESTART:
            return "Nothing to restart: this exception has no workflow run. Use Retry."
        if exc.connection is None:
            return "Nothing to retry: this exception has no run or connection."
        return ""
    if exc.run.status != RunStatus.FAILED:
        return "The run is already queued or running; wait for its result."
    return ""


def _plan(exc: IntegrationException, mode: str) -> str:
    if exc.run is None:
        return f"Retry reads {exc.connection} again (one poll of its change streams)."
    steps = get_workflow(exc.run.workflow).step_names()
    if mode == RESTART:
        return (
            f"Restart runs all {len(steps)} steps of {exc.run.workflow} again from "
            f"{steps[0]}, with the current mapping. Each step looks in its target before it "
            "writes, so nothing is created twice."
        )
    step = exc.step.name if exc.step_id else "the failed step"
    return (
        f"Retry resumes the run at {step}; the steps that succeeded keep their results, so "
        "nothing is created twice."
    )


def check(exc: IntegrationException, user: User, mode: str = RETRY) -> Preflight:
    """The pre-flight check of a retry (`mode` "retry") or restart of `exc` by `user`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    report = Preflight(exception=exc, mode=mode, plan=_plan(exc, mode))
    report.refusal = _refusal(exc, user, mode)
    if exc.run is None or not can_act(user, exc):
        report.lookup_note = "No lookup for this exception: it has no workflow run."
        return report
    report.lookups = engine.look_up_in_targets(exc.run)
    if not report.lookups:
        report.lookup_note = (
            f"No lookup for the records of {exc.run.workflow}: its steps read their data "
            "again and write by external id."
        )
    if exc.run.status == RunStatus.FAILED:
        report.previews = [
            _masked(p, user) for p in engine.preview_replay(exc.run, restart=mode == RESTART)
        ]
    return report


def _masked(preview: Any, user: User) -> Any:
    """A preview as `user` may see it: money, bank and tax fields masked without finance
    rights (exceptions.masking), like the payload on the exception's page."""
    preview.sends = [(what, masking.data_for(user, body)) for what, body in preview.sends]
    if preview.uses is not None:
        preview.uses = masking.data_for(user, preview.uses)
    return preview
