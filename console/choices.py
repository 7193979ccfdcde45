"""Constant choice sets of the core app (never bare strings in code)."""

from django.db import models


class TeamKind(models.TextChoices):
    FINANCE = "finance", "Finance"
    PMO = "pmo", "PMO"
    SALES_OPS = "sales_ops", "Sales Ops"
    IT = "it", "IT / integration"
    LEADERSHIP = "leadership", "Leadership"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    RESOLVER = "resolver", "Resolver"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.RESOLVER: 2, Role.ADMIN: 3}
