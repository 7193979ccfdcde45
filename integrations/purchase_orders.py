"""Purchase orders for subcontractors (PSA -> ERP): a subcontractor assigned to a project is
ordered from their firm. `sync_assignments` hands every assignment whose assignee is a
subcontractor (a PSA user bound to a vendor) to `PurchaseOrders.place` instead of making a
resource allocation.

- Who is a subcontractor: a binding on the PSA connection, entity type `subcontractor`,
  canonical key `<vendor key>/<person key>` (e.g. "vendor:apex-data-consulting/person:
  priya.nair@apex-data.example"), external id = the PSA user id. One vendor has any number of
  people; the vendor key is the one the vendor bindings use (`vendor` on the PSA and ERPs).
- The order: keyed `TL-PO-<assignment id>` (the ERP's externalId, so a repeat finds it), on
  the vendor, for the project's job, subsidiary and currency (the legal entity's), dated the
  assignment's start (else the project's), one line: quantity = the allocated hours, rate =
  the subcontractor's hourly cost in that currency from the PSA (Kantata's cost rates),
  amount = hours x rate to the cent, half up; all Decimal. Upserted with the item lines
  replaced, so changed hours update the one line and a repeat never doubles it.
- An assignment that ended (0 hours) closes the order's lines; the order is kept.
- Refusals become exceptions through the same grouped path as other assignments, per project
  and cause: `purchase_order_vendor_not_in_erp`, `project_not_in_erp`,
  `subcontractor_rate_missing`, `assignment_invalid` (no hours), `erp_configuration_missing`
  (no `purchase_item_id` on the ERP connection) and `purchase_order_refused_by_erp` (the ERP's
  own refusal, its message kept in the exception's details).
- Each order is bound (`purchase_order`: assignment key -> order id) and audited with its
  idempotency key; `subcontract` (`<vendor key>/<project key>` -> the latest order's id) lets
  a subcontractor charge (a vendor bill) name the order it is billed against (`for_charge`).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.utils import timezone

from console import audit

from . import bindings
from .canonical import schemas
from .canonical.errors import MappingError
from .connectors.errors import ValidationError as ConnectorValidationError
from .connectors.kantata import mapping as kantata_mapping
from .connectors.netsuite import mapping as netsuite_mapping
from .connectors.registry import build_client
from .models import Connection, LegalEntity

logger = logging.getLogger(__name__)

SUBCONTRACTOR = "subcontractor"
PURCHASE_ORDER = "purchase_order"
SUBCONTRACT = "subcontract"
KEY_PREFIX = "TL-PO-"
CENT = Decimal("0.01")


def subcontractor_key(vendor_key: str, person_key: str) -> str:
    """The canonical key binding a PSA user as a subcontractor of a vendor."""
    return f"{vendor_key}/{person_key}"


def vendor_of(psa: Connection, user_id: str) -> str | None:
    """The vendor key of a PSA user who is a subcontractor, else None."""
    key = bindings.canonical_key(psa, SUBCONTRACTOR, str(user_id))
    return key.split("/", 1)[0] if key else None


def purchase_order_key(assignment_key: str) -> str:
    """Throughline's key of an assignment's order: "assignment:123" -> "TL-PO-123"."""
    raw = assignment_key.removeprefix("assignment:")
    return f"{KEY_PREFIX}{netsuite_mapping.netsuite_external_id(raw)}"


def for_charge(erp: Connection, vendor_key: str, project_key: str) -> tuple[str, str] | None:
    """(order key, ERP id) of the vendor's latest order on the project in `erp`, or None."""
    order_id = bindings.lookup(erp, SUBCONTRACT, f"{vendor_key}/{project_key}")
    if order_id is None:
        return None
    assignment = bindings.canonical_key(erp, PURCHASE_ORDER, order_id)
    return (purchase_order_key(assignment), order_id) if assignment else None


class PurchaseOrders:
    """Places the orders of one assignment sync: ERP clients, currency ids and PSA cost
    rates are fetched once and reused."""

    def __init__(self, psa: Connection, psa_client: Any, on_call: Any = None) -> None:
        self.psa = psa
        self.psa_client = psa_client
        self.on_call = on_call
        self.clients: dict[int, Any] = {}
        self.currencies: dict[int, dict[str, str]] = {}
        self.rates: dict[tuple[str, str], Decimal | None] = {}
        self.notes: dict[tuple[str, str], dict[str, Any]] = {}
        self.placed = 0
        self.closed = 0

    def vendor_of(self, user_id: str) -> str | None:
        return vendor_of(self.psa, user_id)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()

    def details(self, code: str, workspace: str) -> dict[str, Any]:
        """What an exception of (code, project) should also show (the ERP's message)."""
        return dict(self.notes.get((code, workspace), {}))

    def place(
        self,
        assignment: schemas.Assignment,
        *,
        vendor_key: str,
        erp: Connection,
        job_id: str,
        project_key: str,
        legal_entity: str,
        start: dt.date | None,
    ) -> str | None:
        """Raise, update or close the assignment's order; None when done, else the code of
        the refusal."""
        workspace = assignment.psa_project_id
        key = purchase_order_key(assignment.source_id)
        if assignment.allocated_hours == 0:
            order_id = bindings.lookup(erp, PURCHASE_ORDER, assignment.source_id)
            if order_id is not None:
                self._close(erp, order_id, key, project_key)
            return None
        vendor_id = bindings.lookup(erp, "vendor", vendor_key)
        if vendor_id is None:
            # which firms are missing where: one incident per missing vendor (exceptions)
            note = self.notes.setdefault(
                ("purchase_order_vendor_not_in_erp", workspace),
                {"connection": erp.name, "vendors": []},
            )
            if vendor_key not in note["vendors"]:
                note["vendors"].append(vendor_key)
            return "purchase_order_vendor_not_in_erp"
        subsidiary_id = bindings.lookup(erp, "legal_entity", legal_entity)
        currency = (
            LegalEntity.objects.filter(code=legal_entity).values_list("currency", flat=True).first()
        )
        if subsidiary_id is None or currency is None:
            return "project_not_in_erp"
        hours = assignment.allocated_hours
        if hours is None:
            return "assignment_invalid"
        try:
            rate = self._rate(assignment.person_id, currency)
        except MappingError:
            rate = None
        if rate is None:
            return "subcontractor_rate_missing"
        item_id = str(erp.settings.get("purchase_item_id") or "")
        if not item_id:
            self.notes[("erp_configuration_missing", workspace)] = {
                "setting": "purchase_item_id",
                "connection": erp.name,
            }
            return "erp_configuration_missing"
        client = self._client(erp)
        amount = (hours * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        vendor_name = vendor_key.removeprefix("vendor:") or "vendor"
        try:
            order = schemas.validate(
                schemas.PurchaseOrder,
                {
                    "source_id": key,
                    "vendor_name": vendor_name,
                    "vendor_key": vendor_key,
                    "project_key": project_key,
                    "amount": amount,
                    "currency": currency,
                    "ordered_on": assignment.start_date or start or timezone.now().date(),
                    "assignment_id": assignment.source_id,
                    "person_id": assignment.person_id,
                    "hours": hours,
                    "rate": rate,
                    "description": f"{vendor_name}: {hours} h of subcontracted work on "
                    f"project {project_key} ({assignment.source_id})",
                },
                source="kantata assignment",
            )
            body = netsuite_mapping.purchase_order_to_netsuite(
                order,
                vendor_id=vendor_id,
                job_id=job_id,
                subsidiary_id=subsidiary_id,
                currency_id=self._currency_id(erp, client, currency),
                item_id=item_id,
            )
        except (MappingError, KeyError):
            return "assignment_invalid"
        try:
            order_id = client.upsert_purchase_order(body["externalId"], body)
        except ConnectorValidationError as exc:
            self.notes.setdefault(
                ("purchase_order_refused_by_erp", workspace),
                {"vendor_code": exc.vendor_code, "field": exc.field, "erp_message": exc.message},
            )
            return "purchase_order_refused_by_erp"
        bindings.bind(erp, PURCHASE_ORDER, assignment.source_id, order_id)
        bindings.bind(erp, SUBCONTRACT, f"{vendor_key}/{project_key}", order_id)
        audit.record(
            "erp.purchase_order.upserted",
            f"Purchase order {key} for {hours} h of {vendor_name} at {rate} {currency} "
            f"({amount} {currency}) upserted in {erp.name} for project {project_key}",
            correlation_id=project_key,
            connection=erp.name,
            external_id=order_id,
            idempotency_key=key,
            hours=str(hours),
            rate=str(rate),
            amount=str(amount),
            currency=currency,
        )
        self.placed += 1
        return None

    def _close(self, erp: Connection, order_id: str, key: str, project_key: str) -> None:
        closed = self._client(erp).close_purchase_order(order_id)
        if closed:
            audit.record(
                "erp.purchase_order.closed",
                f"Purchase order {key} closed in {erp.name}: the assignment on project "
                f"{project_key} ended",
                correlation_id=project_key,
                connection=erp.name,
                external_id=order_id,
                idempotency_key=key,
                lines=closed,
            )
            self.closed += 1

    def _client(self, erp: Connection) -> Any:
        if erp.pk not in self.clients:
            self.clients[erp.pk] = build_client(erp, on_call=self.on_call)
        return self.clients[erp.pk]

    def _currency_id(self, erp: Connection, client: Any, currency: str) -> str:
        if erp.pk not in self.currencies:
            self.currencies[erp.pk] = netsuite_mapping.currency_ids(
                client.suiteql("SELECT id, symbol FROM currency")
            )
        return self.currencies[erp.pk][currency]

    def _rate(self, user_id: str, currency: str) -> Decimal | None:
        """The PSA user's hourly cost in `currency` (Kantata: their membership's cost rate)."""
        if (user_id, currency) not in self.rates:
            rate = None
            for memberships, body in self.psa_client.pages(
                "account_memberships", by_user_id=user_id, include="user,cost_rates"
            ):
                included = body.get("cost_rates") if isinstance(body, dict) else None
                for membership in memberships:
                    if str(membership.get("user_id")) != str(user_id):
                        continue
                    found = kantata_mapping.cost_rate_from_kantata(
                        membership,
                        included if isinstance(included, dict) else {},
                        currency=currency,
                        effective_from=timezone.now().date(),
                    )
                    rate = found.hourly_cost if found is not None else None
            self.rates[(user_id, currency)] = rate
        return self.rates[(user_id, currency)]
