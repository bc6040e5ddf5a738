"""Credentials for tests against FakeCoinbase: a CDP-style EC key pair and a private test CA
(trustme) whose certificate the fake serves HTTPS/WSS with."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

KEY_NAME = "organizations/test-org/apiKeys/test-key"


@dataclass(frozen=True)
class CoinbaseKeys:
    name: str
    private_pem: str
    public_pem: str
    ca_file: str
    server_tls: ssl.SSLContext

    @property
    def api_key(self) -> SecretStr:
        return SecretStr(self.name)

    @property
    def api_secret(self) -> SecretStr:
        return SecretStr(self.private_pem)


def ec_key_pair() -> tuple[str, str]:
    """A fresh CDP-style P-256 key: (private PKCS#8 PEM, public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def make_keys(directory: Path, name: str = KEY_NAME) -> CoinbaseKeys:
    private_pem, public_pem = ec_key_pair()
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = directory / "coinbase-test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return CoinbaseKeys(name, private_pem, public_pem, str(ca_file), server_tls)
