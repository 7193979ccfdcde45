"""RSA key pairs for JWT-signed vendor auth (Salesforce JWT bearer, NetSuite M2M): the demo
generates its connections' keys here, and the stand-ins trust the public halves."""

from __future__ import annotations

from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


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
