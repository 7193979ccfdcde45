"""Test settings: the project's settings with a var/ of their own, so tests never touch the
database, broker folder or keys of a `make run` on the same machine."""

import os
from pathlib import Path

_VAR = Path(__file__).resolve().parent.parent / "var" / "test"
os.environ.setdefault("THROUGHLINE_VAR_DIR", str(_VAR))
os.environ.setdefault("STANDIN_KEYS_DIR", str(_VAR / "standin-keys"))

from console.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
