"""Workflow building blocks: a Workflow is an ordered list of Steps; each Step is idempotent
(it checks the target before writing, so running it twice writes once) and returns a JSON-safe
output that later steps read from the StepContext."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from integrations.choices import SystemKind
from integrations.connectors.http import ConnectorHttpClient
from integrations.connectors.registry import build_client
from integrations.models import Connection, LegalEntity, SyncRun
from integrations.routing import erp_for

from .failures import StepError


class Step:
    """One idempotent unit of work. Subclasses set `name` and implement `run(ctx)`."""

    name: ClassVar[str]
    #: business code when a vendor refuses this step's data (validation or conflict)
    rejection_code: ClassVar[str] = ""
    #: the entity this step works on, for exception records
    entity_type: ClassVar[str] = ""
    #: the system this step talks to, for classifying vendor errors
    system: ClassVar[str] = ""
    #: for ERP steps: the kind of financial record, which picks the ERP (coexistence routing)
    erp_document: ClassVar[str] = ""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        raise NotImplementedError

    def run_many(self, ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
        """Run the step for several runs at once: one result per context, in order (its
        output, or the exception that failed that run only).

        The default runs them one after the other, each run's calls its own. Steps whose
        vendor has bulk APIs override it to serve the whole batch with a few calls.
        """
        results: list[dict[str, Any] | Exception] = []
        for ctx in ctxs:
            with ctx.batch.focus([ctx]):
                try:
                    results.append(self.run(ctx) or {})
                except Exception as exc:  # the engine records it against this run only
                    results.append(exc)
        return results

    def connection(self, ctx: StepContext) -> Connection:
        """The connection this step writes to or reads from."""
        if self.system == SystemKind.ERP and self.erp_document:
            return ctx.erp(self.erp_document)
        return ctx.connection(self.system)

    def entity_ref(self, ctx: StepContext) -> str:
        return ctx.run.correlation_id


class BatchStep(Step):
    """A step written for batches: `run_many` is its one implementation, `run` a batch of
    one."""

    def run(self, ctx: StepContext) -> dict[str, Any]:
        (result,) = self.run_many([ctx])
        if isinstance(result, Exception):
            raise result
        return result

    def run_many(self, ctxs: list[StepContext]) -> list[dict[str, Any] | Exception]:
        raise NotImplementedError


def group_by(ctxs: Iterable[StepContext], key: Callable[[StepContext], Any]) -> dict[Any, list]:
    """Contexts grouped by `key` (a connection, a legal entity), in their order."""
    groups: dict[Any, list[StepContext]] = {}
    for ctx in ctxs:
        groups.setdefault(key(ctx), []).append(ctx)
    return groups


class Workflow:
    """A named composite service: its steps in order.

    `milestone` names what the business transaction reaches when the workflow succeeds
    (settings.EXPECTATIONS says how long that may take before the transaction is stuck).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    steps: ClassVar[list[Step]]
    milestone: ClassVar[str] = ""

    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]


def primary_connection(system: str) -> Connection:
    """The enabled connection for a system (CRM, PSA, ERP).

    Per-legal-entity routing between several ERPs arrives with coexistence; until then each
    system has one primary connection: the oldest enabled one.
    """
    connection = Connection.objects.filter(system=system, enabled=True).order_by("pk").first()
    if connection is None:
        raise StepError(
            "connection_missing",
            f"No enabled {SystemKind(system).label} connection is configured.",
            entity_type="connection",
            entity_ref=system,
        )
    return connection


class Batch:
    """What the runs executed together share: one client per connection (its connection
    pool and token), answers worth keeping for the batch (`memo`), and the telemetry sink.
    A single run is a batch of one."""

    def __init__(self) -> None:
        self.clients: dict[int, ConnectorHttpClient] = {}
        self.memo: dict[Any, Any] = {}
        #: the current step's telemetry (integrations.telemetry.StepCalls or CallBuffer)
        self.on_call: Any = None

    def client(self, connection: Connection) -> Any:
        if connection.pk not in self.clients:
            self.clients[connection.pk] = build_client(connection, on_call=self._report)
        return self.clients[connection.pk]

    def remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        """`compute()` once per batch for `key` (a subsidiary, the currency list, ...)."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    @contextmanager
    def focus(self, ctxs: Iterable[StepContext]) -> Iterator[None]:
        """Calls made inside belong to these runs (by default, to the whole batch)."""
        focus = getattr(self.on_call, "focus", None)
        if focus is None:
            yield
            return
        with focus(ctx.run.pk for ctx in ctxs):
            yield

    def _report(self, record: Any) -> None:
        if self.on_call is not None:
            self.on_call(record)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()


@dataclass
class StepContext:
    """What a step sees: its run, earlier steps' outputs, and (through its batch) clients
    for the connections."""

    run: SyncRun
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch: Batch = field(default_factory=Batch)
    #: which attempt of the current step this is (1: no earlier attempt can have written)
    attempt: int = 1

    def connection(self, system: str) -> Connection:
        source = self.run.source_connection if self.run.source_connection_id else None
        if source is not None and source.system == system:
            return source  # the instance the event came from (several CRMs or PSAs)
        return self.batch.remember(("primary", system), lambda: primary_connection(system))

    def route_to(self, legal_entity_code: str, *, title: str = "", business_key: str = "") -> None:
        """Say which legal entity (and so region) the run concerns: routing of its exceptions
        and the trace use them."""
        self.run.legal_entity_code = legal_entity_code[:20]
        self.run.region = self.batch.remember(
            ("region", legal_entity_code),
            lambda: (
                LegalEntity.objects.filter(code=legal_entity_code)
                .values_list("region", flat=True)
                .first()
                or ""
            ),
        )
        if title:
            self.run.title = title[:255]
        if business_key:
            self.run.business_key = business_key

    def erp(self, document: str) -> Connection:
        """The ERP that receives `document` records for the run's legal entity today."""
        code = self.run.legal_entity_code
        return self.batch.remember(("erp", code, document), lambda: erp_for(code, document))

    def client(self, connection: Connection) -> Any:
        """A client for `connection`, shared by the batch's runs and steps."""
        return self.batch.client(connection)

    def output(self, step_name: str) -> dict[str, Any]:
        try:
            return self.outputs[step_name]
        except KeyError:
            raise RuntimeError(f"step {step_name!r} has not run before this one") from None

    def close(self) -> None:
        self.batch.close()
