"""Demo data: teams and their users, queues, legal entities, project templates, connections to
the vendor stand-ins (with freshly generated keys the stand-ins trust) and the ERP bindings of
the legal entities. Idempotent: `make run` seeds on every start.

This module is project wiring, like settings: it names every app on purpose.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from console.choices import Role, TeamKind
from console.models import Membership, Team, User
from exceptions.models import Queue
from exceptions.rule_editing import install_default_rules
from integrations import bindings, purchase_orders
from integrations.choices import AuthKind, BillingModel, ErpDocument, Region, SystemKind, Vendor
from integrations.connectors.keys import generate_key_pair
from integrations.models import Connection, ErpRoute, LegalEntity, ProjectTemplate
from reconciliation.demo import seed_definitions
from reporting.demo import seed_extracts

DEMO_PASSWORD = "throughline-demo"

TEAMS = [
    # (slug, name, kind, username, role, queues)
    (
        "finance",
        "Finance",
        TeamKind.FINANCE,
        "finance",
        Role.RESOLVER,
        ["Finance", "Finance UK", "Finance US"],
    ),
    ("pmo", "PMO", TeamKind.PMO, "pmo", Role.RESOLVER, ["PMO EMEA", "PMO Americas"]),
    ("sales-ops", "Sales Ops", TeamKind.SALES_OPS, "salesops", Role.RESOLVER, ["Sales Ops"]),
    ("it", "IT", TeamKind.IT, "it", Role.ADMIN, ["IT Integration"]),
    # leadership reads the KPIs and the leadership view; it owns no queue
    ("leadership", "Leadership", TeamKind.LEADERSHIP, "leadership", Role.ADMIN, []),
]

#: per team kind: (SLA hours, escalate after hours past due, escalation e-mails, alert e-mails);
#: the demo has no webhook (no network): alerts and escalations are e-mails, which the
#: development e-mail backend prints in the worker's log
SERVICE_LEVELS = {
    TeamKind.FINANCE: (24, 24, "finance-lead@example.com", "finance-team@example.com"),
    TeamKind.PMO: (8, 8, "pmo-lead@example.com", "pmo-team@example.com"),
    TeamKind.SALES_OPS: (24, 24, "salesops-lead@example.com", "salesops-team@example.com"),
    TeamKind.IT: (4, 2, "it-oncall@example.com", "it-integration@example.com"),
}

LEGAL_ENTITIES = [
    # (code, name, country, currency, region, NetSuite subsidiary id)
    ("US01", "Throughline Demo Inc.", "US", "USD", Region.AMERICAS, "1"),
    ("UK01", "Throughline Demo UK Ltd", "GB", "GBP", Region.EMEA, "2"),
    ("DE01", "Throughline Demo GmbH", "DE", "EUR", Region.EMEA, "3"),
]

TEMPLATES = [
    (
        "FIXED-3",
        "Fixed fee, three milestones",
        BillingModel.FIXED_FEE,
        90,
        [
            {"name": "Kick-off", "percent": "20", "offset_days": 0},
            {"name": "Design sign-off", "percent": "30", "offset_days": 30},
            {"name": "Go-live", "percent": "50", "offset_days": 75},
        ],
    ),
    (
        "TM-STD",
        "Time and materials, standard",
        BillingModel.TIME_AND_MATERIALS,
        120,
        [
            {"name": "Phase 1 complete", "percent": "50", "offset_days": 60, "billable": False},
            {"name": "Phase 2 complete", "percent": "50", "offset_days": 120, "billable": False},
        ],
    ),
]

SALESFORCE_CONSUMER_KEY = "throughline-demo-consumer-key"
SALESFORCE_USERNAME = "integration@throughline.demo"
NETSUITE_CLIENT_ID = "throughline-demo-client"
NETSUITE_CERTIFICATE_ID = "throughline-demo-cert"
NETSUITE_ACCOUNT = "TSTDRV1234567"
NETSUITE_LEGACY_ACCOUNT = "TSTDRV7654321"
NETSUITE_LEGACY_CERTIFICATE_ID = "throughline-legacy-cert"
#: the phased migration of the demo: (legal entity, document, ERP, from). Postings of DE01
#: stay in the legacy ERP until project accounting moves in April 2027.
ERP_ROUTES = [
    ("DE01", ErpDocument.POSTING, "legacy", "2020-01-01"),
    ("DE01", ErpDocument.PROJECT, "legacy", "2020-01-01"),
    ("DE01", ErpDocument.POSTING, "cloud", "2027-04-01"),
    ("DE01", ErpDocument.PROJECT, "cloud", "2027-04-01"),
]
KANTATA_TOKEN = "kantata-demo-token"
#: (Kantata vendor id, NetSuite vendor id, canonical key) of the demo's subcontractors
SUBCONTRACTORS = [
    ("1", "301", "vendor:apex-data-consulting"),
    ("2", "302", "vendor:blue-ridge-analytics"),
]
#: (Kantata user id, their e-mail, vendor key) of the subcontractors' people in the PSA: their
#: assignments become purchase orders to their firm (NetSuite item 10 "Subcontracted Services")
SUBCONTRACTOR_PEOPLE = [
    ("14", "priya.nair@apex-data.example", "vendor:apex-data-consulting"),
    ("15", "marcus.bell@blueridge-analytics.example", "vendor:blue-ridge-analytics"),
]
PURCHASE_ITEM_ID = "10"


@dataclass
class DemoResult:
    users: list[str]
    connections: list[str]


def standin_urls() -> dict[str, str]:
    host = settings.STANDIN_HOST
    return {vendor: f"http://{host}:{port}" for vendor, port in settings.STANDIN_PORTS.items()}


def _key_pair(keys_dir: Path, vendor: str, key_id: str, current: str | None) -> str:
    """The private key PEM for `key_id`; its public half is where the stand-in looks."""
    public_path = keys_dir / vendor / f"{key_id}.pem"
    if current and public_path.exists():
        return current
    pair = generate_key_pair()
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_text(pair.public_pem)
    return pair.private_pem


def _connection(name: str, vendor: str, system: str, auth: str, url: str) -> Connection:
    connection, _ = Connection.objects.get_or_create(
        name=name, defaults={"vendor": vendor, "system": system, "auth_kind": auth, "base_url": url}
    )
    connection.base_url = url
    return connection


def _service_levels() -> None:
    """SLA and alert contacts of the demo's queues, set once: a queue whose alert contacts
    someone has already set keeps its settings."""
    for kind, (hours, escalate, escalation, alerts) in SERVICE_LEVELS.items():
        Queue.objects.filter(team__kind=kind, alert_emails="").update(
            sla_hours=hours,
            escalate_after_hours=escalate,
            escalation_emails=escalation,
            alert_emails=alerts,
        )


@transaction.atomic
def seed(
    urls: dict[str, str] | None = None,
    keys_dir: Path | None = None,
    *,
    superuser: bool = True,
) -> DemoResult:
    """Create (or bring up to date) everything the demo needs."""
    urls = urls or standin_urls()
    keys_dir = Path(keys_dir or settings.STANDIN_KEYS_DIR)
    pending_vendor_bindings: list[tuple[str, str]] = []
    users = []
    for slug, name, kind, username, role, queue_names in TEAMS:
        team, _ = Team.objects.get_or_create(slug=slug, defaults={"name": name, "kind": kind})
        for queue_name in queue_names:
            Queue.objects.get_or_create(
                slug=queue_name.lower().replace(" ", "-"),
                defaults={"name": queue_name, "team": team},
            )
        user, created = User.objects.get_or_create(
            username=username, defaults={"first_name": name, "email": f"{username}@example.com"}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        Membership.objects.get_or_create(user=user, team=team, defaults={"role": role})
        users.append(username)
    _service_levels()
    if superuser and not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
        users.append("admin")

    for code, name, country, currency, region, _sub in LEGAL_ENTITIES:
        LegalEntity.objects.update_or_create(
            code=code,
            defaults={"name": name, "country": country, "currency": currency, "region": region},
        )
    # The routing rules, once: people's later changes to them are kept on every start.
    install_default_rules()
    for code, name, model, days, milestones in TEMPLATES:
        ProjectTemplate.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "billing_model": model,
                "duration_days": days,
                "milestones": milestones,
            },
        )

    salesforce = _connection(
        "Salesforce (demo)",
        Vendor.SALESFORCE,
        SystemKind.CRM,
        AuthKind.JWT_BEARER,
        urls["salesforce"],
    )
    old = salesforce.secrets if salesforce.secrets_ciphertext else {}
    salesforce.settings = {
        "api_version": "v62.0",
        "username": SALESFORCE_USERNAME,
        "login_url": urls["salesforce"],
    }
    salesforce.set_secrets(
        {
            "webhook_secret": old.get("webhook_secret") or secrets.token_urlsafe(32),
            "consumer_key": SALESFORCE_CONSUMER_KEY,
            "private_key": _key_pair(
                keys_dir, "salesforce", SALESFORCE_CONSUMER_KEY, old.get("private_key")
            ),
        }
    )
    salesforce.save()

    netsuite = _connection(
        "NetSuite (demo)", Vendor.NETSUITE, SystemKind.ERP, AuthKind.OAUTH_M2M, urls["netsuite"]
    )
    old = netsuite.secrets if netsuite.secrets_ciphertext else {}
    netsuite.settings = {
        "account_id": NETSUITE_ACCOUNT,
        "milestone_item_id": "2",
        "purchase_item_id": PURCHASE_ITEM_ID,
    }
    netsuite.set_secrets(
        {
            "client_id": NETSUITE_CLIENT_ID,
            "certificate_id": NETSUITE_CERTIFICATE_ID,
            "private_key": _key_pair(
                keys_dir, "netsuite", NETSUITE_CERTIFICATE_ID, old.get("private_key")
            ),
        }
    )
    netsuite.save()
    for code, *_rest, subsidiary_id in LEGAL_ENTITIES:
        bindings.bind(netsuite, "legal_entity", code, subsidiary_id)

    legacy = _connection(
        "NetSuite legacy (demo)",
        Vendor.NETSUITE,
        SystemKind.ERP,
        AuthKind.OAUTH_M2M,
        urls["netsuite_legacy"],
    )
    old = legacy.secrets if legacy.secrets_ciphertext else {}
    legacy.settings = {
        "account_id": NETSUITE_LEGACY_ACCOUNT,
        "milestone_item_id": "2",
        "purchase_item_id": PURCHASE_ITEM_ID,
    }
    legacy.set_secrets(
        {
            "client_id": NETSUITE_CLIENT_ID,
            "certificate_id": NETSUITE_LEGACY_CERTIFICATE_ID,
            "private_key": _key_pair(
                keys_dir, "netsuite", NETSUITE_LEGACY_CERTIFICATE_ID, old.get("private_key")
            ),
        }
    )
    legacy.save()
    for code, *_rest, subsidiary_id in LEGAL_ENTITIES:
        bindings.bind(legacy, "legal_entity", code, subsidiary_id)
    # Subcontractors: the PSA's vendor ids and the ERPs' vendor records, one key for both.
    for psa_vendor, erp_vendor, key in SUBCONTRACTORS:
        for erp in (netsuite, legacy):
            bindings.bind(erp, "vendor", key, erp_vendor)
        pending_vendor_bindings.append((psa_vendor, key))
    erps = {"cloud": netsuite, "legacy": legacy}
    for code, document, erp, start in ERP_ROUTES:
        ErpRoute.objects.update_or_create(
            legal_entity=LegalEntity.objects.get(code=code),
            document=document,
            effective_from=start,
            defaults={"connection": erps[erp], "note": "demo: phased ERP migration"},
        )

    kantata = _connection(
        "Kantata (demo)", Vendor.KANTATA, SystemKind.PSA, AuthKind.BEARER_TOKEN, urls["kantata"]
    )
    kantata.settings = {"api_user_id": "1"}  # the token's user: its changes are our echoes
    kantata.set_secrets({"access_token": KANTATA_TOKEN})
    kantata.save()
    for psa_vendor, key in pending_vendor_bindings:
        bindings.bind(kantata, "vendor", key, psa_vendor)
    for user_id, email, key in SUBCONTRACTOR_PEOPLE:
        subcontractor = purchase_orders.subcontractor_key(key, f"person:{email}")
        bindings.bind(kantata, purchase_orders.SUBCONTRACTOR, subcontractor, user_id)
    seed_extracts()  # one CSV extract per dataset for the data warehouse
    seed_definitions()  # one hourly reconciliation per comparison of the demo systems
    return DemoResult(
        users=users, connections=[salesforce.name, netsuite.name, legacy.name, kantata.name]
    )
