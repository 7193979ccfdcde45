"""What a puller is given (see reconciliation.pullers)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from integrations.connectors.registry import build_client
from integrations.models import Connection

from .models import Definition
from .records import PulledRecord


@dataclass
class PullContext:
    definition: Definition
    side: str
    connection: Connection
    since: dt.datetime | None
    emit: Callable[[PulledRecord], None]
    on_call: Callable[[Any], None]

    @cached_property
    def client(self) -> Any:
        """The connection's client, its calls recorded as telemetry."""
        return build_client(self.connection, on_call=self.on_call)

    @property
    def full(self) -> bool:
        return self.since is None
