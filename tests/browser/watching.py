"""What a browser test watches on its page besides what it looks for."""

from __future__ import annotations

from typing import Any


def watch(page: Any, live_server: Any) -> tuple[list[str], list[str]]:
    """Script errors on the page, and requests that left the test server (both filled in as
    the page runs)."""
    errors: list[str] = []
    external: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda req: external.append(req.url) if not req.url.startswith(live_server.url) else None,
    )
    return errors, external
