"""The embedded broker `make run` uses: kombu's filesystem transport, with each message
written whole before it becomes visible.

Kombu's own `_put` opens the message file in the queue folder and then writes it, so a worker
listing that folder can move and read the file while it is still empty and die on the JSON
(celery/kombu#1551; seen here when the health page's worker-status broadcast raised the
traffic). This transport writes the message under a hidden temporary name in the same folder
and renames it into place, which is atomic on POSIX: a reader sees the whole file or none.
`console.celery` registers it for the `filesystem://` scheme.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put `payload` onto `queue`: write it aside, then rename it into the queue."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # no "<stamp>_<uuid>.<queue>.msg" shape: consumers pass it over while it is written
        temporary = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.writing")
        try:
            with open(temporary, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Serve the `filesystem://` scheme with this transport (idempotent)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
