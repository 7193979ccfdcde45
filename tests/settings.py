"""Test settings: the project's settings with a var/ of their own, so tests never touch the
database, broker folder or keys of a `make run` on the same machine."""

import os
import tempfile
from pathlib import Path

_VAR = Path(__file__).resolve().parent.parent / "var" / "test"
os.environ.setdefault("THROUGHLINE_VAR_DIR", str(_VAR))
# Keys the demo seed writes for the stand-ins: one folder per test session (a worker process
# started by the session inherits it through the environment).
os.environ.setdefault("STANDIN_KEYS_DIR", tempfile.mkdtemp(prefix="throughline-keys-"))

from console.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

# Vendor retries still happen in tests, without the production backoff delays.
CONNECTOR_RETRY = {"max_attempts": 4, "backoff_initial": 0.01, "backoff_max": 0.05}
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (whitenoise looks for it)

# One SQLite test database per test process, so two test runs on one machine never share it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"]["NAME"] = str(_VAR / f"test-{os.getpid()}.sqlite3")  # noqa: F405
