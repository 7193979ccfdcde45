"""Access and masking, as a role matrix: superuser, finance resolver, finance viewer, PMO
resolver and a user in no team, each on the page, the API and the CSV exports. Amounts,
bank and tax fields are visible only with finance rights; only the owning team's resolvers
(and superusers) act; everyone signed in reads."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from console.choices import Role
from console.models import User
from exceptions.masking import MASK, has_finance_rights, is_financial_key, mask_data
from exceptions.models import IntegrationException, Queue
from tests.factories import make_exception, make_user

pytestmark = pytest.mark.django_db

AMOUNT = "12345.67"
TAX_ID = "DE811234567"
IBAN = "DE89370400440532013000"
PAYLOAD = {
    "Name": "Initech GmbH",
    "Amount": AMOUNT,
    "subsidiary": {"id": "3", "taxRegistrationNumber": TAX_ID},
    "lines": [{"item": "Consulting", "rate_in_cents": 15000}],
    "bankAccount": {"iban": IBAN},
}
VENDOR_ERROR = {"status": 400, "details": {"message": "VAT number missing", "vatNumber": TAX_ID}}

#: who: (sees money, bank and tax fields, may act on the Finance queue)
MATRIX = {
    "superuser": (True, True),
    "finance_resolver": (True, True),
    "finance_viewer": (True, False),
    "pmo_resolver": (False, False),
    "no_team": (False, False),
}


@pytest.fixture
def people(finance_queue: Queue, pmo_queue: Queue) -> dict[str, User]:
    return {
        "superuser": make_user("root", is_superuser=True),
        "finance_resolver": make_user("fiona", team=finance_queue.team),
        "finance_viewer": make_user("vera", team=finance_queue.team, role=Role.VIEWER),
        "pmo_resolver": make_user("pat", team=pmo_queue.team),
        "no_team": make_user("nora"),
    }


@pytest.fixture
def exc(finance_queue: Queue) -> IntegrationException:
    return make_exception(
        finance_queue,
        amount=Decimal(AMOUNT),
        currency="EUR",
        payload=PAYLOAD,
        vendor_error=VENDOR_ERROR,
    )


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_detail_page(who: str, people: dict[str, User], exc: IntegrationException) -> None:
    sees, acts = MATRIX[who]
    response = signed_in(people[who]).get(exc.get_absolute_url())
    assert response.status_code == 200  # everyone signed in reads
    body = response.content.decode()
    for secret in (TAX_ID, IBAN, "12345.67", "15000"):
        assert (secret in body) is sees, secret
    assert ("(finance only)" in body) is not sees
    assert ("only Finance sees them" in body) is not sees
    assert "Initech GmbH" in body  # nothing else is hidden
    assert (reverse("exceptions:retry", args=[exc.pk]) in body) is acts


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_queue_page(who: str, people: dict[str, User], exc: IntegrationException) -> None:
    sees, acts = MATRIX[who]
    response = signed_in(people[who]).get(exc.queue.get_absolute_url())
    (row,) = response.context["exceptions"]
    assert row.amount_shown == (Decimal(AMOUNT) if sees else MASK)
    assert row.user_can_act is acts
    assert ("12345.67" in response.content.decode()) is sees


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_api(who: str, people: dict[str, User], exc: IntegrationException) -> None:
    sees, acts = MATRIX[who]
    client = api_for(people[who])
    body = client.get(f"/api/v1/exceptions/{exc.pk}/").json()
    (listed,) = client.get("/api/v1/exceptions/").json()["results"]
    for data in (body, listed):
        assert data["finance_masked"] is not sees
        assert data["amount"] == (AMOUNT if sees else MASK)
        assert data["currency"] == "EUR"
        assert data["payload"]["Name"] == "Initech GmbH"
        if sees:
            assert data["payload"] == PAYLOAD
            assert data["vendor_error"] == VENDOR_ERROR
        else:
            assert data["payload"]["Amount"] == MASK
            assert data["payload"]["subsidiary"] == {"id": "3", "taxRegistrationNumber": MASK}
            assert data["payload"]["lines"] == [{"item": "Consulting", "rate_in_cents": MASK}]
            assert data["payload"]["bankAccount"] == MASK
            assert data["vendor_error"]["details"] == {
                "message": "VAT number missing",
                "vatNumber": MASK,
            }
    status = client.post(f"/api/v1/exceptions/{exc.pk}/retry/").status_code
    assert (status != 403) is acts


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_csv_exports(who: str, people: dict[str, User], exc: IntegrationException) -> None:
    sees, _acts = MATRIX[who]
    page = signed_in(people[who]).get(reverse("exceptions:export", args=[exc.queue.slug]))
    api = api_for(people[who]).get("/api/v1/exceptions/export.csv")
    for response in (page, api):
        (row,) = csv_rows(response)
        assert row["Amount"] == (AMOUNT if sees else MASK)
        assert row["Currency"] == "EUR"
        assert TAX_ID not in str(row) or sees


def test_a_pmo_resolver_acts_on_pmo_work_but_never_sees_money(
    people: dict[str, User], pmo_queue: Queue
) -> None:
    pmo_exc = make_exception(pmo_queue, amount=Decimal("500.00"), currency="USD")
    pat, fiona = people["pmo_resolver"], people["finance_resolver"]
    body = signed_in(pat).get(pmo_exc.get_absolute_url()).content.decode()
    assert reverse("exceptions:retry", args=[pmo_exc.pk]) in body
    assert "500.00" not in body
    body = signed_in(fiona).get(pmo_exc.get_absolute_url()).content.decode()
    assert reverse("exceptions:retry", args=[pmo_exc.pk]) not in body  # not her queue
    assert "500.00" in body  # but finance sees money wherever it is


def test_finance_rights(people: dict[str, User], pmo_queue: Queue) -> None:
    assert {who for who, user in people.items() if has_finance_rights(user)} == {
        "superuser",
        "finance_resolver",
        "finance_viewer",
    }
    assert not has_finance_rights(None)


@pytest.mark.parametrize(
    "key",
    [
        "Amount",
        "amount_due",
        "UnitPrice",
        "unit_price",
        "subtotal",
        "taxTotal",
        "exchangeRate",
        "rate_in_cents",
        "VAT_Number__c",
        "IBAN",
        "bankAccount",
        "AccountNumber",
        "account_number",
        "routingNumber",
        "ExpectedRevenue",
        "budget_in_cents",
    ],
)
def test_financial_keys(key: str) -> None:
    assert is_financial_key(key)


@pytest.mark.parametrize(
    "key", ["Name", "AccountId", "account", "currency", "Id", "StageName", "legal_entity"]
)
def test_keys_that_stay_visible(key: str) -> None:
    assert not is_financial_key(key)


def test_masking_copies_and_reaches_into_lists() -> None:
    data = {"rows": [{"total": 1, "name": "a"}, [{"price": 2}]], "other": None}
    masked = mask_data(data)
    assert masked == {"rows": [{"total": MASK, "name": "a"}, [{"price": MASK}]], "other": None}
    assert data["rows"][0]["total"] == 1  # the stored data is untouched
