"""Demo definitions: one per comparison between the demo's connections (customers and
contracts: Salesforce vs NetSuite; invoices, time entries and projects: Kantata vs NetSuite),
each hourly at its own minute (so a demo session sees runs; a production definition is
typically nightly). Created once: tolerances and schedules people change later
are kept on every start."""

from __future__ import annotations

from integrations.models import Connection

from .models import Definition

#: (name, kind, source connection, target connection, schedule, amount tolerance in cents)
DEMO_DEFINITIONS = [
    ("customers-crm-erp", "customers", "Salesforce (demo)", "NetSuite (demo)", "0 * * * *", 0),
    ("contracts-crm-erp", "contracts", "Salesforce (demo)", "NetSuite (demo)", "10 * * * *", 0),
    ("invoices-psa-erp", "invoices", "Kantata (demo)", "NetSuite (demo)", "20 * * * *", 0),
    ("time-psa-erp", "time_entries", "Kantata (demo)", "NetSuite (demo)", "30 * * * *", 0),
    ("projects-psa-erp", "projects", "Kantata (demo)", "NetSuite (demo)", "40 * * * *", 0),
]


def seed_definitions() -> list[str]:
    """Create the demo definitions that do not exist yet; return the names created."""
    connections = {c.name: c for c in Connection.objects.all()}
    created = []
    for name, kind, source, target, schedule, tolerance in DEMO_DEFINITIONS:
        if source not in connections or target not in connections:
            continue
        _definition, new = Definition.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "source": connections[source],
                "target": connections[target],
                "schedule": schedule,
                "amount_tolerance_cents": tolerance,
            },
        )
        if new:
            created.append(name)
    return created
