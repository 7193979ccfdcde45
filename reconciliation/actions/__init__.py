"""What people do in reconciliation, for the pages and the API alike: each checks the actor's
role (`permissions.can_act`), refuses cleanly what it cannot do (the exception queues'
ActionRefused / NotAllowed / InvalidInput) and is audited."""

from collections.abc import Iterable
from typing import Any

from ..models import Difference
from ..runs import active_run
from .accept import accept
from .common import MAX_DIFFERENCES, ActionRefused, InvalidInput, NotAllowed, Outcome
from .definitions import EDITABLE, start_run, update_definition
from .open_exceptions import open_exceptions
from .permissions import REFUSAL, CanActOrReadOnly, can_act, can_see_amounts
from .resync import resync

#: the actions on selected differences, by the name the pages and the API use
ON_DIFFERENCES = ("resync", "open_exception", "accept")


def act(
    action: str, differences: Iterable[Difference], user: Any, reason: str | None = None
) -> list[Outcome]:
    """Run one of ON_DIFFERENCES on the differences."""
    if action == "resync":
        return resync(differences, user)
    if action == "open_exception":
        return open_exceptions(differences, user)
    if action == "accept":
        return accept(differences, user, reason)
    raise InvalidInput(f"Unknown action {action!r}: choose one of {', '.join(ON_DIFFERENCES)}.")


__all__ = [
    "EDITABLE",
    "MAX_DIFFERENCES",
    "ON_DIFFERENCES",
    "REFUSAL",
    "ActionRefused",
    "CanActOrReadOnly",
    "InvalidInput",
    "NotAllowed",
    "Outcome",
    "accept",
    "act",
    "active_run",
    "can_act",
    "can_see_amounts",
    "open_exceptions",
    "resync",
    "start_run",
    "update_definition",
]
