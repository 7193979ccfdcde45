"""Serve the vendor stand-ins over real HTTP: each on its own port, in threads of one process.

`manage.py standins` serves them for the demo; tests start them on free ports with
`start_standin` and stop them when done.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from .common import StandinState

logger = logging.getLogger(__name__)

#: vendor -> (factory "module:function", default port)
STANDINS: dict[str, tuple[str, int]] = {
    "salesforce": ("integrations.standins.salesforce:create_app", 8101),
    "netsuite": ("integrations.standins.netsuite:create_app", 8102),
    "kantata": ("integrations.standins.kantata:create_app", 8103),
    # a second NetSuite account: the "legacy ERP" of the demo's phased migration
    "netsuite_legacy": ("integrations.standins.server:create_legacy_netsuite", 8104),
}

LEGACY_NETSUITE_ACCOUNT = "TSTDRV7654321"


def create_legacy_netsuite() -> Starlette:
    from .netsuite import NetSuiteState, create_app

    return create_app(NetSuiteState(account_id=LEGACY_NETSUITE_ACCOUNT))


def create_standin_app(vendor: str) -> Starlette:
    target, _port = STANDINS[vendor]
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)()


@dataclass
class RunningStandin:
    vendor: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    @property
    def state(self) -> StandinState:
        return self.app.state.standin

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_standin(
    vendor: str, *, host: str = "127.0.0.1", port: int = 0, app: Starlette | None = None
) -> RunningStandin:
    """Start one stand-in in a background thread; port 0 picks a free port."""
    app = app or create_standin_app(vendor)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Without TCP_NODELAY small answers wait ~40 ms for delayed ACKs (Nagle's algorithm).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"standin-{vendor}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the {vendor} stand-in did not start on {host}:{bound_port}")
        time.sleep(0.02)
    return RunningStandin(vendor, app, server, thread, f"http://{host}:{bound_port}")


class SnapshotKeeper:
    """Keeps a stand-in's records in a JSON file: restored at start, saved when changed.

    The demo's stand-ins then survive a restart of `make run` in step with Throughline's own
    database (tests use no keeper: their stand-ins start from the seed).
    """

    def __init__(self, state: StandinState, path: Path, *, interval: float = 2.0) -> None:
        self.state = state
        self.path = path
        self.interval = interval
        self._last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"snapshot-{state.vendor}", daemon=True
        )

    def restore(self) -> bool:
        """Load the saved snapshot, if there is a readable one."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.state.restore(data)
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable stand-in snapshot %s: %s", self.path, exc)
            return False
        self._last = json.dumps(data, sort_keys=True)
        return True

    def save(self) -> None:
        data = json.dumps(self.state.snapshot(), sort_keys=True)
        if data == self._last:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(data, encoding="utf-8")
        os.replace(tmp, self.path)
        self._last = data

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.save()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception:  # keep serving; the next tick tries again
                logger.exception("saving the %s stand-in snapshot failed", self.state.vendor)
