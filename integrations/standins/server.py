"""Serve the vendor stand-ins over real HTTP: each on its own port, in threads of one process.

`manage.py standins` serves them for the demo; tests start them on free ports with
`start_standin` and stop them when done.
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from .common import StandinState

#: vendor -> (factory "module:function", default port)
STANDINS: dict[str, tuple[str, int]] = {
    "salesforce": ("integrations.standins.salesforce:create_app", 8101),
    "netsuite": ("integrations.standins.netsuite:create_app", 8102),
    "kantata": ("integrations.standins.kantata:create_app", 8103),
}


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
