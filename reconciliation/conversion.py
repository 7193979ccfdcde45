"""Amounts into the legal entity's currency, at the ERP's published rate of the record's day
(the latest rate on or before it), so both sides are compared in one currency to the cent."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from integrations.models import Connection, ExchangeRate, LegalEntity


class RateMissing(LookupError):
    """The ERP publishes no rate for this pair on or before the day."""


class Converter:
    """Converts with memoised legal-entity currencies and rates (one pull, many records)."""

    def __init__(self, erp: Connection) -> None:
        self.erp = erp
        self._currencies: dict[str, str] = dict(LegalEntity.objects.values_list("code", "currency"))
        self._rates: dict[tuple[str, str, dt.date | None], Decimal | None] = {}

    def currency_of(self, legal_entity: str) -> str:
        return self._currencies.get(legal_entity, "")

    def to_entity_currency(
        self, amount: Decimal, currency: str, legal_entity: str, day: dt.date | None
    ) -> tuple[Decimal, str]:
        """`amount` in the entity's currency (unchanged when it has none or the same one)."""
        target = self.currency_of(legal_entity) or currency
        if not currency or currency == target:
            return amount, target
        rate = self._rate(currency, target, day)
        if rate is None:
            raise RateMissing(f"no {currency}/{target} rate on or before {day} in {self.erp}")
        return (amount * rate).quantize(Decimal("0.01"), ROUND_HALF_UP), target

    def _rate(self, base: str, quote: str, day: dt.date | None) -> Decimal | None:
        memo = (base, quote, day)
        if memo not in self._rates:
            rates = ExchangeRate.objects.filter(source=self.erp, base=base, quote=quote)
            if day is not None:
                rates = rates.filter(effective_date__lte=day)
            self._rates[memo] = (
                rates.order_by("-effective_date").values_list("rate", flat=True).first()
            )
        return self._rates[memo]
