"""Template context shared by every console page: the signed-in user's teams."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = user.memberships.select_related("team").prefetch_related("team__queues")
    return {"my_teams": [m.team for m in memberships]}
