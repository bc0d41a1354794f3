"""End to end over real loopback gRPC: real OpenBao, real key service, the loader's release client."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from e2e_support import MEAS, OTHER_MEAS, Service, free_port, make_checkpoint, mock_policy
from weightseal.loader import IntegrityError, read_manifest
from weightseal.loader._release_client import (
    KeyReleaseDenied,
    KeyServiceUnavailable,
    KmsTarget,
    LoadReport,
    ReleaseResponseError,
    RetryPolicy,
    hint_for,
    load_model,
    release_key,
)

import weightseal_cli

pytestmark = pytest.mark.integration


def _sealed(service: Service, tmp_path: Path, model_id: str = "toy-model", policy: str | None = None,
            seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    src = tmp_path / f"src-{model_id}"
    ref = make_checkpoint(src, seed)
    out = tmp_path / f"{model_id}.sealed"
    with service.admin() as a:
        a.register(model_id, policy or mock_policy())
        rep = weightseal_cli.seal_with_kms(src, out, model_id=model_id, admin=a)
    assert rep.model_version == 1
    return out, ref


def test_seal_register_load_equal(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, ref = _sealed(service, tmp_path)
    m = read_manifest(sealed)
    assert m.key_ref["source"] == "kms" and m.key_ref["model_version"] == 1
    assert m.key_ref["key_id"].startswith("vault:v")
    assert "wrapped_dek" not in json.dumps(m.key_ref)
    rep = LoadReport()
    got = load_model(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS, report=rep)
    assert set(got) == set(ref)
    for n, t in ref.items():
        assert got[n].dtype == t.dtype and torch.equal(got[n], t), n
    assert rep.tensors == 4 and rep.bytes == sum(t.numel() * t.element_size() for t in ref.values())
    assert rep.release is not None and rep.release.model_version == 1
    grants = [r for r in service.audit() if r["kind"] == "grant"]
    assert len(grants) == 1 and grants[0]["model"] == "toy-model" and grants[0]["hash"] == rep.release.audit_hash


def test_names_and_progress(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, ref = _sealed(service, tmp_path)
    seen: list[int] = []
    got = load_model(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS,
                     names=["embed", "layer.0.bias"], progress=seen.append)
    assert sorted(got) == ["embed", "layer.0.bias"]
    assert torch.equal(got["embed"], ref["embed"]) and torch.equal(got["layer.0.bias"], ref["layer.0.bias"])
    assert sum(seen) == ref["embed"].numel() * 8 + ref["layer.0.bias"].numel() * 4 and len(seen) == 2


def test_policy_denies_no_tensors_audited(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, _ = _sealed(service, tmp_path, policy=mock_policy(OTHER_MEAS))
    got = None
    with pytest.raises(KeyReleaseDenied) as ei:
        got = load_model(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert got is None
    e = ei.value
    assert e.reason == "policy.measurement" and e.code == "PERMISSION_DENIED"
    assert "measurement" in e.hint and "policy.measurement" in str(e)
    denials = [r for r in service.audit() if r["kind"] == "deny"]
    assert [d["reason"] for d in denials] == ["policy.measurement"]
    assert denials[0]["claims"][0]["measurement"] == MEAS.hex()
    assert not any(r["kind"] == "grant" for r in service.audit())


def test_unknown_model_and_mock_only_by_name(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, _ = _sealed(service, tmp_path)
    # auto never falls back to the mock: no TEE here -> a collector error, nothing sent
    from weightseal.attest import CollectorError

    with pytest.raises(CollectorError) as ei:
        load_model(sealed, kms=service.target(), attester="auto", gpus="none")
    assert ei.value.reason == "attest.collect.no_tee"
    assert not any(r["kind"] in ("grant", "deny") for r in service.audit())
    # the manifest names a model the service does not know
    with service.admin() as a:
        a.register("other-model", mock_policy())
    src = tmp_path / "src2"
    make_checkpoint(src, 3)
    from weightseal.loader import DataKey, seal_checkpoint

    k = DataKey.generate()
    seal_checkpoint(src, tmp_path / "ghost.sealed", model_id="ghost-model", model_version=1, key=k,
                    key_ref={"source": "kms"})
    with pytest.raises(KeyReleaseDenied) as ei2:
        load_model(tmp_path / "ghost.sealed", kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert ei2.value.reason == "model.not_found" and ei2.value.code == "NOT_FOUND"


def test_tampered_shard_after_release(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, _ = _sealed(service, tmp_path)
    shard = sealed / "model-00002-of-00002.safetensors.sealed"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0x01  # inside the last chunk's ciphertext
    shard.write_bytes(bytes(data))
    got = None
    with pytest.raises(IntegrityError) as ei:
        got = load_model(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert got is None and ei.value.reason == "integrity"
    # the key WAS released (the service cannot know); the loader refused the data
    assert [r["kind"] for r in service.audit() if r["kind"] in ("grant", "deny")] == ["grant"]
    # and with progress (shard-by-shard path) nothing is returned either
    with pytest.raises(IntegrityError):
        load_model(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS,
                   progress=lambda n: None)


def test_key_is_wiped_after_use(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, _ = _sealed(service, tmp_path)
    with release_key(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS) as (k, info):
        assert not k.wiped and info.model_id == "toy-model" and "redacted" in repr(k)
        kept = k
    assert kept.wiped


def test_man_in_the_middle_service_refused(service_factory: Any, tmp_path: Path, tee: Any) -> None:
    real = service_factory("real")
    sealed, _ = _sealed(real, tmp_path)
    # A second service on the same Vault (so it could even unwrap the real key) but with its own
    # signing key; the client still pins the real service's key.
    mitm = service_factory("mitm")
    assert mitm.public_key != real.public_key
    target = KmsTarget(mitm.server.address, real.public_key, ca=real.pki.ca, retry=RetryPolicy(attempts=1))
    got = None
    with pytest.raises(ReleaseResponseError) as ei:
        got = load_model(sealed, kms=target, attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert got is None and ei.value.reason == "release.signature"
    assert "pinned" in ei.value.hint
    # the impostor did grant (its own audit) -- the client refused the key
    assert any(r["kind"] == "grant" for r in mitm.audit())


def test_tls_pinned_ca_and_wrong_ca(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, ref = _sealed(service, tmp_path)
    got = load_model(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert torch.equal(got["layer.0.weight"], ref["layer.0.weight"])
    sleeps: list[float] = []
    wrong = service.target(ca=service.pki.other_ca, retry=RetryPolicy(attempts=4, initial=0.01))
    with pytest.raises(KeyServiceUnavailable) as ei:
        with release_key(sealed, kms=wrong, attester="mock", mock_key=tee, mock_measurement=MEAS, _sleep=sleeps.append):
            pass
    assert ei.value.reason == "kms.tls" and "--ca" in ei.value.hint
    assert sleeps == []  # a handshake failure is not retried
    # a plaintext client against a TLS port fails too
    with pytest.raises(KeyServiceUnavailable):
        load_model(sealed, kms=service.target(insecure_dev=True, retry=RetryPolicy(attempts=1)), attester="mock",
                   mock_key=tee, mock_measurement=MEAS)
    # and the target refuses to be built without a CA unless insecure_dev is named
    from weightseal.loader._release_client import KeyReleaseError

    with pytest.raises(KeyReleaseError) as ei2:
        KmsTarget(service.server.address, service.public_key)
    assert ei2.value.reason == "kms.config"


def test_insecure_dev_channel_works_only_when_named(service_factory: Any, tmp_path: Path, tee: Any) -> None:
    svc = service_factory("plain", insecure=True)
    sealed, ref = _sealed(svc, tmp_path)
    got = load_model(sealed, kms=svc.target(insecure_dev=True), attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert torch.equal(got["embed"], ref["embed"])
    with pytest.raises(KeyServiceUnavailable):
        load_model(sealed, kms=svc.target(retry=RetryPolicy(attempts=1)), attester="mock", mock_key=tee,
                   mock_measurement=MEAS)


def test_retry_with_backoff_until_service_is_up(service_factory: Any, tmp_path: Path, tee: Any) -> None:
    first = service_factory("first")
    sealed, ref = _sealed(first, tmp_path)
    port = free_port()
    started: list[Service] = []
    sleeps: list[float] = []

    def sleep(d: float) -> None:
        sleeps.append(d)
        if len(sleeps) == 2:  # bring the service up during the second back-off
            started.append(service_factory("late", listen=f"127.0.0.1:{port}"))

    target = KmsTarget(f"127.0.0.1:{port}", b"\0" * 32, ca=first.pki.ca,
                       retry=RetryPolicy(attempts=5, initial=0.1, multiplier=2.0, jitter=0.0))
    # the late service has its own signing key: pin it once it exists (the target is rebuilt below)
    with pytest.raises(ReleaseResponseError) as ei:
        with release_key(sealed, kms=target, attester="mock", mock_key=tee, mock_measurement=MEAS, _sleep=sleep):
            pass
    assert ei.value.reason == "release.signature"  # reached the late service after two back-offs
    assert sleeps == [0.1, 0.2]
    late = started[0]
    target2 = KmsTarget(f"127.0.0.1:{port}", late.public_key, ca=first.pki.ca)
    got = load_model(sealed, kms=target2, attester="mock", mock_key=tee, mock_measurement=MEAS)
    assert torch.equal(got["layer.1.weight"], ref["layer.1.weight"])


def test_unavailable_gives_up_after_attempts(tmp_path: Path, service: Service, tee: Any) -> None:
    sealed, _ = _sealed(service, tmp_path)
    sleeps: list[float] = []
    t = KmsTarget(f"127.0.0.1:{free_port()}", service.public_key, ca=service.pki.ca,
                  retry=RetryPolicy(attempts=3, initial=0.01, jitter=0.0))
    with pytest.raises(KeyServiceUnavailable) as ei:
        with release_key(sealed, kms=t, attester="mock", mock_key=tee, mock_measurement=MEAS, _sleep=sleeps.append):
            pass
    assert ei.value.reason == "kms.unavailable" and ei.value.code == "UNAVAILABLE"
    assert sleeps == [0.01, 0.02]


def test_concurrent_loads(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed, ref = _sealed(service, tmp_path)
    results: list[Any] = []

    def go() -> None:
        try:
            results.append(load_model(sealed, kms=service.target(), attester="mock", mock_key=tee,
                                      mock_measurement=MEAS))
        except Exception as exc:  # noqa: BLE001
            results.append(exc)

    ts = [threading.Thread(target=go) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert len(results) == 4
    for r in results:
        assert isinstance(r, dict) and torch.equal(r["embed"], ref["embed"])
    assert sum(1 for r in service.audit() if r["kind"] == "grant") == 4


@pytest.mark.parametrize("reason,needle", [
    ("policy.measurement", "allowlist"), ("policy.tcb", "TCB"), ("policy.gpu.driver", "GPU"),
    ("policy.something_new", "release policy"), ("attest.snp.signature", "evidence"),
    ("attest.mock.not_allowed", "--dev"), ("nonce.expired", "expired"), ("nonce.replayed", "fresh"),
    ("nonce.model", "nonce"), ("model.not_found", "registered"), ("model.revoked", "revoked"),
    ("vault.unavailable", "Vault"), ("audit.unwritable", "audit"), ("release.signature", "pinned"),
    ("kms.tls", "--ca"), ("kms.unavailable", "reach"), ("integrity", "tampered"),
    ("attest.collect.no_tee", "--attester mock"),
])
def test_hints_per_reason_family(reason: str, needle: str) -> None:
    h = hint_for(reason)
    assert needle in h, (reason, h)


def test_no_hint_for_unknown_family() -> None:
    assert hint_for("zzz.unknown") == ""
