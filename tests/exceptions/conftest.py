"""Fixtures the exception-queue tests share: a Finance and a PMO queue, and Fiona, a
resolver of Finance."""

from __future__ import annotations

import pytest

from console.choices import TeamKind
from console.models import User
from exceptions.models import Queue
from tests.factories import make_queue, make_team, make_user


@pytest.fixture
def finance_queue() -> Queue:
    return make_queue(make_team(TeamKind.FINANCE))


@pytest.fixture
def pmo_queue() -> Queue:
    return make_queue(make_team(TeamKind.PMO))


@pytest.fixture
def fiona(finance_queue: Queue) -> User:
    return make_user("fiona", team=finance_queue.team)
