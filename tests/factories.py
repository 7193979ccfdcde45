"""Small builders for test data (plain functions; each returns a saved model)."""

from __future__ import annotations

import itertools
from typing import Any

from django.utils import timezone

from console.choices import Role, TeamKind
from console.models import Membership, Team, User
from exceptions.choices import Category, ExceptionCode, ExceptionStatus
from exceptions.models import IntegrationException, Queue
from integrations.choices import AuthKind, RunStatus, StepStatus, SystemKind, Vendor
from integrations.models import Connection, SyncRun, SyncStep

_seq = itertools.count(1)

TEAM_NAMES = {
    TeamKind.FINANCE: "Finance",
    TeamKind.PMO: "PMO",
    TeamKind.SALES_OPS: "Sales Ops",
    TeamKind.IT: "IT",
}


def make_team(kind: str = TeamKind.FINANCE, name: str | None = None) -> Team:
    name = name or TEAM_NAMES.get(kind, kind)
    team, _ = Team.objects.get_or_create(
        slug=name.lower().replace(" ", "-"), defaults={"name": name, "kind": kind}
    )
    return team


def make_queue(team: Team | None = None, name: str | None = None) -> Queue:
    team = team or make_team()
    name = name or team.name
    queue, _ = Queue.objects.get_or_create(
        slug=name.lower().replace(" ", "-"), defaults={"name": name, "team": team}
    )
    return queue


def make_user(
    username: str | None = None,
    *,
    team: Team | None = None,
    role: str = Role.RESOLVER,
    password: str = "pw-for-tests-1",
    **extra: Any,
) -> User:
    user = User.objects.create_user(
        username=username or f"user{next(_seq)}", password=password, **extra
    )
    if team is not None:
        Membership.objects.create(user=user, team=team, role=role)
    return user


VENDOR_DEFAULTS = {
    Vendor.SALESFORCE: (SystemKind.CRM, AuthKind.JWT_BEARER),
    Vendor.NETSUITE: (SystemKind.ERP, AuthKind.OAUTH_M2M),
    Vendor.KANTATA: (SystemKind.PSA, AuthKind.BEARER_TOKEN),
}


def make_connection(
    vendor: str = Vendor.SALESFORCE,
    *,
    base_url: str = "http://127.0.0.1:9",
    settings: dict | None = None,
    secrets: dict | None = None,
    name: str | None = None,
) -> Connection:
    system, auth = VENDOR_DEFAULTS[Vendor(vendor)]
    connection = Connection(
        name=name or f"{vendor}-{next(_seq)}",
        vendor=vendor,
        system=system,
        base_url=base_url,
        auth_kind=auth,
        settings=settings or {},
    )
    connection.set_secrets(secrets or {"token": "t"})
    connection.save()
    return connection


def make_run(
    workflow: str = "create_service_engagement",
    *,
    correlation_id: str | None = None,
    status: str = RunStatus.FAILED,
    steps: tuple[str, ...] = ("fetch_deal",),
    **extra: Any,
) -> SyncRun:
    run = SyncRun.objects.create(
        workflow=workflow,
        correlation_id=correlation_id or f"deal:TEST{next(_seq):06d}",
        trigger="poll",
        status=status,
        started_at=timezone.now(),
        **extra,
    )
    for i, name in enumerate(steps):
        last = i == len(steps) - 1
        SyncStep.objects.create(
            run=run,
            name=name,
            position=i,
            status=StepStatus.FAILED
            if last and status == RunStatus.FAILED
            else StepStatus.SUCCEEDED,
            attempts=1,
        )
    return run


def make_exception(
    queue: Queue | None = None,
    *,
    run: SyncRun | None = None,
    code: str = ExceptionCode.TAX_CONFIGURATION_MISSING,
    status: str = ExceptionStatus.OPEN,
    **extra: Any,
) -> IntegrationException:
    queue = queue or make_queue()
    run = run or make_run()
    n = next(_seq)
    now = timezone.now()
    defaults: dict[str, Any] = {
        "category": Category.BUSINESS,
        "title": f"Tax configuration missing: legal_entity DE0{n}",
        "explanation": "The ERP subsidiary has no tax registration.",
        "suggested_fix": "Add the tax registration, then Retry.",
        "entity_type": "legal_entity",
        "entity_ref": f"DE0{n}",
        "legal_entity_code": "DE01",
        "region": "EMEA",
        "payload": {"Id": run.correlation_id},
        "vendor_error": {},
        "fingerprint": f"test-{n}",
        "first_seen": now,
        "last_seen": now,
        "step": run.steps.order_by("-position").first(),
    }
    defaults.update(extra)
    return IntegrationException.objects.create(
        queue=queue, run=run, code=code, status=status, **defaults
    )
