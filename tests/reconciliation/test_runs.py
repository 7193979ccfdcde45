"""Asking for runs: one at a time per definition, and a full pull when one is due."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from integrations.choices import Vendor
from reconciliation.models import Definition, Run
from reconciliation.runs import request_run
from tests.factories import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def definition() -> Definition:
    return Definition.objects.create(
        name="projects",
        kind="projects",
        source=make_connection(Vendor.KANTATA),
        target=make_connection(Vendor.NETSUITE),
        full_pull_every=3,
    )


def test_the_first_run_pulls_everything(definition: Definition) -> None:
    assert request_run(definition).mode == Run.Mode.FULL


def test_a_second_request_while_one_works_returns_that_run(definition: Definition) -> None:
    first = request_run(definition)
    assert request_run(definition, full=True) == first
    assert Run.objects.count() == 1


def test_an_abandoned_run_does_not_block_the_next(definition: Definition) -> None:
    stale = request_run(definition)
    Run.objects.filter(pk=stale.pk).update(created_at=timezone.now() - dt.timedelta(hours=3))
    fresh = request_run(definition)
    assert fresh != stale
    stale.refresh_from_db()
    assert stale.status == Run.Status.FAILED and "abandoned" in stale.error


def test_scheduled_runs_pull_in_full_every_nth_time(definition: Definition) -> None:
    now = timezone.now()
    Definition.objects.filter(pk=definition.pk).update(source_watermark=now, target_watermark=now)
    definition.refresh_from_db()
    modes = []
    for _ in range(4):
        run = request_run(definition, trigger="schedule")
        modes.append(run.mode)
        Run.objects.filter(pk=run.pk).update(status=Run.Status.DONE)
    assert modes == ["full", "incremental", "incremental", "full"]
    # asking by hand pulls what changed unless asked for a full pull
    assert request_run(definition).mode == "incremental"


def test_the_schedule_is_a_periodic_task_like_the_other_jobs(definition: Definition) -> None:
    task = definition.periodic_task
    assert task.task == "reconciliation.scheduled_run"
    assert task.crontab.hour == "3" and task.crontab.minute == "30"
    definition.schedule = "0 */6 * * *"
    definition.enabled = False
    definition.save()
    task.refresh_from_db()
    assert task.crontab.hour == "*/6" and not task.enabled
