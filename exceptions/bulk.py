"""Bulk actions over a filtered set of exceptions (thousands): retry, resolve, assign, ignore.

The web request only checks the request, counts what it would touch (`preview`), saves a
BulkAction row and enqueues its id (`create`); a worker runs it (`run`, the Celery task
exceptions.run_bulk_action) in chunks of CHUNK_SIZE, each chunk locked row by row (rows
another process is changing are skipped and counted as failed), with the role checked per
exception, and saves its progress after every chunk so the progress page can show it.

The filter is the queue pages' and the API's (IntegrationExceptionFilterSet), kept as query
parameters on the row. The set is fixed when the action is created: exceptions that appear
afterwards are not touched. A bulk retry resumes the failed runs through the engine's
batched enqueue, and asks for one poll per connection for the exceptions of polls.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from django.db import transaction
from django.db.models import Max, QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console import audit
from console.choices import ROLE_RANK, Role
from console.models import Membership, User
from integrations import outbox
from integrations import services as engine

from . import ignoring, services
from .actions import InvalidInput
from .choices import BulkKind, BulkStatus, ExceptionStatus
from .filtersets import IntegrationExceptionFilterSet
from .lifecycle import REASON_MAX_CHARS, clean_text
from .models import BulkAction, IntegrationException

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500
TASK = "exceptions.run_bulk_action"
#: how many per-exception errors a bulk action keeps (the counts cover them all)
MAX_ERRORS = 100
#: the row's own bookkeeping inside `params` (the set's upper bound and how far it got)
CURSOR = "_cursor"


# -- the set ------------------------------------------------------------------------------


def query_dict(query: dict[str, Any]) -> QueryDict:
    """Filter parameters ({name: value or [values]}) as the FilterSet reads them."""
    data = QueryDict(mutable=True)
    for key, value in query.items():
        data.setlist(key, [str(v) for v in value] if isinstance(value, list) else [str(value)])
    return data


def query_from(data: QueryDict, *, skip: tuple[str, ...] = ("page", "csrfmiddlewaretoken")) -> dict:
    """A QueryDict's filter parameters as JSON for the BulkAction row."""
    out: dict[str, Any] = {}
    for key, values in data.lists():
        values = [v for v in values if v != ""]
        if key in skip or not values:
            continue
        out[key] = values if len(values) > 1 else values[0]
    return out


def matching(query: dict[str, Any], user: User) -> QuerySet[IntegrationException]:
    """The exceptions the filter selects (refused when a filter value is invalid)."""
    filterset = IntegrationExceptionFilterSet(
        query_dict(query),
        queryset=IntegrationException.objects.all(),
        request=SimpleNamespace(user=user),
    )
    if not filterset.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()
        )
        raise InvalidInput(f"The filter is not valid: {problems}")
    return filterset.qs


def actable_team_ids(user: User) -> set[int] | None:
    """The teams whose queues `user` acts on (None: every team, a superuser)."""
    if user.is_superuser:
        return None
    roles = [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role.RESOLVER]]
    return set(
        Membership.objects.filter(user=user, role__in=roles).values_list("team_id", flat=True)
    )


@dataclass(frozen=True)
class BulkPreview:
    """The confirmation step: how many exceptions the action touches, and how many of
    them the user may act on."""

    kind: str
    total: int
    actionable: int
    #: for a retry: runs to resume and connections to poll
    runs: int = 0
    polls: int = 0


def preview(kind: str, query: dict[str, Any], user: User) -> BulkPreview:
    _check_kind(kind)
    selected = matching(query, user)
    teams = actable_team_ids(user)
    mine = selected if teams is None else selected.filter(queue__team__in=teams)
    mine = mine.exclude(status=ExceptionStatus.RESOLVED)
    runs = polls = 0
    if kind == BulkKind.RETRY:
        runs = mine.filter(run__isnull=False).values("run").distinct().count()
        polls = (
            mine.filter(run__isnull=True, connection__isnull=False)
            .values("connection")
            .distinct()
            .count()
        )
    return BulkPreview(kind, selected.count(), mine.count(), runs, polls)


# -- creating -----------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in BulkKind.values:
        raise InvalidInput(f"Unknown bulk action {kind!r}; choose one of {BulkKind.values}.")


def clean_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters the action needs, checked: assign needs an assignee (a username),
    resolve a note, ignore a reason (and optionally `until`, an ISO time, or
    `until_it_happens_again`)."""
    if kind == BulkKind.ASSIGN:
        username = str(params.get("assignee") or "").strip()
        if not User.objects.filter(username=username, is_active=True).exists():
            raise InvalidInput("Choose the person to assign them to.")
        return {"assignee": username}
    if kind == BulkKind.RESOLVE:
        return {
            "note": clean_text(
                params.get("note", ""), what="how they were resolved", limit=REASON_MAX_CHARS
            )
        }
    if kind == BulkKind.IGNORE:
        out: dict[str, Any] = {
            "reason": clean_text(
                params.get("reason", ""), what="why you ignore them", limit=REASON_MAX_CHARS
            )
        }
        if params.get("until_it_happens_again"):
            out["until_it_happens_again"] = True
        elif params.get("until"):
            until = _time(params["until"])
            if until <= timezone.now():
                raise InvalidInput("The time to ignore them until has already passed.")
            out["until"] = until.isoformat()
        return out
    return {}


def _time(value: Any) -> dt.datetime:
    parsed = value if isinstance(value, dt.datetime) else parse_datetime(str(value))
    if parsed is None:
        raise InvalidInput(f"Not a time: {value!r} (use e.g. 2026-07-01T09:00:00Z).")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def create(kind: str, query: dict[str, Any], params: dict[str, Any], user: User) -> BulkAction:
    """Save the bulk action and hand it to a worker (after commit); returns at once."""
    _check_kind(kind)
    params = clean_params(kind, params)
    selected = matching(query, user)
    with transaction.atomic():
        summary = selected.aggregate(upto=Max("pk"))
        total = selected.count()
        if not total:
            raise InvalidInput("No exception matches these filters: nothing to do.")
        bulk = BulkAction.objects.create(
            kind=kind,
            query=query,
            params={**params, CURSOR: {"upto": summary["upto"], "after": 0}},
            total=total,
            created_by=user,
        )
        audit.record(
            "bulk_action.created",
            f"Bulk {bulk.get_kind_display().lower()} #{bulk.pk} of {total} exceptions queued",
            actor=user,
            obj=bulk,
            query=query,
            params=params,
        )
        outbox.enqueue(TASK, bulk.pk, key=f"bulk:{bulk.pk}")
    return bulk


def public_params(bulk: BulkAction) -> dict[str, Any]:
    """The action's parameters without the row's own bookkeeping."""
    return {k: v for k, v in (bulk.params or {}).items() if not k.startswith("_")}


# -- running ------------------------------------------------------------------------------


@dataclass
class Chunk:
    """One chunk's outcome: how many succeeded, and why the others failed."""

    succeeded: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    def fail(self, exc: IntegrationException | int, message: str) -> None:
        self.errors.append((exc if isinstance(exc, int) else exc.pk, message))


@dataclass
class Job:
    """What a running bulk action keeps between chunks."""

    bulk: BulkAction
    user: User
    teams: set[int] | None
    polled: set[int] = field(default_factory=set)
    assignee_teams: dict[int, bool] = field(default_factory=dict)

    def may_act(self, exc: IntegrationException) -> bool:
        return self.teams is None or exc.queue.team_id in self.teams


def _record(job: Job, action: str, excs: list[IntegrationException], verb: str) -> None:
    audit.record_each(
        action,
        [
            (
                exc,
                f"Exception #{exc.pk} {verb} (bulk action #{job.bulk.pk})",
                exc.run.correlation_id if exc.run_id else "",
                {"bulk_action": job.bulk.pk},
            )
            for exc in excs
        ],
        actor=job.user,
    )


def _retry(job: Job, excs: list[IntegrationException], out: Chunk) -> None:
    with_run = [e for e in excs if e.run_id is not None]
    resumed = set(
        engine.resume_runs(
            sorted({e.run_id for e in with_run}),
            actor=job.user,
            reason=f"bulk retry #{job.bulk.pk}",
        )
    )
    done = []
    for exc in with_run:
        if exc.run_id in resumed:
            done.append(exc)
        else:
            out.fail(exc, "Its run is already queued or running.")
    for exc in excs:
        if exc.run_id is not None:
            continue
        if exc.connection_id is None:
            out.fail(exc, "Nothing to retry: no run or connection.")
            continue
        if exc.connection_id not in job.polled:  # one poll per connection per bulk action
            engine.request_poll(exc.connection)
            job.polled.add(exc.connection_id)
        done.append(exc)
    IntegrationException.objects.filter(pk__in=[e.pk for e in done]).update(
        status=ExceptionStatus.RETRYING
    )
    _record(job, "exception.retry", done, "retry requested")
    out.succeeded += len(done)


def _resolve(job: Job, excs: list[IntegrationException], out: Chunk) -> None:
    out.succeeded += services.resolve(excs, reason=job.bulk.params["note"], actor=job.user)


def _assign(job: Job, excs: list[IntegrationException], out: Chunk) -> None:
    assignee = User.objects.filter(username=job.bulk.params["assignee"], is_active=True).first()
    done = []
    for exc in excs:
        team = exc.queue.team
        if team.pk not in job.assignee_teams:
            job.assignee_teams[team.pk] = assignee is not None and assignee.can_act_for(team)
        if job.assignee_teams[team.pk]:
            done.append(exc)
        else:
            out.fail(exc, f"{job.bulk.params['assignee']} is not a resolver of {team}.")
    IntegrationException.objects.filter(pk__in=[e.pk for e in done]).update(
        assignee=assignee, assigned_manually=True
    )
    _record(job, "exception.assigned", done, f"assigned to {job.bulk.params['assignee']}")
    out.succeeded += len(done)


def _ignore(job: Job, excs: list[IntegrationException], out: Chunk) -> None:
    params = job.bulk.params
    until = None
    if params.get("until_it_happens_again"):
        until = ignoring.UNTIL_IT_HAPPENS_AGAIN
    elif params.get("until"):
        until = _time(params["until"])
    done = [e for e in excs if e.status != ExceptionStatus.RETRYING]
    for exc in excs:
        if exc.status == ExceptionStatus.RETRYING:
            out.fail(exc, "A retry is running.")
    IntegrationException.objects.filter(pk__in=[e.pk for e in done]).update(
        status=ExceptionStatus.IGNORED, ignored_reason=params["reason"], ignored_until=until
    )
    _record(job, "exception.ignored", done, f"ignored: {params['reason']}")
    out.succeeded += len(done)


HANDLERS: dict[str, Callable[[Job, list[IntegrationException], Chunk], None]] = {
    BulkKind.RETRY: _retry,
    BulkKind.RESOLVE: _resolve,
    BulkKind.ASSIGN: _assign,
    BulkKind.IGNORE: _ignore,
}


def _chunk(job: Job) -> int:
    """Process the next chunk; return how many exceptions it covered (0: the end). The
    action's row is locked for the chunk, so two deliveries of the task take turns instead
    of doing a chunk twice."""
    with transaction.atomic():
        bulk = job.bulk = BulkAction.objects.select_for_update(of=("self",)).get(pk=job.bulk.pk)
        cursor = bulk.params[CURSOR]
        ids = list(
            matching(bulk.query, job.user)
            .filter(pk__gt=cursor["after"], pk__lte=cursor["upto"] or 0)
            .order_by("pk")
            .values_list("pk", flat=True)[:CHUNK_SIZE]
        )
        if not ids:
            return 0
        rows = list(
            IntegrationException.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("queue__team", "run")
            .filter(pk__in=ids)
            .order_by("pk")
        )
        out = Chunk()
        for pk in sorted(set(ids) - {e.pk for e in rows}):
            out.fail(pk, "Someone else was changing it at that moment; not changed.")
        todo = []
        for exc in rows:
            if not job.may_act(exc):
                out.fail(exc, f"You are not a resolver of {exc.queue.team}.")
            elif exc.status == ExceptionStatus.RESOLVED:
                out.fail(exc, "Already resolved.")
            else:
                todo.append(exc)
        if todo:
            HANDLERS[bulk.kind](job, todo, out)
        bulk.params[CURSOR] = {**cursor, "after": ids[-1]}
        bulk.done += len(ids)
        bulk.succeeded += out.succeeded
        bulk.failed += len(out.errors)
        room = max(MAX_ERRORS - len(bulk.errors), 0)
        bulk.errors += [{"exception": pk, "error": msg} for pk, msg in out.errors[:room]]
        save_progress(bulk)
    return len(ids)


def save_progress(bulk: BulkAction) -> None:
    """Save how far the action got (after every chunk; the progress page reads it)."""
    bulk.save(update_fields=["params", "done", "succeeded", "failed", "errors"])


def run(bulk_id: int) -> BulkAction | None:
    """Run a queued bulk action to its end, chunk by chunk. A repeat delivery of the task
    goes on from the last saved chunk; a finished action is left alone."""
    with transaction.atomic():
        bulk = BulkAction.objects.select_for_update(of=("self",)).filter(pk=bulk_id).first()
        if bulk is None or bulk.status in (BulkStatus.FINISHED, BulkStatus.FAILED):
            return bulk
        bulk.status = BulkStatus.RUNNING
        bulk.started_at = bulk.started_at or timezone.now()
        bulk.save(update_fields=["status", "started_at"])
    job = Job(bulk=bulk, user=bulk.created_by, teams=actable_team_ids(bulk.created_by))
    try:
        while _chunk(job):
            pass
    except Exception as exc:
        logger.exception("bulk action %s failed", bulk.pk)
        bulk = BulkAction.objects.get(pk=bulk.pk)
        bulk.status = BulkStatus.FAILED
        bulk.errors = [*bulk.errors, {"exception": None, "error": f"Stopped: {exc}"[:500]}]
        bulk.finished_at = timezone.now()
        bulk.save(update_fields=["status", "errors", "finished_at"])
        raise
    bulk = job.bulk
    bulk.status = BulkStatus.FINISHED
    bulk.finished_at = timezone.now()
    bulk.save(update_fields=["status", "finished_at"])
    audit.record(
        "bulk_action.finished",
        f"Bulk {bulk.get_kind_display().lower()} #{bulk.pk} finished: {bulk.succeeded} done, "
        f"{bulk.failed} not",
        actor=bulk.created_by,
        obj=bulk,
    )
    logger.info("bulk action %s finished: %s/%s", bulk.pk, bulk.succeeded, bulk.done)
    return bulk
