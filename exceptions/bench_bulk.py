"""The bulk-retry phase of `manage.py bench exceptions`: the failures of one vendor outage
retried in bulk through the API, without a web request held open while they are worked.

In the bench's database (after the page measures, so among all the other exceptions) it
inserts `count` failed runs of create_service_engagement, each with its seven steps (the deal
read, its legal entity checked, its ERP customer upserted, its project's provisioning failed
because Kantata was unavailable, the rest pending), and for each run one active "Vendor
unavailable" exception in the IT queue, all gathered into one incident. Then, as an IT
resolver through the test client:

1. POST /api/v1/bulk-actions/preview/ (the confirmation step) and POST /api/v1/bulk-actions/
   (a retry of the incident's active exceptions): how long each request takes. They only
   count, save the action and enqueue it; the POST answers 202.
2. The task that POST queued (its outbox message), run in this process as a worker would:
   the seconds until the action is finished, and its counts as GET /api/v1/bulk-actions/{id}/
   reports them.
3. What the retry handed on: the runs back to pending and the outbox messages that take them
   to workers, RUN_BATCH_SIZE runs a message. Messages are counted, never sent: the outbox is
   held for the phase (as if the broker were away), so no workflow runs and nothing needs
   Redis.

Targets: each request under REQUEST_MS_MAX; the action finished with every exception
retried and every run resumed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from celery import current_app
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.choices import Role
from console.models import AuditEvent, Membership, Team, User
from integrations import outbox
from integrations.choices import RunStatus, StepStatus, Trigger
from integrations.models import Connection, OutboxMessage, SyncRun, SyncStep
from integrations.workflows.registry import get_workflow

from . import bulk
from .choices import BulkKind, BulkStatus, Category, ExceptionCode, ExceptionStatus
from .models import Incident, IntegrationException, Queue

#: a bulk request may take at most this long: it only counts, saves and enqueues
REQUEST_MS_MAX = 1000.0
WORKFLOW = "create_service_engagement"
FAILED_STEP = "provision_project"
RUN_TASK = "integrations.run_workflows"
PREFIX = "deal:OUTAGE"
INSERT_BATCH = 5_000
#: the outage's deals, spread over the legal entities like the IT queue's work
ENTITIES = [("UK01", "EMEA"), ("US01", "Americas"), ("DE01", "EMEA"), ("CA01", "Americas")]


@contextmanager
def outbox_held() -> Iterator[list[int]]:
    """Outbox messages stay unsent (the ids the after-commit hand-off would have sent are
    collected): the bench counts what was queued without running it."""
    held: list[int] = []

    def hold(ids: Any) -> int:
        held.extend(ids)
        return 0

    with mock.patch.object(outbox, "send", hold):
        yield held


def measure_bulk_retry(
    *,
    count: int,
    queue: Queue,
    crm: Connection,
    psa: Connection,
    say: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Insert the outage, bulk-retry it through the API, run the queued task; the figures."""
    t0 = time.perf_counter()
    incident, run_ids = _outage(count, queue, crm, psa)
    setup_s = time.perf_counter() - t0
    say(
        f"bulk retry: {count:,} failed {WORKFLOW} runs with one active exception each in "
        f"{queue.name} ({setup_s:.1f} s to insert)\n"
    )
    client = Client()
    client.force_login(_resolver(queue.team))
    body = json.dumps(
        {
            "kind": BulkKind.RETRY.value,
            "query": {"queue": queue.slug, "incident": incident.pk, "status": "active"},
        }
    )
    before = {
        "message": OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
        "event": AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
    }
    with outbox_held():
        preview_ms, preview = _post(client, "/api/v1/bulk-actions/preview/", body, 200)
        with CaptureQueriesContext(connection) as queries:
            request_ms, created = _post(client, "/api/v1/bulk-actions/", body, 202)
        # counted now: the next request's end clears the captured list
        request_queries = len(queries)
        bulk_id = created["id"]
        message = OutboxMessage.objects.get(task=bulk.TASK, key=f"bulk:{bulk_id}")
        queued_status = created["status"]
        say(
            f"  preview {preview_ms:.1f} ms ({preview['actionable']:,} to retry, "
            f"{preview['runs']:,} runs); POST {request_ms:.1f} ms -> {queued_status}, "
            f"{request_queries} queries\n"
        )
        # the worker's part: the task the request queued, with the arguments it queued
        t0 = time.perf_counter()
        current_app.tasks[message.task](*message.args, **message.kwargs)
        run_s = time.perf_counter() - t0
    progress = client.get(f"/api/v1/bulk-actions/{bulk_id}/", HTTP_ACCEPT="application/json")
    final = progress.json()
    messages = list(
        OutboxMessage.objects.filter(pk__gt=before["message"], task=RUN_TASK).values_list(
            "args", "sent_at"
        )
    )
    queued_runs = {pk for args, _sent in messages for pk in args[0]}
    resumed = SyncRun.objects.filter(pk__in=run_ids, status=RunStatus.PENDING).count()
    figures: dict[str, Any] = {
        "exceptions": count,
        "setup_s": round(setup_s, 1),
        "preview_request_ms": round(preview_ms, 1),
        "request_ms": round(request_ms, 1),
        "request_queries": request_queries,
        "request_answer": {"status_code": 202, "status": queued_status},
        "preview": {k: preview[k] for k in ("total", "actionable", "runs", "polls")},
        "run_s": round(run_s, 2),
        "exceptions_per_s": round(count / max(run_s, 1e-6)),
        "chunks": math.ceil(count / bulk.CHUNK_SIZE),
        "status": final["status"],
        "total": final["total"],
        "done": final["done"],
        "succeeded": final["succeeded"],
        "failed": final["failed"],
        "exceptions_retrying": IntegrationException.objects.filter(
            incident=incident, status=ExceptionStatus.RETRYING
        ).count(),
        "runs_resumed": resumed,
        "runs_queued_via_outbox": len(queued_runs & set(run_ids)),
        "run_messages": len(messages),
        "run_messages_sent": sum(1 for _args, sent in messages if sent is not None),
        "audit_events": AuditEvent.objects.filter(pk__gt=before["event"]).count(),
    }
    say(
        f"  task: {figures['status']} in {run_s:.2f} s ({figures['exceptions_per_s']:,} "
        f"exceptions/s, {figures['chunks']} chunks): {figures['done']:,} done, "
        f"{figures['succeeded']:,} succeeded, {figures['failed']:,} failed; "
        f"{resumed:,} runs resumed, queued in {len(messages)} outbox messages\n"
    )
    return figures


def targets_met(figures: dict[str, Any]) -> dict[str, bool]:
    """Which of the phase's targets its figures meet."""
    count = figures["exceptions"]
    return {
        "bulk_preview_request_ms": figures["preview_request_ms"] <= REQUEST_MS_MAX,
        "bulk_retry_request_ms": figures["request_ms"] <= REQUEST_MS_MAX,
        "bulk_retry_completed": (
            figures["status"] == BulkStatus.FINISHED.value
            and figures["total"] == figures["done"] == figures["succeeded"] == count
            and figures["failed"] == 0
            and figures["exceptions_retrying"] == count
        ),
        "bulk_retry_runs_resumed": (
            figures["runs_resumed"] == figures["runs_queued_via_outbox"] == count
        ),
    }


# -- the data -----------------------------------------------------------------------------


def _resolver(team: Team) -> User:
    user, _ = User.objects.get_or_create(username="bench-it-resolver")
    Membership.objects.get_or_create(user=user, team=team, defaults={"role": Role.RESOLVER})
    return user


def _post(client: Client, url: str, body: str, expected: int) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    response = client.post(url, body, content_type="application/json")
    ms = (time.perf_counter() - t0) * 1000
    if response.status_code != expected:
        raise RuntimeError(f"POST {url} answered {response.status_code}: {response.content!r}")
    return ms, response.json()


def _outage(count: int, queue: Queue, crm: Connection, psa: Connection) -> tuple[Incident, list]:
    """`count` failed runs, their steps and one exception each, in one incident."""
    now = timezone.now()
    started = now - dt.timedelta(minutes=30)
    names = [step.name for step in get_workflow(WORKFLOW).steps]
    failed_at = names.index(FAILED_STEP)
    error = {"status": 503, "message": "Kantata is unavailable (503 Service Unavailable)"}
    SyncRun.objects.bulk_create(
        [
            SyncRun(
                workflow=WORKFLOW,
                correlation_id=f"{PREFIX}{i:06d}",
                business_key=f"{PREFIX}{i:06d}",
                trigger=Trigger.POLL,
                status=RunStatus.FAILED,
                source_connection=crm,
                title=f"Outage deal {i}",
                input={"Id": f"006OUT{i:09d}"},
                error={"step": FAILED_STEP, **error},
                legal_entity_code=ENTITIES[i % len(ENTITIES)][0],
                region=ENTITIES[i % len(ENTITIES)][1],
                attempts=1,
                started_at=started,
                finished_at=started,
            )
            for i in range(count)
        ],
        batch_size=INSERT_BATCH,
    )
    runs = list(
        SyncRun.objects.filter(workflow=WORKFLOW, correlation_id__startswith=PREFIX)
        .order_by("pk")
        .values_list("pk", "correlation_id", "legal_entity_code", "region")
    )

    def status(position: int) -> str:
        if position < failed_at:
            return StepStatus.SUCCEEDED
        return StepStatus.FAILED if position == failed_at else StepStatus.PENDING

    for start in range(0, len(runs), INSERT_BATCH):
        SyncStep.objects.bulk_create(
            [
                SyncStep(
                    run_id=pk,
                    name=name,
                    position=position,
                    status=status(position),
                    attempts=1 if position <= failed_at else 0,
                    error=error if position == failed_at else {},
                )
                for pk, *_ in runs[start : start + INSERT_BATCH]
                for position, name in enumerate(names)
            ]
        )
    failed_steps = dict(
        SyncStep.objects.filter(
            run__workflow=WORKFLOW, run__correlation_id__startswith=PREFIX, name=FAILED_STEP
        ).values_list("run_id", "pk")
    )
    incident = Incident.objects.create(
        cause_key=f"vendor_unavailable:connection:{psa.pk}",
        code=ExceptionCode.VENDOR_UNAVAILABLE,
        title=f"{psa.name} unavailable",
        queue=queue,
    )
    due = now + dt.timedelta(hours=queue.sla_hours)
    IntegrationException.objects.bulk_create(
        [
            IntegrationException(
                queue=queue,
                code=ExceptionCode.VENDOR_UNAVAILABLE,
                category=Category.TECHNICAL,
                status=ExceptionStatus.OPEN,
                title=f"Vendor unavailable: project for {correlation_id}",
                explanation="Kantata did not answer: the project could not be provisioned.",
                suggested_fix="Wait until Kantata is back, then Retry.",
                run_id=pk,
                step_id=failed_steps[pk],
                connection=psa,
                entity_type="project",
                entity_ref=correlation_id.removeprefix("deal:"),
                legal_entity_code=entity,
                region=region,
                vendor_error=error,
                fingerprint=f"bench-outage-{pk}",
                first_seen=started,
                last_seen=started,
                due_at=due,
                incident=incident,
            )
            for pk, correlation_id, entity, region in runs
        ],
        batch_size=INSERT_BATCH,
    )
    return incident, [pk for pk, *_ in runs]
