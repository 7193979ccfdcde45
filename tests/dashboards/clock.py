"""A clock the KPI tests set: timezone.now() returns `Clock.at` (the `clock` fixture)."""

from __future__ import annotations

import datetime as dt

#: where the `clock` fixture starts
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


class Clock:
    """timezone.now() under the test's control (auto_now_add fields included)."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at
