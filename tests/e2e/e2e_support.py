"""End-to-end fixtures: a real key service (gRPC over loopback TLS) backed by the real OpenBao of
``vault_env``, an owner's admin client, an UNSAFE mock TEE and small safetensors checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from weightseal.attest import UnsafeMockPlatform
from weightseal.kms import AdminClient, Server, serve
from weightseal.kms._config import (
    AttestationConfig,
    AuditConfig,
    AuthConfig,
    KeysConfig,
    KmsConfig,
    TlsConfig,
    load_config,
)
from weightseal.kms._devcerts import DevPki
from weightseal.loader._release_client import KmsTarget, RetryPolicy

MEAS = bytes.fromhex("a5" * 48)
OTHER_MEAS = bytes.fromhex("5a" * 48)
OWNER = "spiffe://e2e.weightseal/owner/alice"
ADMIN = "spiffe://e2e.weightseal/admin/sec"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@dataclasses.dataclass
class E2ePki:
    ca: Path
    server: tuple[Path, Path]
    owner: tuple[Path, Path]
    other_ca: Path


@pytest.fixture(scope="session")
def e2e_pki(tmp_path_factory: pytest.TempPathFactory) -> E2ePki:
    d = tmp_path_factory.mktemp("e2e-pki")
    ca = DevPki("e2e CA")
    other = DevPki("e2e OTHER CA")
    return E2ePki(ca=ca.write_ca(d), server=ca.write(d, "server", ca.server()),
                  owner=ca.write(d, "owner", ca.client("alice", OWNER)), other_ca=other.write_ca(d / "other"))


@dataclasses.dataclass
class Service:
    server: Server
    pki: E2ePki
    audit_path: Path

    @property
    def public_key(self) -> bytes:
        return self.server.public_key

    def admin(self) -> AdminClient:
        cert, key = self.pki.owner
        return AdminClient(self.server.admin_address, ca=self.pki.ca, cert=cert, key=key, timeout=15)

    def target(self, **kw: Any) -> KmsTarget:
        kw.setdefault("ca", None if kw.get("insecure_dev") else self.pki.ca)
        kw.setdefault("retry", RetryPolicy(attempts=3, initial=0.05))
        kw.setdefault("timeout", 15.0)
        return KmsTarget(self.server.address, self.public_key, **kw)

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.audit_path.read_text().splitlines() if x.strip()]


@pytest.fixture()
def tee() -> UnsafeMockPlatform:
    return UnsafeMockPlatform.from_seed(b"\x42" * 32)


@pytest.fixture()
def service_factory(vault_env: Any, e2e_pki: E2ePki, tmp_path: Path, tee: UnsafeMockPlatform) -> Iterator[Callable[..., Service]]:
    made: list[Server] = []

    def make(name: str = "kms", *, listen: str = "127.0.0.1:0", insecure: bool = False) -> Service:
        d = tmp_path / name
        vault = dataclasses.replace(KmsConfig().vault, transit_mount=vault_env.transit_mount, kv_mount=vault_env.kv_mount)
        cfg = load_config(
            None, env={}, dev=True, listen=listen, admin_listen="127.0.0.1:0",
            tls=TlsConfig(cert=str(e2e_pki.server[0]), key=str(e2e_pki.server[1]), client_ca=str(e2e_pki.ca),
                          insecure=insecure),
            auth=AuthConfig(admins=(ADMIN,)),
            keys=KeysConfig(signing_key=str(d / "signing.key"), nonce_secret=str(d / "nonce.key")),
            audit=AuditConfig(path=str(d / "audit.jsonl"), replica=name),
            attestation=AttestationConfig(mock_keys=(tee.public_key.hex(),)),
            vault=vault, shutdown_grace_seconds=0.5)
        srv = serve(cfg, vault_client=vault_env.client)
        made.append(srv)
        return Service(srv, e2e_pki, Path(cfg.audit.path))

    yield make
    for s in made:
        s.stop(0.2)


@pytest.fixture()
def service(service_factory: Callable[..., Service]) -> Service:
    return service_factory()


def mock_policy(measurement: bytes = MEAS, versions: list[int] | None = None) -> str:
    return json.dumps({"version": 1, "model_versions": versions or [1],
                       "profiles": [{"platform": "mock", "measurements": [measurement.hex()]}]})


def make_checkpoint(d: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A small two-shard checkpoint with an index and a config file."""
    g = torch.Generator().manual_seed(seed)
    a = {"layer.0.weight": torch.randn(64, 48, generator=g), "layer.0.bias": torch.randn(64, generator=g)}
    b = {"layer.1.weight": torch.randn(32, 64, generator=g).to(torch.bfloat16),
         "embed": torch.randint(0, 1000, (17, 5), generator=g, dtype=torch.int64)}
    d.mkdir(parents=True)
    save_file(a, str(d / "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    save_file(b, str(d / "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    wm = {n: "model-00001-of-00002.safetensors" for n in a} | {n: "model-00002-of-00002.safetensors" for n in b}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    (d / "config.json").write_text(json.dumps({"model_type": "toy"}))
    return a | b


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def minilm_dir() -> Path:
    import weightseal_demo

    return weightseal_demo.find_minilm_checkpoint()
