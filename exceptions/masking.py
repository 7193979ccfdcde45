"""Who may see money, bank and tax data on exceptions, and the masking of it for everyone else.

Access to the queues (documented in the README):
* every signed-in user may read every queue (the console is one firm's back office, and an
  exception is often solved by talking to the team that owns it);
* only members of the owning team with the resolver role or more act on its exceptions
  (`exceptions.actions.can_act`); superusers act everywhere;
* financial amounts, bank and tax fields are shown only to users with finance rights
  (`has_finance_rights`): superusers and members of a finance team, in any role. Everyone
  else sees `MASK` in their place — on the pages, in the REST API and in CSV exports alike.

A key of a payload, vendor error or details object is financial when one of its words starts
or ends with one of `FINANCIAL_TERMS` (case-insensitive; `taxRegistrationNumber`,
`unit_price`, `subtotal`, `AccountNumber`, `rate_in_cents` all match; `AccountId` does not).
Its whole value is masked, nested objects included. Matching errs on the side of masking.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from console.choices import TeamKind
from console.models import Membership, User

MASK = "•••• (finance only)"

#: one list for every surface; a two-word term must appear as consecutive words of the key
FINANCIAL_TERMS: tuple[str, ...] = (
    "amount",
    "price",
    "rate",
    "total",
    "tax",
    "vat",
    "iban",
    "bank",
    "account number",
    "routing",
    "swift",
    "revenue",
    "budget",
)

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SINGLE = tuple(t for t in FINANCIAL_TERMS if " " not in t)
_PHRASES = tuple(tuple(t.split()) for t in FINANCIAL_TERMS if " " in t)
_CACHE_ATTR = "_throughline_finance_rights"


def has_finance_rights(user: Any) -> bool:
    """Superusers, and members of a finance team with the viewer role or more.

    Asked once per request: the answer is kept on the user object.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    allowed = bool(user.is_superuser) or (
        Membership.objects.filter(user=user, team__kind=TeamKind.FINANCE).exists()
    )
    setattr(user, _CACHE_ATTR, allowed)
    return allowed


def key_words(key: str) -> list[str]:
    """`taxRegistrationNumber` -> ["tax", "registration", "number"]; `rate_in_cents` ->
    ["rate", "in", "cents"]; `IBAN` -> ["iban"]."""
    return [w.lower() for w in _WORD.findall(str(key))]


def is_financial_key(key: str) -> bool:
    words = key_words(key)
    for word in words:
        for term in _SINGLE:
            if word.startswith(term) or word.endswith(term):
                return True
    for phrase in _PHRASES:
        size = len(phrase)
        for i in range(len(words) - size + 1):
            if tuple(words[i : i + size]) == phrase:
                return True
    # a lower-case compound such as "accountnumber"
    compact = "".join(words)
    return any("".join(phrase) in compact for phrase in _PHRASES)


def mask_data(data: Any) -> Any:
    """A copy of `data` (JSON-like) with the value of every financial key replaced by MASK."""
    if isinstance(data, dict):
        return {
            key: MASK if is_financial_key(key) else mask_data(value) for key, value in data.items()
        }
    if isinstance(data, list):
        return [mask_data(item) for item in data]
    return data


def data_for(user: User | Any, data: Any) -> Any:
    """`data` as `user` may see it."""
    return data if has_finance_rights(user) else mask_data(data)


def amount_for(user: User | Any, amount: Decimal | None) -> Decimal | str | None:
    """The exception's amount as `user` may see it (None stays None: there is nothing to hide
    about a record that carries no money)."""
    if amount is None or has_finance_rights(user):
        return amount
    return MASK


class FinanceMaskingMixin:
    """For a ModelSerializer of IntegrationException: masks `amount` and the financial keys
    of `payload` and `vendor_error` unless the request's user has finance rights (no request
    in the context: masked). Put it before the serializer base class."""

    masked_amount_fields: tuple[str, ...] = ("amount",)
    masked_json_fields: tuple[str, ...] = ("payload", "vendor_error")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)  # type: ignore[misc]
        request = self.context.get("request")  # type: ignore[attr-defined]
        allowed = request is not None and has_finance_rights(request.user)
        if not allowed:
            for name in self.masked_amount_fields:
                if data.get(name) is not None:
                    data[name] = MASK
            for name in self.masked_json_fields:
                if name in data:
                    data[name] = mask_data(data[name])
        if "finance_masked" in data or "finance_masked" in getattr(self, "fields", {}):
            data["finance_masked"] = not allowed
        return data
