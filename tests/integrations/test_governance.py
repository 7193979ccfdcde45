"""No sync loops, and the system of record decides what propagates.

The loop test mirrors one field between two systems in both directions, the way a
bidirectional sync does: every write Throughline makes shows up as a change in the system it
wrote to. Without echo suppression the mirror never settles (the test proves it runs until
its cap); with it, each side is written once and the echoes are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from exceptions.choices import ExceptionCode
from exceptions.models import IntegrationException
from integrations import governance
from tests.factories import make_connection, make_queue, make_team

pytestmark = pytest.mark.django_db


@dataclass
class System:
    """A connected system's record store and its change feed (what it reports as changed)."""

    connection: Any
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    feed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def write(self, rid: str, values: dict[str, Any]) -> None:
        changed = {k: v for k, v in values.items() if self.records.setdefault(rid, {}).get(k) != v}
        self.records[rid].update(values)
        if changed:
            self.feed.append((rid, changed))


def mirror(a: System, b: System, *, suppress_echo: bool, cap: int = 50) -> int:
    """Pump both change feeds, copying each change to the other system; return the rounds."""
    rounds = 0
    while (a.feed or b.feed) and rounds < cap:
        rounds += 1
        for source, target in ((a, b), (b, a)):
            events, source.feed = source.feed, []
            for rid, changes in events:
                if suppress_echo:
                    review = governance.review_change(source.connection, "project", rid, changes)
                    changes = review.propagate
                if changes:
                    target.write(rid, changes)
                    if suppress_echo:
                        governance.record_write(target.connection, "project", rid, changes)
    return rounds


@pytest.fixture
def systems(settings):
    # Both systems own the mirrored field here, so only echo suppression is under test.
    from integrations.models import SystemOfRecordRule

    SystemOfRecordRule.objects.update_or_create(
        entity="project", field="status", defaults={"owner": "psa"}
    )
    psa = System(make_connection("kantata"))
    crm_like = System(make_connection("kantata", name="second-psa"))
    return psa, crm_like


def test_without_echo_suppression_a_two_way_sync_never_settles(systems):
    psa, other = systems
    psa.write("P1", {"status": "active"})
    other.write("P1", {"status": "on hold"})
    assert mirror(psa, other, suppress_echo=False) == 50  # hit the cap: it would go forever


def test_own_writes_coming_back_are_dropped_and_the_sync_settles(systems):
    psa, other = systems
    psa.write("P1", {"status": "active"})
    rounds = mirror(psa, other, suppress_echo=True)
    assert rounds <= 2
    assert other.records["P1"]["status"] == "active"
    assert psa.feed == [] and other.feed == []


def test_a_change_from_a_system_that_does_not_own_the_field_is_not_propagated():
    make_queue(make_team("pmo"), "PMO EMEA")
    psa = make_connection("kantata")
    review = governance.review_change(
        psa, "project", "W7", {"budget": "99000.00", "title": "New name"}
    )
    assert review.violations == {"budget": "crm"}  # the CRM contract owns the budget
    assert review.propagate == {"title": "New name"}
    exc = IntegrationException.objects.get(code=ExceptionCode.SYSTEM_OF_RECORD_VIOLATION)
    assert exc.queue.team.kind == "pmo"
    assert exc.payload == {"changed": {"budget": "99000.00"}}
    assert "owned by CRM" in exc.explanation
