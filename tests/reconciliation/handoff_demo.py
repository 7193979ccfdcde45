"""The demo's deals handed over for real (so real bindings exist), and the helpers the
reconciliation tests over the stand-ins share (customers, contracts, projects, invoices,
time): definitions over the demo connections, runs, their differences by class, "manual
edits" through the stand-ins' control surface, and change times aged."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from console.models import User
from exceptions import actions
from exceptions.choices import ExceptionCode
from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.connectors.registry import build_client
from integrations.models import Connection, ProjectTemplate, SyncRun
from integrations.polling import poll_amendments, poll_closed_won
from reconciliation.models import Definition, Difference, Run
from reconciliation.runs import request_run

NORTHWIND_DEAL = "0065g00000Tl001AAB"
GLOBEX_DEAL = "0065g00000Tl002AAB"
INITECH_DEAL = "0065g00000Tl003AAB"
UMBRELLA_DEAL = "0065g00000Tl004AAB"
NORTHWIND_ACCOUNT = "0015g00000Tl001AAB"
GLOBEX_ACCOUNT = "0015g00000Tl002AAB"
INITECH_ACCOUNT = "0015g00000Tl003AAB"
UMBRELLA_ACCOUNT = "0015g00000Tl004AAB"
NORTHWIND_AMENDMENT = "a015g00000Tl001AAB"  # Draft: 135,000.00 GBP
DE_TAX_FIX = {
    "taxRegistration": {
        "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE811234567"}]
    }
}


def connection(name: str) -> Connection:
    return Connection.objects.get(name=name)


def crm() -> Connection:
    return connection("Salesforce (demo)")


def erp() -> Connection:
    return connection("NetSuite (demo)")


def legacy_erp() -> Connection:
    return connection("NetSuite legacy (demo)")


def psa() -> Connection:
    return connection("Kantata (demo)")


def hand_over_every_deal() -> None:
    """The demo's normal flow, its two failures fixed the way their queues would: the poll
    hands the four won deals over; Finance adds the GmbH's tax registration and retries,
    the PMO creates the missing project template and retries. Every deal then has its
    customer, project and billing plan in the systems, and their bindings."""
    poll_closed_won(crm())
    with build_client(erp()) as client:
        client.update_record("subsidiary", "3", DE_TAX_FIX)
    with build_client(legacy_erp()) as client:
        client.update_record("subsidiary", "3", DE_TAX_FIX)
    fixed_fee = ProjectTemplate.objects.get(code="FIXED-3")
    ProjectTemplate.objects.create(
        code="LEGACY-X",
        name="Legacy fixed fee",
        billing_model=fixed_fee.billing_model,
        duration_days=fixed_fee.duration_days,
        milestones=fixed_fee.milestones,
    )
    for code, username in (
        (ExceptionCode.TAX_CONFIGURATION_MISSING, "finance"),
        (ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND, "pmo"),
    ):
        exception = IntegrationException.objects.get(code=code)
        result = actions.retry(exception, User.objects.get(username=username))
        assert result.ok, result.message
    runs = SyncRun.objects.filter(workflow="create_service_engagement")
    assert runs.count() == 4
    assert set(runs.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}


def approve_amendment(standins: dict[str, Any], amendment_id: str = NORTHWIND_AMENDMENT) -> None:
    """Approve an amendment in the CRM and let the poll apply it (PSA and ERP re-planned)."""
    answer = httpx.post(
        f"{standins['salesforce'].url}/__standin__/salesforce/approve-amendment",
        json={"id": amendment_id},
    )
    assert answer.is_success, answer.text
    poll_amendments(crm())
    run = SyncRun.objects.get(correlation_id=f"amendment:{amendment_id}")
    assert run.status == RunStatus.SUCCEEDED, run.error


def define(kind: str, source: Connection, target: Connection, **extra: Any) -> Definition:
    return Definition.objects.create(
        name=f"{kind}-{source.pk}-{target.pk}", kind=kind, source=source, target=target, **extra
    )


def demo_definition(kind: str, source: Connection, target: Connection) -> Definition:
    """The demo's definition of this comparison (created if the demo has none)."""
    found_ = Definition.objects.filter(kind=kind, source=source, target=target).first()
    return found_ or define(kind, source, target)


def run(definition: Definition, *, full: bool = True) -> Run:
    """One run, executed (tasks run in-process); it must have finished."""
    definition.refresh_from_db()  # the watermarks the last run left
    queued = request_run(definition, full=full)
    done = Run.objects.get(pk=queued.pk)
    assert done.status == Run.Status.DONE, done.error
    return done


def found(run_: Run) -> dict[str, set[str]]:
    """The run's differences: {kind: keys}, the duplicates as `key@side`."""
    out: dict[str, set[str]] = {}
    for diff in Difference.objects.filter(run=run_):
        label = f"{diff.key}@{diff.side}" if diff.kind == "duplicate" else diff.key
        out.setdefault(diff.kind, set()).add(label)
    return out


def difference(run_: Run, key: str) -> Difference:
    return Difference.objects.get(run=run_, key=key)


def resync(definition: Definition, keys: list[str]) -> dict[str, str]:
    """The comparison's re-syncer on these keys: {key: what happened, in words}."""
    from reconciliation import catalogue

    return catalogue.get(definition.kind).resyncer()(definition, keys)


def resync_every_difference(run_: Run) -> dict[str, str]:
    """Re-sync every difference the run found; each re-sync must be accepted ("queued")."""
    keys = sorted(d.key for d in run_.differences.all())
    outcomes = resync(run_.definition, keys)
    assert all(outcome.startswith("queued") for outcome in outcomes.values()), outcomes
    return outcomes


def kinds(run_: Run) -> dict[str, str]:
    """The run's differences: {key: kind}."""
    return dict(Difference.objects.filter(run=run_).values_list("key", "kind"))


# -- manual edits through the stand-ins' control surface -------------------------------------
def control(demo: dict[str, Any], vendor: str, path: str, method: str = "POST", **kw: Any) -> Any:
    """Call a stand-in's control surface (`/__standin__/<path>`); its JSON answer."""
    answer = httpx.request(method, f"{demo[vendor].url}/__standin__/{path}", **kw)
    assert answer.is_success, answer.text
    return answer.json()


def records_url(standin: Any, name: str, rid: str = "") -> str:
    return f"{standin.url}/__standin__/records/{name}" + (f"/{rid}" if rid else "")


def edit(standin: Any, name: str, rid: str, changes: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(records_url(standin, name, rid), json=changes)
    assert answer.is_success, answer.text
    return answer.json()


def delete(standin: Any, name: str, rid: str) -> None:
    answer = httpx.delete(records_url(standin, name, rid))
    assert answer.is_success, answer.text


def copy(standin: Any, name: str, rid: str) -> dict[str, Any]:
    answer = httpx.post(records_url(standin, name, rid) + "/copy")
    assert answer.is_success, answer.text
    return answer.json()


def record(standin: Any, name: str, rid: str) -> dict[str, Any]:
    answer = httpx.get(records_url(standin, name, rid))
    assert answer.is_success, answer.text
    return answer.json()


def backdate(
    demo: dict[str, Any], *, kantata: tuple[str, ...], netsuite: str, hours: int = 1
) -> None:
    """Age every change time of these Kantata tables and this NetSuite record type, as if the
    flow ran `hours` ago (so an incremental run later reads only what changed since)."""
    old = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=hours)
    state = demo["kantata"].state
    with state.lock:
        for name in kantata:
            for item in state.table(name).values():
                item["updated_at"] = old.isoformat()
        state.touch()
    for item in demo["netsuite"].state.table(netsuite).values():
        item["lastModifiedDate"] = old.strftime("%Y-%m-%dT%H:%M:%SZ")


def next_second() -> dt.datetime:
    """A moment after everything written so far, on a whole second the vendors' second-
    precision modification times are later than (what an incremental pull starts from)."""
    time.sleep(1.1)
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    time.sleep(1.1)
    return moment


def close_deal(standins: dict[str, Any], account_id: str, **fields: Any) -> str:
    """A new deal won in the CRM (not handed over yet: poll for that); its id."""
    answer = httpx.post(
        f"{standins['salesforce'].url}/__standin__/salesforce/close-deal",
        json={"account_id": account_id, **fields},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def hand_over_new_deals() -> None:
    poll_closed_won(crm())
    failed = SyncRun.objects.exclude(status=RunStatus.SUCCEEDED)
    assert not failed.exists(), [run.error for run in failed]


def erp_id(connection_: Connection, entity_type: str, key: str) -> str:
    from integrations import bindings

    bound = bindings.lookup(connection_, entity_type, key)
    assert bound is not None, f"{key} is not bound in {connection_}"
    return bound


def job_id(key: str) -> str:
    """The ERP job of a deal's project (`deal:<id>`)."""
    return erp_id(erp(), "project", key)


def pull(definition: Definition, side: str, since: dt.datetime | None) -> list[Any]:
    """What one side's puller emits from `since` (the records an incremental run writes)."""
    from reconciliation import catalogue
    from reconciliation.pulling import PullContext

    emitted: list[Any] = []
    context = PullContext(
        definition=definition,
        side=side,
        connection=definition.source if side == "source" else definition.target,
        since=since,
        emit=emitted.append,
        on_call=lambda _call: None,
    )
    catalogue.get(definition.kind).puller(side)(context)
    return emitted


def incremental_run(
    definition: Definition, since: dt.datetime, *, source: list[str], target: list[str]
) -> Run:
    """Each side's incremental pull from `since` reads exactly the records with these keys,
    and the incremental run over them finishes: the run."""
    assert [r.key for r in pull(definition, "source", since)] == source
    assert [r.key for r in pull(definition, "target", since)] == target
    later = run(definition, full=False)
    assert later.mode == Run.Mode.INCREMENTAL
    return later


def failed_run(definition: Definition) -> Run:
    """A run whose pull fails: it ends failed, with the reason."""
    definition.refresh_from_db()
    try:
        queued = request_run(definition, full=True)
    except Exception:  # an eager task re-raises what failed the run
        queued = Run.objects.filter(definition=definition).order_by("-pk").first()
    done = Run.objects.get(pk=queued.pk)
    assert done.status == Run.Status.FAILED
    return done
