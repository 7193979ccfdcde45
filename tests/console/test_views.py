"""Console pages through the Django test client: sign-in, the home page, the layout, and the
admin back office (every model registered, the audit trail view-only)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.db.models import Model
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from console import audit
from console.choices import Role, TeamKind
from console.models import AuditEvent, User
from tests.factories import (
    make_connection,
    make_exception,
    make_queue,
    make_run,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance_user() -> User:
    return make_user("fiona", team=make_team(TeamKind.FINANCE))


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_home_requires_login(client: Client) -> None:
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_page_renders_form(client: Client) -> None:
    response = client.get(reverse("login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'for="id_username"' in body and 'for="id_password"' in body
    assert "Sign out" not in body


def test_login_signs_in_and_lands_home(client: Client, finance_user: User) -> None:
    response = client.post(
        reverse("login"), {"username": "fiona", "password": "pw-for-tests-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("home")
    assert b"Your queues" in response.content


def test_demo_hint_only_when_asked() -> None:
    with_hint = render_to_string("registration/login.html", {"show_demo_hint": True})
    without = render_to_string("registration/login.html", {})
    assert "see the terminal / README for demo logins" in with_hint
    assert "demo logins" not in without


def test_home_lists_my_queues_then_others(finance_user: User) -> None:
    finance_queue = make_queue(make_team(TeamKind.FINANCE))
    pmo_queue = make_queue(make_team(TeamKind.PMO))
    mine = make_exception(finance_queue, title="Invoice blocked for DE01")
    make_exception(pmo_queue, title="Project template missing")
    response = signed_in(finance_user).get(reverse("home"))
    assert response.status_code == 200
    assert [q.name for q in response.context["my_queues"]] == ["Finance"]
    assert [q.name for q in response.context["other_queues"]] == ["PMO"]
    assert response.context["my_queues"][0].open_count == 1
    body = response.content.decode()
    assert mine.get_absolute_url() in body
    assert "Invoice blocked for DE01" in body
    assert "Project template missing" not in body
    assert finance_queue.get_absolute_url() in body


def test_home_counts_only_the_work_waiting(finance_user: User) -> None:
    finance_queue = make_queue(make_team(TeamKind.FINANCE))
    waiting = make_exception(finance_queue, title="Invoice blocked for UK01")
    make_exception(finance_queue, status="ignored", title="Ignored for good")
    make_exception(finance_queue, status="resolved", title="Fixed yesterday")
    response = signed_in(finance_user).get(reverse("home"))
    assert response.context["my_queues"][0].open_count == 1
    assert [e.pk for e in response.context["my_open"]] == [waiting.pk]


def test_home_empty_states() -> None:
    response = signed_in(make_user("newcomer")).get(reverse("home"))
    body = response.content.decode()
    assert "You are not a member of any team yet" in body
    assert "Nothing open in your queues" in body
    assert "No runs yet" in body


def test_home_shows_recent_runs(finance_user: User) -> None:
    run = make_run(title="Acme onboarding")
    response = signed_in(finance_user).get(reverse("home"))
    body = response.content.decode()
    assert reverse("integrations:run", args=[run.pk]) in body
    assert "Acme onboarding" in body


def test_layout_navigation_and_sign_out(finance_user: User) -> None:
    queue = make_queue(make_team(TeamKind.FINANCE))
    body = signed_in(finance_user).get(reverse("home")).content.decode()
    assert '<nav class="mainnav" aria-label="Main">' in body
    assert '<main id="main"' in body
    for url in (
        reverse("exceptions:queues"),
        queue.get_absolute_url(),
        reverse("integrations:runs"),
        reverse("integrations:connections"),
        "/api/v1/docs/",
    ):
        assert f'href="{url}"' in body
    assert reverse("admin:index") not in body
    assert f'<form method="post" action="{reverse("logout")}"' in body


def test_admin_link_for_staff_only() -> None:
    staff = make_user("sam", is_staff=True)
    assert reverse("admin:index") in signed_in(staff).get(reverse("home")).content.decode()


def test_sign_out_is_a_post(finance_user: User) -> None:
    client = signed_in(finance_user)
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_messages_are_shown(finance_user: User) -> None:
    other_queue = make_queue(make_team(TeamKind.PMO))
    exc = make_exception(other_queue)
    response = signed_in(finance_user).post(reverse("exceptions:retry", args=[exc.pk]), follow=True)
    assert b'class="message message-error"' in response.content


# -- admin ------------------------------------------------------------------------------------


def our_models() -> list[type[Model]]:
    return [
        model
        for app_label in ("console", "integrations", "exceptions")
        for model in apps.get_app_config(app_label).get_models()
    ]


def test_every_model_is_registered() -> None:
    for model in our_models():
        assert admin.site.is_registered(model), model


def test_admin_changelists_and_add_pages_load() -> None:
    client = signed_in(User.objects.create_superuser("root", "r@example.com", "pw-root-12345"))
    make_exception(connection=make_connection())
    audit.record("test.event", "something happened")
    for model in our_models():
        info = (model._meta.app_label, model._meta.model_name)
        assert client.get(reverse("admin:{}_{}_changelist".format(*info))).status_code == 200
        obj = model._default_manager.first()
        if obj is not None:
            url = reverse("admin:{}_{}_change".format(*info), args=[obj.pk])
            assert client.get(url).status_code == 200, url


def test_audit_trail_is_view_only_in_admin() -> None:
    client = signed_in(User.objects.create_superuser("root", "r@example.com", "pw-root-12345"))
    event = audit.record("test.event", "something happened")
    assert client.get(reverse("admin:console_auditevent_add")).status_code == 403
    change = client.get(reverse("admin:console_auditevent_change", args=[event.pk]))
    assert change.status_code == 200
    assert b'name="_save"' not in change.content
    delete = client.post(
        reverse("admin:console_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_team_admin_has_membership_inline() -> None:
    client = signed_in(User.objects.create_superuser("root", "r@example.com", "pw-root-12345"))
    team = make_team(TeamKind.FINANCE)
    make_user("fiona", team=team, role=Role.ADMIN)
    response = client.get(reverse("admin:console_team_change", args=[team.pk]))
    assert b"memberships-TOTAL_FORMS" in response.content
