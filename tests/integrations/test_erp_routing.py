"""ERP coexistence: routes per legal entity, record kind and date decide which ERP receives
financial records, so one legal entity can move to a new ERP while CRM and PSA flows stay."""

import datetime as dt

import pytest

from console.demo import NETSUITE_LEGACY_ACCOUNT
from integrations.choices import ErpDocument, RunStatus
from integrations.models import Connection, ErpRoute, LegalEntity, SyncRun
from integrations.polling import poll_closed_won
from integrations.routing import erp_for


def test_the_route_in_force_on_a_date_wins_and_the_primary_erp_is_the_fallback(demo):
    cloud = Connection.objects.get(name="NetSuite (demo)")
    legacy = Connection.objects.get(name="NetSuite legacy (demo)")
    assert erp_for("DE01", ErpDocument.POSTING, dt.date(2026, 11, 26)) == legacy
    assert erp_for("DE01", ErpDocument.POSTING, dt.date(2027, 4, 1)) == cloud
    assert erp_for("DE01", ErpDocument.INVOICE, dt.date(2026, 11, 26)) == cloud  # no route
    legacy.enabled = False
    legacy.save()
    assert erp_for("DE01", ErpDocument.POSTING, dt.date(2026, 11, 26)) == cloud


def test_moving_a_legal_entitys_customers_moves_the_handoff_without_touching_crm_or_psa(demo):
    legacy = Connection.objects.get(name="NetSuite legacy (demo)")
    for document in (ErpDocument.CUSTOMER, ErpDocument.PROJECT, ErpDocument.REVENUE_SCHEDULE):
        ErpRoute.objects.create(
            legal_entity=LegalEntity.objects.get(code="UK01"),
            document=document,
            connection=legacy,
            effective_from=dt.date(2020, 1, 1),
        )
    poll_closed_won(Connection.objects.get(vendor="salesforce"))
    northwind = SyncRun.objects.get(title__startswith="Northwind")
    assert northwind.status == RunStatus.SUCCEEDED
    legacy_customers = demo["netsuite_legacy"].state.table("customer").values()
    cloud_customers = demo["netsuite"].state.table("customer").values()
    assert [c["companyName"] for c in legacy_customers] == ["Northwind Consulting Ltd"]
    assert "Northwind Consulting Ltd" not in [c["companyName"] for c in cloud_customers]
    assert demo["netsuite_legacy"].state.account_id == NETSUITE_LEGACY_ACCOUNT
    assert len(demo["netsuite_legacy"].state.table("job")) == 1  # project accounting too


@pytest.mark.django_db
def test_a_route_must_name_an_erp():
    from django.core.exceptions import ValidationError

    from tests.factories import make_connection

    entity = LegalEntity.objects.create(
        code="X1", name="X", country="GB", currency="GBP", region="EMEA"
    )
    route = ErpRoute(
        legal_entity=entity,
        document=ErpDocument.INVOICE,
        connection=make_connection("salesforce"),
        effective_from=dt.date(2026, 1, 1),
    )
    with pytest.raises(ValidationError):
        route.full_clean()
