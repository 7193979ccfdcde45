"""The set-wise classification: every class of difference, tolerances, conversion and
acceptances, over snapshot rows written the way the pullers write them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from integrations.choices import Region, Vendor
from integrations.models import ExchangeRate, LegalEntity
from reconciliation import compare
from reconciliation.catalogue import get
from reconciliation.conversion import Converter
from reconciliation.differences import signature
from reconciliation.models import Acceptance, Definition, Difference, Run, Side
from reconciliation.records import PulledRecord
from reconciliation.snapshots import SnapshotSink
from tests.factories import make_connection

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 2)


@pytest.fixture
def definition() -> Definition:
    LegalEntity.objects.create(
        code="UK01", name="UK", country="GB", currency="GBP", region=Region.EMEA
    )
    LegalEntity.objects.create(
        code="US01", name="US", country="US", currency="USD", region=Region.AMERICAS
    )
    psa = make_connection(Vendor.KANTATA)
    erp = make_connection(Vendor.NETSUITE)
    ExchangeRate.objects.create(
        base="EUR", quote="GBP", rate=Decimal("0.850000"), effective_date=DAY, source=erp
    )
    return Definition.objects.create(name="invoices", kind="invoices", source=psa, target=erp)


def load(definition: Definition, side: str, records: list[PulledRecord], run: Run) -> None:
    sink = SnapshotSink(
        definition, side, run.pk, get(definition.kind), Converter(definition.target)
    )
    for record in records:
        sink.add(record)
    sink.finish(full=True)


def invoice(key: str, amount: str, *, native: str | None = None, **kw: object) -> PulledRecord:
    values = {"legal_entity": "UK01", "currency": "GBP", "status": "billed", "day": DAY}
    values.update(kw)
    return PulledRecord(
        key=key,
        native_id=native or f"n-{key}",
        amount=Decimal(amount),
        fields={"customer": str(values.pop("customer", "Acme"))},
        **values,
    )


def run_with(definition: Definition, source: list, target: list) -> tuple[Run, compare.Outcome]:
    run = Run.objects.create(definition=definition)
    load(definition, Side.SOURCE, source, run)
    load(definition, Side.TARGET, target, run)
    return run, compare.classify(run)


def kinds(run: Run) -> dict[str, str]:
    return dict(Difference.objects.filter(run=run).values_list("key", "kind"))


def test_every_class_of_difference(definition: Definition) -> None:
    source = [
        invoice("m1", "100.00"),  # matched
        invoice("m2", "250.00"),  # missing in target
        invoice("m4", "300.00"),  # amount differs
        invoice("m5", "80.00"),  # status differs
        invoice("m6", "90.00"),  # customer differs
        invoice("m7", "40.00"),  # date differs
        invoice("m8", "60.00"),  # duplicated in the target
    ]
    target = [
        invoice("m1", "100.00", native="INV-1"),
        invoice("m3", "75.00", native="INV-3"),  # missing in source
        invoice("m4", "299.50", native="INV-4"),
        invoice("m5", "80.00", native="INV-5", status="paid"),
        invoice("m6", "90.00", native="INV-6", customer="Acme Ltd"),
        invoice("m7", "40.00", native="INV-7", day=DAY + dt.timedelta(days=3)),
        invoice("m8", "60.00", native="INV-8a"),
        invoice("m8", "60.00", native="INV-8b"),
    ]
    run, outcome = run_with(definition, source, target)
    # the same counts when the pull says how many source records it wrote
    again = Run.objects.create(definition=definition)
    assert compare.classify(again, source_records=len(source)) == outcome

    assert kinds(run) == {
        "m2": "missing_in_target",
        "m3": "missing_in_source",
        "m4": "field_mismatch",
        "m5": "field_mismatch",
        "m6": "field_mismatch",
        "m7": "field_mismatch",
        "m8": "duplicate",
    }
    assert outcome.matched == 1
    assert (outcome.missing_in_target, outcome.missing_in_source) == (1, 1)
    assert (outcome.field_mismatch, outcome.duplicate) == (4, 1)
    by_key = {d.key: d for d in Difference.objects.filter(run=run).select_related("run")}
    assert by_key["m2"].amount_at_risk == 25000
    assert by_key["m4"].amount_at_risk == 50
    assert by_key["m8"].amount_at_risk == 6000  # billed twice: one copy too many
    assert by_key["m8"].side == Side.TARGET
    assert by_key["m8"].target_fields["records"] == "INV-8a, INV-8b"
    assert by_key["m4"].field_differences == [
        {"field": "amount (GBP)", "source": "300.00", "target": "299.50"}
    ]
    assert by_key["m5"].field_differences == [
        {"field": "status", "source": "billed", "target": "paid"}
    ]
    assert by_key["m6"].field_differences == [
        {"field": "customer", "source": "Acme", "target": "Acme Ltd"}
    ]
    assert [f["field"] for f in by_key["m7"].field_differences] == ["date"]


def test_counts_per_legal_entity_add_up_to_the_run(definition: Definition) -> None:
    source = [
        invoice("m1", "10.00"),
        invoice("m2", "20.00"),
        invoice("u1", "5.00", legal_entity="US01", currency="USD"),
        invoice("u2", "6.00", legal_entity="US01", currency="USD"),
    ]
    target = [
        invoice("m1", "10.00"),
        invoice("m2", "21.00"),
        invoice("u1", "5.00", legal_entity="US01", currency="USD", native="a"),
        invoice("u1", "5.00", legal_entity="US01", currency="USD", native="b"),
        invoice("x9", "1.00", legal_entity="US01", currency="USD"),
    ]
    run, outcome = run_with(definition, source, target)
    rows = {row["legal_entity"]: row for row in compare.by_entity(run)}
    assert rows["UK01"] == {
        "legal_entity": "UK01",
        "compared": 2,
        "matched": 1,
        "accepted": 0,
        "in_flight": 0,
    }
    # u1 duplicated in the target, u2 missing there, x9 missing in the PSA
    assert rows["US01"] == {
        "legal_entity": "US01",
        "compared": 3,
        "matched": 0,
        "accepted": 0,
        "in_flight": 0,
    }
    assert sum(r["matched"] for r in rows.values()) == outcome.matched
    total = (
        outcome.matched
        + outcome.missing_in_target
        + outcome.missing_in_source
        + outcome.field_mismatch
        + outcome.duplicate
    )
    assert sum(r["compared"] for r in rows.values()) == total


def test_a_difference_on_a_record_changed_just_now_is_in_flight(definition: Definition):
    """A milestone completed a minute ago is not invoiced yet: not open, not counted against
    the match rate; once its change is older than the settle window it is a difference."""
    from django.utils import timezone

    just_now = timezone.now() - dt.timedelta(minutes=1)
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    source = [
        invoice("m1", "10.00"),
        invoice("fresh", "20.00", modified_at=just_now),
        invoice("stale", "30.00", modified_at=an_hour_ago),
    ]
    run, outcome = run_with(definition, source, [invoice("m1", "10.00")])
    states = dict(Difference.objects.filter(run=run).values_list("key", "state"))
    assert states == {"fresh": "in_flight", "stale": "open"}
    assert (outcome.missing_in_target, outcome.in_flight) == (2, 1)
    Run.objects.filter(pk=run.pk).update(status=Run.Status.DONE, **outcome.counts())
    run.refresh_from_db()
    assert run.open_differences == 1
    assert run.match_rate == 50.0  # m1 matched of m1 and stale; fresh waits
    assert [row["amount_minor"] for row in compare.at_risk(run)] == [3000]
    (uk,) = compare.by_entity(run)
    assert (uk["compared"], uk["matched"], uk["in_flight"]) == (2, 1, 1)

    definition.settle_minutes = 0  # no settle window: every difference is open at once
    definition.save()
    _again, outcome = run_with(definition, source, [invoice("m1", "10.00")])
    assert outcome.in_flight == 0 and outcome.missing_in_target == 2


def test_tolerances_decide_a_match(definition: Definition) -> None:
    definition.amount_tolerance_cents = 50
    definition.date_tolerance_days = 3
    definition.save()
    source = [invoice("m4", "300.00"), invoice("m7", "40.00")]
    target = [
        invoice("m4", "299.50", native="INV-4"),
        invoice("m7", "40.00", native="INV-7", day=DAY + dt.timedelta(days=3)),
    ]
    run, outcome = run_with(definition, source, target)
    assert kinds(run) == {}
    assert outcome.matched == 2


def test_amounts_are_compared_in_the_entity_currency(definition: Definition) -> None:
    # 100 EUR on the PSA milestone, invoiced as 85 GBP by the UK entity: the same to the cent
    source = [invoice("m1", "100.00", currency="EUR"), invoice("m2", "100.00", currency="EUR")]
    target = [invoice("m1", "85.00", native="INV-1"), invoice("m2", "85.01", native="INV-2")]
    run, outcome = run_with(definition, source, target)
    assert kinds(run) == {"m2": "field_mismatch"}
    assert outcome.matched == 1


def test_a_missing_rate_is_a_difference_with_its_reason(definition: Definition) -> None:
    source = [invoice("m1", "100.00", currency="SEK")]
    target = [invoice("m1", "9.00", native="INV-1")]
    run, _ = run_with(definition, source, target)
    diff = Difference.objects.select_related("run__definition").get(run=run)
    assert diff.kind == "field_mismatch"
    conversion = [f for f in diff.field_differences if f["field"] == "conversion"]
    assert "no SEK/GBP rate" in conversion[0]["source"]


def test_an_accepted_difference_stays_accepted_while_its_values_do(definition: Definition):
    run, _ = run_with(definition, [invoice("m4", "300.00")], [invoice("m4", "299.00")])
    diff = Difference.objects.select_related("run__definition").get(run=run)
    Acceptance.objects.create(
        definition=definition,
        key="m4",
        kind=diff.kind,
        signature=signature(diff),
        reason="credit note agreed",
    )
    again, outcome = run_with(definition, [invoice("m4", "300.00")], [invoice("m4", "299.00")])
    assert outcome.accepted == 1
    assert Difference.objects.get(run=again).state == Difference.State.ACCEPTED
    # the target changes again: a new difference, open
    third, outcome = run_with(definition, [invoice("m4", "300.00")], [invoice("m4", "298.00")])
    assert outcome.accepted == 0
    assert Difference.objects.get(run=third).state == Difference.State.OPEN


def test_a_full_pull_forgets_records_deleted_in_their_system(definition: Definition) -> None:
    run_with(definition, [invoice("m1", "1.00"), invoice("m2", "2.00")], [])
    run, outcome = run_with(definition, [invoice("m1", "1.00")], [invoice("m1", "1.00")])
    assert kinds(run) == {}
    assert outcome.matched == 1


def test_at_risk_is_summed_per_legal_entity(definition: Definition) -> None:
    source = [invoice("m1", "10.00"), invoice("u1", "5.00", legal_entity="US01", currency="USD")]
    run, _ = run_with(definition, source, [])
    assert compare.at_risk(run) == [
        {
            "legal_entity": "UK01",
            "currency": "GBP",
            "amount_minor": 1000,
            "differences": 1,
            "missing": 1,
        },
        {
            "legal_entity": "US01",
            "currency": "USD",
            "amount_minor": 500,
            "differences": 1,
            "missing": 1,
        },
    ]
