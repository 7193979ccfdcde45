"""Core records: the audit trail is append-only; connection secrets are encrypted at rest;
roles decide who acts; production refuses to start half-configured."""

import os
import subprocess
import sys

import pytest

from console import audit
from console.choices import Role
from console.models import AuditEvent
from integrations.canonical.policy import may_update, owner_of
from tests.factories import make_connection, make_team, make_user


@pytest.mark.django_db
def test_audit_trail_is_append_only():
    event = audit.record("test.action", "something happened", detail=1)
    event.summary = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.update(summary="x")
    assert AuditEvent.objects.get(pk=event.pk).summary == "something happened"
    assert event.actor_label == "system"


@pytest.mark.django_db
def test_connection_secrets_are_encrypted_and_rotatable(settings):
    connection = make_connection(secrets={"private_key": "-----BEGIN PRIVATE KEY----- abc"})
    assert "BEGIN PRIVATE KEY" not in connection.secrets_ciphertext
    assert connection.secret_names == ["private_key"]
    from cryptography.fernet import Fernet

    from integrations import secrets as box

    old = settings.CONNECTION_SECRETS_KEYS[0]
    settings.CONNECTION_SECRETS_KEYS = [Fernet.generate_key().decode(), old]
    box._fernet.cache_clear()
    assert connection.secrets["private_key"].endswith("abc")  # the old key still decrypts
    connection.update_secrets({"token": "new", "private_key": ""})
    assert connection.secrets == {"private_key": "-----BEGIN PRIVATE KEY----- abc", "token": "new"}
    box._fernet.cache_clear()


@pytest.mark.django_db
def test_roles_decide_who_acts_for_a_team():
    finance = make_team("finance")
    resolver = make_user(team=finance, role=Role.RESOLVER)
    viewer = make_user(team=finance, role=Role.VIEWER)
    outsider = make_user()
    assert resolver.can_act_for(finance)
    assert not viewer.can_act_for(finance)
    assert not outsider.can_act_for(finance)


def test_system_of_record_defaults(db):
    assert owner_of("invoice") == "erp"
    assert owner_of("opportunity", "amount") == "crm"
    assert owner_of("opportunity", "psa_project_id") == "psa"
    assert may_update("crm", "opportunity", "amount")
    assert not may_update("psa", "invoice", "total")


def test_production_refuses_to_start_without_its_variables():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    env |= {"THROUGHLINE_ENV": "production", "DJANGO_SETTINGS_MODULE": "console.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    from cryptography.fernet import Fernet

    env = os.environ | {
        "THROUGHLINE_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "SECRET_KEY": "x" * 60 + "-a-long-random-production-key",
        "CONNECTION_SECRETS_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "throughline.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "THROUGHLINE_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr + result.stdout
