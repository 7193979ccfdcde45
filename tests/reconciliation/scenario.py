"""Builders the reconciliation console tests share: the teams and people, and runs with
differences made the way a real run makes them (snapshot rows written through the
SnapshotSink, classified by compare.classify, the summary kept as runs.execute keeps it), so
the tests do not depend on the pullers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from console.choices import Role, TeamKind
from console.models import User
from exceptions.models import Queue
from integrations.choices import Region, Vendor
from integrations.models import Connection, LegalEntity
from reconciliation import compare
from reconciliation.catalogue import get
from reconciliation.conversion import Converter
from reconciliation.models import Definition, Difference, Run, Side
from reconciliation.records import PulledRecord
from reconciliation.snapshots import SnapshotSink
from tests.factories import make_connection, make_queue, make_team, make_user

DAY = dt.date(2026, 11, 2)
PASSWORD = "pw-for-tests-1"


@dataclass
class People:
    finance: User  # finance resolver: acts, sees amounts
    pmo: User  # PMO resolver: reads, amounts masked
    it_admin: User  # IT admin: acts, amounts masked
    it_resolver: User  # IT resolver: reads only


def people() -> People:
    """The teams with the demo's queues, and one person per role that matters here."""
    finance = make_team(TeamKind.FINANCE)
    pmo = make_team(TeamKind.PMO)
    sales = make_team(TeamKind.SALES_OPS)
    it = make_team(TeamKind.IT)
    for team, names in (
        (finance, ["Finance", "Finance UK", "Finance US"]),
        (pmo, ["PMO EMEA", "PMO Americas"]),
        (sales, ["Sales Ops"]),
        (it, ["IT Integration"]),
    ):
        for name in names:
            make_queue(team, name)
    return People(
        finance=make_user("fiona", team=finance),
        pmo=make_user("pete", team=pmo),
        it_admin=make_user("ian", team=it, role=Role.ADMIN),
        it_resolver=make_user("ivy", team=it),
    )


def legal_entities() -> None:
    LegalEntity.objects.get_or_create(
        code="UK01",
        defaults={"name": "UK", "country": "GB", "currency": "GBP", "region": Region.EMEA},
    )
    LegalEntity.objects.get_or_create(
        code="US01",
        defaults={"name": "US", "country": "US", "currency": "USD", "region": Region.AMERICAS},
    )


def definition(kind: str = "invoices", name: str | None = None) -> Definition:
    """A definition of `kind` between two connections of the comparison's systems."""
    legal_entities()
    comparison = get(kind)
    vendors = {"crm": Vendor.SALESFORCE, "psa": Vendor.KANTATA, "erp": Vendor.NETSUITE}
    source = make_connection(vendors[comparison.source_system])
    target = make_connection(vendors[comparison.target_system])
    return Definition.objects.create(
        name=name or kind.replace("_", "-"), kind=kind, source=source, target=target
    )


def record(
    key: str, amount: str | None = "100.00", *, native: str | None = None, **values: object
) -> PulledRecord:
    fields = {"legal_entity": "UK01", "currency": "GBP", "status": "billed", "day": DAY}
    fields.update(values)
    extra = {k: str(fields.pop(k)) for k in list(fields) if k not in PulledRecord.__annotations__}
    return PulledRecord(
        key=key,
        native_id=native or f"n-{key}",
        amount=None if amount is None else Decimal(amount),
        fields={"customer": "Acme", **extra},
        **fields,
    )


def load(definition: Definition, side: str, records: list[PulledRecord], run: Run) -> None:
    sink = SnapshotSink(
        definition, side, run.pk, get(definition.kind), Converter(definition.target)
    )
    for item in records:
        sink.add(item)
    sink.finish(full=True)


def finished_run(
    definition: Definition, source: list[PulledRecord], target: list[PulledRecord]
) -> Run:
    """A done run of `definition` over these records, its summary kept as runs.execute does."""
    run = Run.objects.create(definition=definition, status=Run.Status.COMPARING)
    load(definition, Side.SOURCE, source, run)
    load(definition, Side.TARGET, target, run)
    outcome = compare.classify(run)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.DONE,
        phase="done",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        source_records=len(source),
        target_records=len(target),
        source_pulled=len(source),
        target_pulled=len(target),
        **compare.summary(run, outcome),
        compare_ms=3,
    )
    return Run.objects.select_related("definition").get(pk=run.pk)


SOURCE = [
    record("m1", "100.00"),  # matched
    record("m2", "250.00"),  # missing in target
    record("m4", "300.00"),  # amount differs
    record("m5", "80.00"),  # status differs
    record("m8", "60.00"),  # duplicated in the target
    record("u1", "500.00", legal_entity="US01", currency="USD"),  # missing in target (US)
]
TARGET = [
    record("m1", "100.00", native="INV-1"),
    record("m3", "75.00", native="INV-3"),  # missing in source
    record("m4", "299.50", native="INV-4"),
    record("m5", "80.00", native="INV-5", status="paid"),
    record("m8", "60.00", native="INV-8a"),
    record("m8", "60.00", native="INV-8b"),
]


def invoice_run(definition: Definition | None = None) -> Run:
    """The invoices run of every class: m2 and u1 missing in target, m3 missing in source,
    m4 (amount) and m5 (status) mismatched, m8 duplicated in the target, m1 matched."""
    return finished_run(definition or globals()["definition"](), SOURCE, TARGET)


def differences(run: Run) -> dict[str, Difference]:
    return {
        d.key: d
        for d in Difference.objects.filter(run=run).select_related(
            "run__definition__source", "run__definition__target", "exception", "acceptance"
        )
    }


def connection_names(definition: Definition) -> tuple[str, str]:
    return (
        Connection.objects.get(pk=definition.source_id).name,
        Connection.objects.get(pk=definition.target_id).name,
    )


def queue(slug: str) -> Queue:
    return Queue.objects.get(slug=slug)
