"""RSA key pairs for JWT-signed vendor auth (Salesforce JWT bearer, NetSuite M2M): the demo
generates its connections' keys here, and the stand-ins trust the public halves."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


class KeyPair(NamedTuple):
    private_pem: str
    public_pem: str


def generate_key_pair(key_size: int = 2048) -> KeyPair:
    """A fresh RSA key pair as PEM text (PKCS#8 private key, SubjectPublicKeyInfo public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private, public)


@lru_cache(maxsize=64)
def _load(pem: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(pem, password=None)


def load_private_key(pem: str | bytes) -> PrivateKeyTypes:
    """An unencrypted PEM private key, parsed once per process (parsing an RSA key costs
    ~40 ms, and every client of a JWT-signed connection needs it). Raises ValueError or
    TypeError like `cryptography` does for a key it cannot read."""
    return _load(pem.encode("utf-8") if isinstance(pem, str) else bytes(pem))
