"""End to end: a real Celery worker process consumes the work over the configured broker
(Redis in CI), the connectors speak HTTP to the stand-ins, and the records land in the
configured database (PostgreSQL in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from console.celery import app as celery_app
from console.models import User
from exceptions import actions
from exceptions.choices import ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException
from integrations.choices import RunStatus
from integrations.connectors.registry import build_client
from integrations.models import ApiCall, Connection, SyncRun
from integrations.queues import all_queues
from integrations.tasks import poll_closed_won_task

pytestmark = [pytest.mark.e2e]
DE_TAX_FIX = {
    "taxRegistration": {
        "items": [{"nexusCountry": {"id": "DE"}, "taxRegistrationNumber": "DE811234567"}]
    }
}
ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else f"{user}@"
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def _require_ci_services() -> None:
    if not os.environ.get("CI"):
        return
    assert connection.vendor == "postgresql", "CI runs the end-to-end test on PostgreSQL"
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "CI runs it on a Redis broker"


@pytest.fixture
def worker(demo) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on the test database and the configured broker."""
    _require_ci_services()
    celery_app.control.purge()
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "console",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--queues",
            ",".join(all_queues()),
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"e2e-{uuid.uuid4().hex[:8]}@%h",
        ],
        cwd=ROOT,
        env=env,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(condition: Callable[[], bool], *, timeout: float = 90, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def finished_runs() -> int:
    return SyncRun.objects.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]).count()


def test_closed_won_deals_flow_through_a_real_worker(demo, worker):
    standins = demo
    crm = Connection.objects.get(vendor="salesforce")
    poll_closed_won_task.delay(crm.pk)
    wait_for(lambda: finished_runs() == 4, what="the four closed-won deals to finish")

    assert SyncRun.objects.filter(status=RunStatus.SUCCEEDED).count() == 2
    tax = IntegrationException.objects.get(code=ExceptionCode.TAX_CONFIGURATION_MISSING)
    assert tax.queue.team.kind == "finance"
    assert tax.legal_entity_code == "DE01"
    template = IntegrationException.objects.get(code=ExceptionCode.PROJECT_TEMPLATE_NOT_FOUND)
    assert template.queue.name == "PMO Americas"
    assert ApiCall.objects.filter(connection__vendor="netsuite").exists()

    # Finance fixes the subsidiary's tax registration in the ERP and retries.
    erp = Connection.objects.get(name="NetSuite (demo)")
    with build_client(erp) as client:
        client.update_record("subsidiary", "3", DE_TAX_FIX)
    finance = User.objects.get(username="finance")
    actions.retry(tax, finance)
    wait_for(
        lambda: IntegrationException.objects.get(pk=tax.pk).status == ExceptionStatus.RESOLVED,
        what="the retried run to resolve the exception",
    )
    assert tax.run.__class__.objects.get(pk=tax.run_id).status == RunStatus.SUCCEEDED
    customers = [
        c
        for c in standins["netsuite"].state.table("customer").values()
        if c.get("companyName") == "Initech GmbH"
    ]
    assert len(customers) == 1
