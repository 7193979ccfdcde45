"""Demo extracts: one CSV extract per dataset (daily; time entries every 15 minutes, so that a
demo session sees utilization freshness move), and a disabled Parquet example. Created once:
schedules and settings people change later are kept on every start."""

from __future__ import annotations

from .models import Extract

#: (name, dataset, format, schedule, enabled)
DEMO_EXTRACTS = [
    ("customers-daily", Extract.Dataset.CUSTOMERS, Extract.Format.CSV, "0 2 * * *", True),
    ("projects-daily", Extract.Dataset.PROJECTS, Extract.Format.CSV, "5 2 * * *", True),
    ("time-entries", Extract.Dataset.TIME_ENTRIES, Extract.Format.CSV, "*/15 * * * *", True),
    ("invoices-daily", Extract.Dataset.INVOICES, Extract.Format.CSV, "15 2 * * *", True),
    ("exceptions-daily", Extract.Dataset.EXCEPTIONS, Extract.Format.CSV, "20 2 * * *", True),
    ("invoices-parquet", Extract.Dataset.INVOICES, Extract.Format.PARQUET, "30 2 * * *", False),
]


def seed_extracts() -> list[str]:
    created = []
    for name, dataset, fmt, schedule, enabled in DEMO_EXTRACTS:
        _extract, new = Extract.objects.get_or_create(
            name=name,
            defaults={"dataset": dataset, "format": fmt, "schedule": schedule, "enabled": enabled},
        )
        if new:
            created.append(name)
    return created
