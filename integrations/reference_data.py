"""Reference data on a schedule, from the ERP (which owns it) to the PSA and Throughline:
people (matched by e-mail, bound as `person:<email>` in both systems) with their labour cost
rates and cost centres, and exchange rates (kept in Throughline for currency conversion).

Each job is idempotent: a repeat writes nothing the targets already have (the Kantata client
skips unchanged cost rates and cost centres; rates are upserted by day).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils import timezone

from . import bindings
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .models import Connection, ExchangeRate, LegalEntity
from .telemetry import CallBuffer

logger = logging.getLogger(__name__)


@dataclass
class PeopleResult:
    employees: int = 0
    matched: int = 0
    cost_rates: int = 0
    cost_centres: int = 0


def sync_people(erp: Connection, psa: Connection) -> PeopleResult:
    """Employees, labour cost rates and cost centres from the ERP to the PSA."""
    buffer = CallBuffer()
    erp_client = build_client(erp, on_call=buffer)
    psa_client = build_client(psa, on_call=buffer)
    result = PeopleResult()
    today = timezone.now().date()
    try:
        currencies = {
            v: k
            for k, v in netsuite_mapping.currency_ids(
                erp_client.suiteql("SELECT id, symbol FROM currency")
            ).items()
        }
        subsidiaries = {
            sid: LegalEntity.objects.filter(code=code).first()
            for code, sid in _subsidiary_bindings(erp).items()
        }
        departments = {
            str(d["id"]): netsuite_mapping.cost_centre_from_department(d)
            for d in erp_client.list_departments()
        }
        for row in erp_client.list_employees():
            employee = netsuite_mapping.employee_from_netsuite(row)
            result.employees += 1
            if not employee.active or not employee.email:
                continue
            user = psa_client.find_user_by_email(employee.email)
            if user is None:
                continue
            result.matched += 1
            key = f"person:{employee.email.lower()}"
            bindings.bind(erp, "person", key, str(row["id"]))
            bindings.bind(psa, "person", key, str(user["id"]))
            entity = subsidiaries.get(str(row.get("subsidiary")))
            currency = entity.currency if entity else next(iter(currencies.values()), "USD")
            rate = netsuite_mapping.cost_rate_from_employee(
                row, currency=currency, effective_from=today
            )
            if rate is not None:
                psa_client.upsert_user_cost_rate(
                    user["id"],
                    hourly_cost_cents=int(rate.hourly_cost * 100),
                    currency=rate.currency,
                    effective=today,
                )
                result.cost_rates += 1
            centre = departments.get(str(row.get("department")))
            if centre is not None and centre.active:
                psa_client.ensure_cost_centre(centre.code, centre.name)
                result.cost_centres += 1
    finally:
        erp_client.close()
        psa_client.close()
        buffer.flush()
    logger.info(
        "people from %s to %s: %d employees, %d matched", erp, psa, result.employees, result.matched
    )
    return result


def sync_exchange_rates(erp: Connection) -> int:
    """Today's exchange rates from the ERP, kept in Throughline (upsert by day)."""
    buffer = CallBuffer()
    client = build_client(erp, on_call=buffer)
    stored = 0
    try:
        currencies = netsuite_mapping.currency_ids(
            client.suiteql("SELECT id, symbol FROM currency")
        )
        for row in client.currency_rates(timezone.now().date()):
            rate = netsuite_mapping.exchange_rate_from_netsuite(row, currencies=currencies)
            ExchangeRate.objects.update_or_create(
                source=erp,
                base=rate.base,
                quote=rate.quote,
                effective_date=rate.effective_date,
                defaults={"rate": rate.rate},
            )
            stored += 1
    finally:
        client.close()
        buffer.flush()
    return stored


def _subsidiary_bindings(erp: Connection) -> dict[str, str]:
    from .models import ExternalBinding

    return dict(
        ExternalBinding.objects.filter(connection=erp, entity_type="legal_entity").values_list(
            "canonical_key", "external_id"
        )
    )
