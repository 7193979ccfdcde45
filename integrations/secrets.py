"""Connection secrets encrypted at rest with Fernet (MultiFernet: the first key encrypts,
every listed key decrypts, so keys can be rotated). Plaintext never leaves this module except
to build a connector client."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "CONNECTION_SECRETS_KEY must hold Fernet keys (Fernet.generate_key())"
        ) from exc


def _box() -> MultiFernet:
    return _fernet(tuple(settings.CONNECTION_SECRETS_KEYS))


def encrypt(secrets: dict[str, Any]) -> str:
    """Encrypt a dict of secrets to a token safe to store in a text column."""
    return _box().encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    """Decrypt a stored token; an empty token means no secrets."""
    if not token:
        return {}
    try:
        return json.loads(_box().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "connection secrets cannot be decrypted: was CONNECTION_SECRETS_KEY changed "
            "without keeping the old key?"
        ) from exc
