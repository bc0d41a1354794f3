"""Throw-away X.509 material for development mode and tests: a CA, a loopback server
certificate and client certificates whose identity is a SAN URI (and CN).  Never for production:
the CA key is written next to the certificates."""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._config import write_secret_file

__all__ = ["CertPair", "DevPki"]


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:
        return "CertPair(<cert>, <key>)"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


class DevPki:
    """An in-memory CA issuing server and client certificates (ECDSA P-256, 1 day)."""

    def __init__(self, name: str = "weightseal dev CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = _dt.datetime.now(_dt.UTC)
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def __repr__(self) -> str:
        return "DevPki(<ca>)"

    def _issue(self, cn: str, sans: list[x509.GeneralName], eku: x509.ObjectIdentifier) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _dt.datetime.now(_dt.UTC)
        b = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5)).not_valid_after(now + _dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self._key, hashes.SHA256())
        return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def server(self, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> CertPair:
        sans: list[x509.GeneralName] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        return self._issue(hosts[0], sans, ExtendedKeyUsageOID.SERVER_AUTH)

    def client(self, cn: str, uri: str | None = None) -> CertPair:
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)] if uri else []
        return self._issue(cn, sans, ExtendedKeyUsageOID.CLIENT_AUTH)

    def write(self, directory: str | Path, name: str, pair: CertPair) -> tuple[Path, Path]:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cert, key = d / f"{name}.pem", d / f"{name}.key"
        cert.write_bytes(pair.cert_pem)
        write_secret_file(key, pair.key_pem)
        return cert, key

    def write_ca(self, directory: str | Path) -> Path:
        p = Path(directory) / "ca.pem"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.ca_pem)
        return p
