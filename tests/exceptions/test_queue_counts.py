"""/api/v1/queues/ gives each queue the counts the queue list page shows (active and SLA
breached, from the same grouped count over the active work: exceptions.queue_counts), and
its cost does not grow with the queues or the exceptions behind them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from console.choices import TeamKind
from console.models import User
from exceptions.choices import ExceptionStatus
from exceptions.models import Queue
from exceptions.queue_counts import QueueCounts, active_counts
from tests.factories import make_exception, make_queue, make_team, make_user

pytestmark = pytest.mark.django_db

PAST = dict(due_at=timezone.now() - dt.timedelta(hours=1))


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def worked(finance_queue: Queue, pmo_queue: Queue) -> dict[str, Queue]:
    """Finance: open (breached), in progress, retry queued, ignored (breached), resolved;
    PMO: one open, breached."""
    make_exception(finance_queue, **PAST)
    make_exception(finance_queue, status=ExceptionStatus.IN_PROGRESS)
    make_exception(finance_queue, status=ExceptionStatus.RETRYING)
    make_exception(finance_queue, status=ExceptionStatus.IGNORED, **PAST)
    make_exception(finance_queue, status=ExceptionStatus.RESOLVED, **PAST)
    make_exception(pmo_queue, **PAST)
    return {"finance": finance_queue, "pmo": pmo_queue}


def test_the_api_counts_what_the_queue_list_page_shows(worked: dict[str, Queue]) -> None:
    user = make_user("fiona", team=worked["finance"].team)
    client = Client()
    client.force_login(user)
    page = client.get(reverse("exceptions:queues")).context
    on_page = {q.slug: (q.active_count, q.breached_count) for q in page["my_queues"]}
    on_page |= {q.slug: (q.active_count, q.breached_count) for q in page["other_queues"]}

    rows = api(user).get("/api/v1/queues/").json()["results"]
    in_api = {row["slug"]: (row["active_count"], row["breached_count"]) for row in rows}

    # ignored and resolved exceptions are not the queue's work, even when past due
    assert in_api == on_page == {"finance": (3, 1), "pmo": (1, 1)}


def test_one_queue_and_the_older_field_names(worked: dict[str, Queue]) -> None:
    user = make_user("fiona", team=worked["finance"].team)
    body = api(user).get("/api/v1/queues/finance/").json()
    assert (body["active_count"], body["breached_count"]) == (3, 1)
    # open_count and unresolved_count stay for older clients, with the active count
    assert body["open_count"] == body["unresolved_count"] == 3
    assert body["team"] == worked["finance"].team.slug


def test_a_queue_without_work_counts_zero(finance_queue: Queue) -> None:
    user = make_user("fiona", team=finance_queue.team)
    body = api(user).get(f"/api/v1/queues/{finance_queue.slug}/").json()
    assert (body["active_count"], body["breached_count"]) == (0, 0)
    assert active_counts([finance_queue.pk]) == {}


def test_counts_of_chosen_queues_only(worked: dict[str, Queue]) -> None:
    assert active_counts([worked["pmo"].pk]) == {worked["pmo"].pk: QueueCounts(1, 1)}
    assert active_counts() == {
        worked["finance"].pk: QueueCounts(3, 1),
        worked["pmo"].pk: QueueCounts(1, 1),
    }


def test_the_queue_list_costs_the_same_queries_for_more_queues_and_work(
    worked: dict[str, Queue], django_assert_num_queries: Any
) -> None:
    user = make_user("fiona", team=worked["finance"].team)
    client = api(user)
    client.get("/api/v1/queues/")  # sign-in and caches out of the way
    with CaptureQueriesContext(connection) as before:
        client.get("/api/v1/queues/")
    added = []
    for kind in (TeamKind.SALES_OPS, TeamKind.IT):
        queue = make_queue(make_team(kind))
        added.append(queue.slug)
        for _ in range(3):
            make_exception(queue, **PAST)
    with django_assert_num_queries(len(before)):
        rows = client.get("/api/v1/queues/").json()["results"]
    counts = {row["slug"]: (row["active_count"], row["breached_count"]) for row in rows}
    assert counts == {"finance": (3, 1), "pmo": (1, 1)} | {slug: (3, 3) for slug in added}
