"""Who may act on reconciliation: run it now, edit a definition, re-sync, open exceptions and
accept differences.

Like the exception queues (exceptions.actions.can_act), everyone signed in reads every page;
acting takes a role: members of a finance team with the resolver role or more, admins of an
IT team, and superusers. Amounts are shown only to people with finance rights
(exceptions.masking.has_finance_rights): everyone else sees the mask, on the pages, in the API
and in CSV exports alike.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from console.choices import Role, TeamKind
from exceptions.masking import has_finance_rights

__all__ = ["REFUSAL", "CanActOrReadOnly", "can_act", "can_see_amounts"]

REFUSAL = (
    "Only finance resolvers, IT admins and superusers act on reconciliation; "
    "everyone else can read it."
)
_CACHE_ATTR = "_throughline_reconciliation_actor"


def can_act(user: Any) -> bool:
    """Finance resolvers (or admins), IT admins and superusers (asked once per request)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    allowed = user.acts_for_team_kind(TeamKind.FINANCE, Role.RESOLVER) or user.acts_for_team_kind(
        TeamKind.IT, Role.ADMIN
    )
    setattr(user, _CACHE_ATTR, allowed)
    return allowed


def can_see_amounts(user: Any) -> bool:
    return has_finance_rights(user)


class CanActOrReadOnly(permissions.BasePermission):
    message = REFUSAL

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_act(request.user)
