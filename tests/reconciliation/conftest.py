"""Fixtures of the reconciliation tests: people and a finished run over made-up records
(scenario), and the demo with its deals handed over for real (handoff_demo)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciliation.models import Run

from . import scenario
from .handoff_demo import hand_over_every_deal


@pytest.fixture
def people() -> scenario.People:
    return scenario.people()


@pytest.fixture
def run() -> Run:
    """The invoices run of every class (scenario.invoice_run)."""
    return scenario.invoice_run()


@pytest.fixture
def handed_over(demo: dict[str, Any]) -> dict[str, Any]:
    """The demo's stand-ins, every deal handed over (customers, projects, billing plans and
    their bindings in place). Not named `standins`: that is the session's stand-ins, which
    `demo` itself uses."""
    hand_over_every_deal()
    return demo
