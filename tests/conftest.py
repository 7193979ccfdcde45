"""Shared fixtures: vendor stand-ins over real HTTP, the demo data pointing at them, Celery
running tasks eagerly (except in end-to-end tests, which use a real worker), and the receiving
end of alert webhooks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from console.celery import app as celery_app
from exceptions import alerts
from integrations.connectors.auth import OAuthTokenAuth
from integrations.standins.server import STANDINS, RunningStandin, start_standin


@pytest.fixture(scope="session")
def standins() -> Iterator[dict[str, RunningStandin]]:
    """Every vendor stand-in, each on a free port, for the whole session."""
    running = {vendor: start_standin(vendor) for vendor in sorted(STANDINS)}
    yield running
    for standin in running.values():
        standin.stop()


@pytest.fixture
def fresh_standins(standins: dict[str, RunningStandin]) -> dict[str, RunningStandin]:
    """The stand-ins back at their seed state, with no faults and no tokens cached."""
    for standin in standins.values():
        standin.state.reset()
    OAuthTokenAuth.forget()
    return standins


@pytest.fixture
def demo(transactional_db, fresh_standins: dict[str, RunningStandin]):
    """The demo data, with connections pointing at the test stand-ins."""
    from console import demo as demo_data

    demo_data.seed({vendor: s.url for vendor, s in fresh_standins.items()})
    return fresh_standins


@pytest.fixture(autouse=True)
def eager_celery(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run tasks in-process unless the test is end-to-end (a real worker consumes them)."""
    if request.node.get_closest_marker("e2e"):
        yield
        return
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[httpx.Request]]:
    """The alert webhooks' receiving end, in-process (no network): every POST is kept."""
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, text="ok")

    monkeypatch.setattr(alerts, "WEBHOOK_TRANSPORT", httpx.MockTransport(handler))
    yield received
