"""Who may change extracts: superusers and admins of an IT team (everyone signed in reads)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from console.choices import Role, TeamKind
from console.models import User


def can_manage_extracts(user: User) -> bool:
    return user.is_authenticated and user.acts_for_team_kind(TeamKind.IT, Role.ADMIN)


class CanManageExtractsOrReadOnly(permissions.BasePermission):
    message = "Only superusers and admins of an IT team may create or run extracts."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return can_manage_extracts(request.user)
