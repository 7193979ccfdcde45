"""What every reconciliation action shares: the refusals (the exception queues' own classes,
so the pages and the API answer them alike), the outcome per difference and the role check.

Actions change differences, never a run's summary: a run's counts and amount at risk are what
it found (the revenue posting accuracy KPI reads them); an acceptance counts from the next
run on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from exceptions.actions import ActionRefused, InvalidInput, NotAllowed

from ..models import Difference
from .permissions import REFUSAL, can_act

__all__ = [
    "MAX_DIFFERENCES",
    "ActionRefused",
    "InvalidInput",
    "NotAllowed",
    "Outcome",
    "require_actor",
]

#: differences one request may act on (a bulk of more goes in several requests)
MAX_DIFFERENCES = 500


@dataclass(frozen=True)
class Outcome:
    """What an action did to one difference (`ok` False: refused, with the reason)."""

    difference: Difference
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "difference": self.difference.pk,
            "key": self.difference.key,
            "ok": self.ok,
            "message": self.message,
            "state": self.difference.state,
        }


def require_actor(user: Any, differences: Iterable[Difference] = ()) -> list[Difference]:
    """Refuse people who may not act, and requests over MAX_DIFFERENCES; the differences."""
    if not can_act(user):
        raise NotAllowed(REFUSAL)
    chosen = list(differences)
    if len(chosen) > MAX_DIFFERENCES:
        raise InvalidInput(
            f"Act on at most {MAX_DIFFERENCES} differences at a time ({len(chosen)} selected)."
        )
    return chosen
