"""Errors raised while turning vendor data into canonical shapes."""

from __future__ import annotations

from typing import Any


class MappingError(Exception):
    """Vendor data does not fit the canonical schema: which entity, which fields, why."""

    def __init__(self, *, entity: str, problems: list[dict[str, Any]], source: str = "") -> None:
        self.entity = entity
        self.problems = problems
        self.source = source
        fields = ", ".join(p["field"] for p in problems) or "payload"
        super().__init__(f"{entity} from {source or 'vendor'} is invalid: {fields}")

    @property
    def fields(self) -> list[str]:
        return [p["field"] for p in self.problems]
