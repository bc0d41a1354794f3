"""Helpers and fixtures for the key-service tests: real TLS material, a running key service on loopback
backed by the real OpenBao of ``vault_env``, a mock TEE and a minimal release client."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from weightseal.attest._binding import report_data
from weightseal.attest._mock import UnsafeMockPlatform
from weightseal.attest._policy import Policy
from weightseal.kms._admin_client import AdminClient
from weightseal.kms._config import (
    AuditConfig,
    AuthConfig,
    KeysConfig,
    KmsConfig,
    TlsConfig,
    load_config,
    load_or_create_nonce_secret,
    load_or_create_signing_key,
)
from weightseal.kms._devcerts import DevPki
from weightseal.kms._server import Server, serve
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb
from weightseal.proto import weightseal_v1_pb2_grpc as pbg

MEAS = bytes.fromhex("11" * 48)
ALICE = "spiffe://test.weightseal/owner/alice"
BOB = "spiffe://test.weightseal/owner/bob"
ADMIN = "spiffe://test.weightseal/admin/sec"


@dataclasses.dataclass
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]
    other_ca: Path
    other_client: tuple[Path, Path]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = DevPki("test CA")
    ca_path = ca.write_ca(d)
    sc, sk = ca.write(d, "server", ca.server())
    clients = {
        "alice": ca.write(d, "alice", ca.client("alice", ALICE)),
        "bob": ca.write(d, "bob", ca.client("bob", BOB)),
        "admin": ca.write(d, "admin", ca.client("sec", ADMIN)),
    }
    other = DevPki("other CA")
    od = d / "other"
    other_ca = other.write_ca(od)
    return Pki(dir=d, ca=ca_path, server_cert=sc, server_key=sk, clients=clients, other_ca=other_ca,
               other_client=other.write(od, "mallory", other.client("alice", ALICE)))


class Clock:
    """Wall clock plus an adjustable offset (seconds)."""

    def __init__(self, base: float | None = None) -> None:
        self.offset = 0.0 if base is None else base - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset


def make_config(pki: Pki, tmp: Path, *, dev: bool = True, insecure: bool = False, metrics: bool = False,
                **over: Any) -> KmsConfig:
    # As an operator would with `weightseal kms keygen`: production mode never creates them.
    load_or_create_signing_key(tmp / "keys" / "signing.key")
    load_or_create_nonce_secret(tmp / "keys" / "nonce.key")
    return load_config(
        None, env={}, dev=dev, listen="127.0.0.1:0", admin_listen="127.0.0.1:0",
        tls=TlsConfig(cert=str(pki.server_cert), key=str(pki.server_key), client_ca=str(pki.ca), insecure=insecure),
        auth=AuthConfig(admins=(ADMIN,)),
        keys=KeysConfig(signing_key=str(tmp / "keys" / "signing.key"), nonce_secret=str(tmp / "keys" / "nonce.key")),
        audit=AuditConfig(path=str(tmp / "audit.jsonl"), replica="test-0"),
        metrics=dataclasses.replace(KmsConfig().metrics, listen="127.0.0.1:0" if metrics else None),
        shutdown_grace_seconds=1.0, **over)


class Kms:
    """A running key service plus clients for it."""

    def __init__(self, server: Server, pki: Pki) -> None:
        self.server = server
        self.pki = pki
        self._channel = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(pki.ca.read_bytes())) \
            if not server.config.tls.insecure else grpc.insecure_channel(server.address)
        self.release_stub = pbg.KeyReleaseStub(self._channel)
        self._admins: list[AdminClient] = []

    def admin(self, who: str = "alice") -> AdminClient:
        cert, key = self.pki.clients[who]
        c = AdminClient(self.server.admin_address, ca=self.pki.ca, cert=cert, key=key, timeout=15)
        self._admins.append(c)
        return c

    def close(self) -> None:
        for c in self._admins:
            c.close()
        self._channel.close()

    # -- release client (minimal, for tests) ----------------------------------------------------
    def challenge(self, model_id: str) -> bytes:
        return bytes(self.release_stub.Challenge(pb.ChallengeRequest(model_id=model_id), timeout=15).nonce)

    def release(self, model_id: str, tee: UnsafeMockPlatform, *, nonce: bytes | None = None, version: int = 0,
                suite: str = "x25519", measurement: bytes = MEAS, debug: bool = False, tcb: int = 0,
                bind_public_key: bytes | None = None, evidence: list[pb.Evidence] | None = None,
                ) -> tuple[pb.ReleaseKeyResponse, rc.HpkePrivateKey, bytes]:
        nonce = self.challenge(model_id) if nonce is None else nonce
        priv, pub = rc.make_hpke_keypair(suite)
        if evidence is None:
            rd = report_data(nonce, model_id, bind_public_key if bind_public_key is not None else pub)
            ev = tee.report(rd, measurement=measurement, debug=debug, tcb=tcb)
            evidence = [pb.Evidence(platform="mock", report=ev.report)]
        resp = self.release_stub.ReleaseKey(pb.ReleaseKeyRequest(
            model_id=model_id, model_version=version, nonce=nonce, hpke_suite=suite, hpke_public_key=pub,
            evidence=evidence), timeout=15)
        return resp, priv, nonce

    def audit_records(self) -> list[dict[str, Any]]:
        p = Path(self.server.config.audit.path)
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def mock_policy(*, versions: list[int] | None = None, min_tcb: int = 0, measurement: bytes = MEAS) -> str:
    return json.dumps({
        "version": 1,
        "model_versions": [1] if versions is None else versions,
        "profiles": [{"platform": "mock", "measurements": [measurement.hex()], "min_tcb": min_tcb}],
    })


@pytest.fixture()
def tee() -> UnsafeMockPlatform:
    return UnsafeMockPlatform.from_seed(b"\x07" * 32)


@pytest.fixture()
def kms_factory(vault_env: Any, pki: Pki, tmp_path: Path) -> Iterator[Callable[..., Kms]]:
    made: list[Kms] = []

    def make(*, dev: bool = True, clock: Callable[[], float] = time.time, audit: Any = None, insecure: bool = False,
             metrics: bool = False, sub: str = "", **over: Any) -> Kms:
        vault = dataclasses.replace(KmsConfig().vault, transit_mount=vault_env.transit_mount, kv_mount=vault_env.kv_mount)
        if not dev:  # production path: the server logs in with AppRole itself
            vault = dataclasses.replace(vault, address=vault_env.address, role_id=vault_env.creds.role_id,
                                        secret_id=vault_env.creds.secret_id, timeout_seconds=2.0)
        cfg = make_config(pki, tmp_path / (sub or "kms"), dev=dev, insecure=insecure, metrics=metrics, vault=vault, **over)
        k = Kms(serve(cfg, vault_client=vault_env.client if dev else None, clock=clock, audit=audit), pki)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()
        k.server.stop(0.2)


@pytest.fixture()
def kms(kms_factory: Callable[..., Kms]) -> Kms:
    return kms_factory()


def registered(kms: Kms, model_id: str = "m1", policy: str | None = None) -> bytearray:
    """Register ``model_id`` as alice with a mock policy and create version 1; returns its DEK."""
    a = kms.admin("alice")
    a.register(model_id, policy or mock_policy())
    v, dek = a.create_version(model_id)
    assert v == 1
    return dek


def reason_of(err: grpc.RpcError) -> str | None:
    for k, v in err.trailing_metadata() or ():
        if k == "weightseal-reason":
            return str(v)
    return None


__all__ = ["Clock", "Kms", "Pki", "Policy", "mock_policy", "registered", "reason_of", "MEAS", "ALICE", "BOB", "ADMIN"]
