"""Bench plumbing: an isolated database and its planner statistics after a load, real Celery
worker processes, their peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Model

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else f"{user}@"
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@contextmanager
def isolated_database(label: str = "") -> Iterator[str]:
    """A fresh database for the bench (created and dropped like a test database); with
    `label`, a database of that bench's own (`<name>-bench-<label>.sqlite3`, or
    `<name>_bench_<label>` on PostgreSQL)."""
    if not label:
        old = connection.settings_dict["NAME"]
        name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
        try:
            yield name
        finally:
            connection.creation.destroy_test_db(old, verbosity=0)
        return
    test_settings = connection.settings_dict.setdefault("TEST", {})
    old_test_name = test_settings.get("NAME")
    base = str(connection.settings_dict["NAME"])
    if connection.vendor == "sqlite":
        test_settings["NAME"] = base.replace(".sqlite3", "") + f"-bench-{label}.sqlite3"
    else:
        test_settings["NAME"] = f"{base}_bench_{label}"
    try:
        with isolated_database() as name:
            yield name
    finally:
        test_settings["NAME"] = old_test_name


def analyze(*models: type[Model]) -> None:
    """Fresh planner statistics for the models' tables after a bulk load. On PostgreSQL
    (outside a transaction) VACUUM ANALYZE, then the load written out now rather than in a
    checkpoint during the measures (CHECKPOINT needs a superuser or pg_checkpoint; without,
    the interleaved measures share the noise)."""
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    with connection.cursor() as cursor:
        for model in models:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"{'VACUUM ANALYZE' if vacuum else 'ANALYZE'} {table}")
        if vacuum:
            with suppress(DatabaseError):
                cursor.execute("CHECKPOINT")


@contextmanager
def celery_workers(queues: list[str], *, concurrency: int = 2) -> Iterator[subprocess.Popen]:
    """One `celery worker` (prefork, `concurrency` processes) on the bench database."""
    env = os.environ | {
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(  # noqa: S603 (a fixed command line)
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
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--queues",
            ",".join(queues),
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_ready()
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(timeout: float = 60) -> None:
    from console.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return
    raise RuntimeError("the bench worker did not start")


def peak_memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident memory) of a worker and each of its pool processes, in MB."""
    found: dict[str, float] = {}
    for proc in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{proc}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                found[str(proc)] = round(int(line.split()[1]) / 1024, 1)
    return found


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids
