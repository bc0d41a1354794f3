"""Attested key release end to end: real gRPC over loopback TLS, real OpenBao, real audit log."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from typing import Any

import grpc
import pytest
from kmstest_support import MEAS, Clock, Kms, mock_policy, reason_of, registered
from weightseal.attest._binding import report_data
from weightseal.attest._mock import UnsafeMockPlatform
from weightseal.kms._audit import AuditLog, verify_log
from weightseal.kms._nonce import NonceService
from weightseal.proto import _release_crypto as rc
from weightseal.proto import weightseal_v1_pb2 as pb

pytestmark = pytest.mark.integration


def _deny(kms: Kms, fn: Any) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    err = ei.value
    reason = reason_of(err)
    assert reason is not None and err.details().startswith(reason)
    return err.code(), reason


def _last_release_record(kms: Kms) -> dict[str, Any]:
    recs = [r for r in kms.audit_records() if r["kind"] in ("grant", "deny") and "nonce_id" in r]
    return recs[-1]


@pytest.mark.parametrize("suite", ["x25519", "mlkem768-x25519"])
def test_grant_opens_to_vault_dek_and_verifies_only_with_service_key(kms: Kms, tee: UnsafeMockPlatform, suite: str) -> None:
    dek = registered(kms)
    resp, priv, nonce = kms.release("m1", tee, suite=suite)
    assert resp.service_key_id == rc.service_key_id(kms.server.public_key)
    fields, got = rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce,
                                  now_ms=int(time.time() * 1000))
    assert bytes(got) == bytes(dek) and len(got) == 32
    assert fields.model_version == 1 and fields.hpke_suite == suite and fields.key_id == "vault:v1"
    # the DEK the service released is the one Vault holds for this model
    rec = kms.server.registry.get("m1")
    assert bytes(kms.server.vault.unwrap_dek("m1", rec.versions[1].wrapped_dek)) == bytes(dek)
    # the audit grant record is the one the payload names
    grant = _last_release_record(kms)
    assert grant["kind"] == "grant" and grant["reason"] == "ok" and grant["hash"] == fields.audit_hash
    assert grant["model"] == "m1" and grant["key_version"] == 1 and grant["policy_digest"] == fields.policy_digest
    assert grant["evidence_digest"].startswith("sha256:") and grant["claims"][0]["measurement"] == MEAS.hex()
    assert "dek" not in json.dumps(grant).lower()
    # another service key does not verify it
    other = bytes(rc.nacl.signing.SigningKey.generate().verify_key)
    with pytest.raises(rc.ReleaseVerificationError) as ei:
        rc.open_release(resp.payload, resp.signature, other, priv, model_id="m1", nonce=nonce)
    assert ei.value.reason == "release.signature"
    # a tampered payload does not verify
    bad = bytearray(resp.payload)
    bad[-1] ^= 1
    with pytest.raises(rc.ReleaseVerificationError) as ei:
        rc.open_release(bytes(bad), resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce)
    assert ei.value.reason == "release.signature"
    # another private key cannot open it (binding check names the recipient key first)
    priv2, _ = rc.make_hpke_keypair(suite)
    with pytest.raises(rc.ReleaseVerificationError) as ei:
        rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv2, model_id="m1", nonce=nonce)
    assert ei.value.reason == "release.binding"
    # expecting another model / nonce is a binding failure
    with pytest.raises(rc.ReleaseVerificationError) as ei:
        rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m2", nonce=nonce)
    assert ei.value.reason == "release.binding"


@pytest.mark.parametrize(
    ("kwargs", "policy_kw", "reason"),
    [
        ({"measurement": b"\x22" * 48}, {}, "policy.measurement"),
        ({"debug": True}, {}, "policy.debug"),
        ({"tcb": 3}, {"min_tcb": 5}, "policy.tcb"),
        ({}, {"versions": [2]}, "policy.model_version"),
    ],
    ids=["measurement", "debug", "tcb", "model_version"],
)
def test_policy_denials(kms: Kms, tee: UnsafeMockPlatform, kwargs: dict[str, Any], policy_kw: dict[str, Any], reason: str) -> None:
    registered(kms, policy=mock_policy(**policy_kw))
    code, got = _deny(kms, lambda: kms.release("m1", tee, **kwargs))
    assert (code, got) == (grpc.StatusCode.PERMISSION_DENIED, reason)
    rec = _last_release_record(kms)
    assert rec["kind"] == "deny" and rec["reason"] == reason and rec["model"] == "m1"
    assert rec["policy_digest"].startswith("sha256:") and rec["evidence_digest"].startswith("sha256:")


def test_nonce_replayed(kms: Kms, tee: UnsafeMockPlatform) -> None:
    registered(kms)
    _, _, nonce = kms.release("m1", tee)
    code, reason = _deny(kms, lambda: kms.release("m1", tee, nonce=nonce))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "nonce.replayed")
    assert _last_release_record(kms)["reason"] == "nonce.replayed"


def test_nonce_expired(kms_factory: Any, tee: UnsafeMockPlatform) -> None:
    clock = Clock()
    kms = kms_factory(clock=clock)
    registered(kms)
    nonce = kms.challenge("m1")
    clock.offset += 61
    code, reason = _deny(kms, lambda: kms.release("m1", tee, nonce=nonce))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "nonce.expired")
    assert _last_release_record(kms)["reason"] == "nonce.expired"


def test_nonce_from_another_secret_and_for_another_model(kms: Kms, tee: UnsafeMockPlatform) -> None:
    registered(kms)
    foreign, _ = NonceService(b"\x01" * 32).issue("m1")
    code, reason = _deny(kms, lambda: kms.release("m1", tee, nonce=foreign))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "nonce.invalid")
    assert _last_release_record(kms)["reason"] == "nonce.invalid"
    other = kms.challenge("m2")
    code, reason = _deny(kms, lambda: kms.release("m1", tee, nonce=other))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "nonce.model")
    assert _last_release_record(kms)["reason"] == "nonce.model"


def test_evidence_bound_to_another_hpke_key(kms: Kms, tee: UnsafeMockPlatform) -> None:
    registered(kms)
    _, attacker_pub = rc.make_hpke_keypair()
    code, reason = _deny(kms, lambda: kms.release("m1", tee, bind_public_key=attacker_pub))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "attest.mock.binding")
    assert _last_release_record(kms)["reason"] == "attest.mock.binding"


def test_production_mode_refuses_mock_even_with_mock_policy(kms_factory: Any, tee: UnsafeMockPlatform) -> None:
    kms = kms_factory(dev=False)
    registered(kms)
    code, reason = _deny(kms, lambda: kms.release("m1", tee))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "attest.mock.not_allowed")
    assert _last_release_record(kms)["reason"] == "attest.mock.not_allowed"


def test_revoked_and_retired(kms: Kms, tee: UnsafeMockPlatform) -> None:
    registered(kms)
    a = kms.admin("alice")
    a.set_policy("m1", mock_policy(versions=[1, 2]))
    v2, _ = a.create_version("m1")
    assert v2 == 2
    resp, priv, nonce = kms.release("m1", tee)  # 0 = latest releasable
    fields, _ = rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce)
    assert fields.model_version == 2
    a.retire("m1", 2)
    resp, priv, nonce = kms.release("m1", tee)
    fields, _ = rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce)
    assert fields.model_version == 1  # falls back to the newest non-retired version
    code, reason = _deny(kms, lambda: kms.release("m1", tee, version=2))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "policy.model_version")
    a.revoke("m1")
    code, reason = _deny(kms, lambda: kms.release("m1", tee))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "model.revoked")
    assert _last_release_record(kms)["reason"] == "model.revoked"
    code, reason = _deny(kms, lambda: kms.release("nope", tee))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "model.not_found")


def test_real_snp_evidence_reaches_binding_check(kms_factory: Any, data_dir: Any) -> None:
    # The virtee/sev Milan sample verifies to AMD's root at 2024-06-01 but cannot bind a fresh
    # nonce: rejection at the binding step proves the real verifier ran (chain + signature first).
    from datetime import UTC, datetime

    snp = data_dir / "attestation" / "snp" / "virtee-sev"
    report = bytes.fromhex((snp / "report_milan.hex").read_text().strip())
    vcek = (snp / "vcek_milan.der").read_bytes()
    meas = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    kms = kms_factory(dev=False, clock=Clock(datetime(2024, 6, 1, tzinfo=UTC).timestamp()))
    a = kms.admin("alice")
    a.register("snp-model", json.dumps({"version": 1, "model_versions": [1],
                                        "profiles": [{"platform": "snp", "measurements": [meas]}]}))
    a.create_version("snp-model")
    ev = [pb.Evidence(platform="snp", report=report, certs=vcek)]
    code, reason = _deny(kms, lambda: kms.release("snp-model", UnsafeMockPlatform.generate(), evidence=ev))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "attest.snp.binding")
    assert _last_release_record(kms)["reason"] == "attest.snp.binding"


def test_vault_paused_then_back(kms: Kms, tee: UnsafeMockPlatform, vault_env: Any) -> None:
    dek = registered(kms)
    vault_env.dev.pause()
    try:
        code, reason = _deny(kms, lambda: kms.release("m1", tee))
    finally:
        vault_env.dev.resume()
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "vault.unavailable")
    assert _last_release_record(kms)["reason"] == "vault.unavailable"
    assert kms.server.metrics.registry.get_sample_value("weightseal_vault_errors_total") == 1.0
    resp, priv, nonce = kms.release("m1", tee)
    _, got = rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce)
    assert bytes(got) == bytes(dek)


def test_audit_unwritable_denies(kms_factory: Any, tee: UnsafeMockPlatform, tmp_path: Any) -> None:
    kms = kms_factory()
    registered(kms)
    nonce = kms.challenge("m1")
    kms.server.audit.close()  # every later append fails: audit.unwritable
    code, reason = _deny(kms, lambda: kms.release("m1", tee, nonce=nonce))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "audit.unwritable")
    code, reason = _deny(kms, lambda: kms.challenge("m1"))
    assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "audit.unwritable")
    assert not any(r["kind"] == "grant" for r in kms.audit_records())


def test_rotate_rewrap_keeps_old_versions_releasable(kms: Kms, tee: UnsafeMockPlatform) -> None:
    dek = registered(kms)
    a = kms.admin("alice")
    r = a.rotate("m1")
    assert (r.key_version, r.rewrapped) == (2, 1)
    assert [v.key_id for v in a.get("m1").versions] == ["vault:v2"]
    resp, priv, nonce = kms.release("m1", tee)
    fields, got = rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce)
    assert bytes(got) == bytes(dek) and fields.key_id == "vault:v2"
    admin_recs = [x for x in kms.audit_records() if x["kind"] == "admin"]
    assert [x["op"] for x in admin_recs] == ["register", "create_version", "rotate"]
    assert admin_recs[-1]["key_version"] == 2 and admin_recs[-1]["caller"].endswith("/alice")


def test_metrics_and_graceful_shutdown(kms_factory: Any, tee: UnsafeMockPlatform) -> None:
    kms = kms_factory(metrics=True)
    registered(kms)
    kms.release("m1", tee)
    with pytest.raises(grpc.RpcError):
        kms.release("m1", tee, debug=True)
    body = urllib.request.urlopen(f"http://127.0.0.1:{kms.server.metrics_port}/metrics", timeout=5).read().decode()  # noqa: S310
    assert 'weightseal_releases_total{decision="grant",reason="ok"} 1.0' in body
    assert 'weightseal_releases_total{decision="deny",reason="policy.debug"} 1.0' in body
    assert "weightseal_release_seconds_count 2.0" in body
    assert "weightseal_vault_errors_total 0.0" in body
    kms.server.stop(1.0)
    recs = kms.audit_records()
    assert recs[-1]["kind"] == "checkpoint"
    res = verify_log(kms.server.config.audit.path, kms.server.public_key)
    assert res.ok
    with pytest.raises(grpc.RpcError) as ei:
        kms.challenge("m1")
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE


def test_insecure_release_port_in_dev(kms_factory: Any, tee: UnsafeMockPlatform) -> None:
    kms = kms_factory(insecure=True)
    dek = registered(kms)
    resp, priv, nonce = kms.release("m1", tee)
    _, got = rc.open_release(resp.payload, resp.signature, kms.server.public_key, priv, model_id="m1", nonce=nonce)
    assert bytes(got) == bytes(dek)


def test_release_request_validation(kms: Kms, tee: UnsafeMockPlatform) -> None:
    registered(kms)
    nonce = kms.challenge("m1")
    rd = report_data(nonce, "m1", b"\x01" * 32)
    ev = tee.report(rd, measurement=MEAS)

    def call(**kw: Any) -> Any:
        req = dict(model_id="m1", nonce=nonce, hpke_public_key=b"\x01" * 32,
                   evidence=[pb.Evidence(platform="mock", report=ev.report)])
        req.update(kw)
        return kms.release_stub.ReleaseKey(pb.ReleaseKeyRequest(**req), timeout=10)

    assert _deny(kms, lambda: call(hpke_suite="rsa")) == (grpc.StatusCode.INVALID_ARGUMENT, "hpke.suite")
    assert _deny(kms, lambda: call(hpke_public_key=b"short")) == (grpc.StatusCode.INVALID_ARGUMENT, "hpke.public_key")
    assert _deny(kms, lambda: call(evidence=[])) == (grpc.StatusCode.INVALID_ARGUMENT, "request.invalid")
    assert _deny(kms, lambda: call(model_id="Bad Id")) == (grpc.StatusCode.INVALID_ARGUMENT, "model.invalid_id")
    assert _deny(kms, lambda: call(evidence=[pb.Evidence(platform="sgx", report=b"x")])) == (
        grpc.StatusCode.PERMISSION_DENIED, "attest.unsupported")


def test_audit_log_written_by_server_verifies(kms: Kms, tee: UnsafeMockPlatform) -> None:
    registered(kms)
    kms.release("m1", tee)
    kinds = [r["kind"] for r in kms.audit_records()]
    assert kinds.count("challenge") == 1 and kinds.count("grant") == 1
    assert isinstance(kms.server.audit, AuditLog)
    kms.server.audit.checkpoint()
    assert verify_log(kms.server.config.audit.path, kms.server.public_key).ok


def test_vault_stopped(pki: Any, tmp_path: Any, tee: UnsafeMockPlatform) -> None:
    # A private OpenBao (the shared one must not be stopped): connection refused -> UNAVAILABLE.
    from kmstest_support import make_config
    from weightseal.kms._devvault import DevVault, setup_vault
    from weightseal.kms._server import serve
    from weightseal.kms._vault import login_approle

    with DevVault() as dv:
        creds = setup_vault(dv.client())
        client = login_approle(dv.address, creds.role_id, creds.secret_id, timeout=2.0)
        with serve(make_config(pki, tmp_path), vault_client=client) as srv:
            kms = Kms(srv, pki)
            try:
                registered(kms)
                dv.stop()
                code, reason = _deny(kms, lambda: kms.release("m1", tee))
                assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "vault.unavailable")
                assert _last_release_record(kms)["reason"] == "vault.unavailable"
                with pytest.raises(Exception) as ei:
                    kms.admin("alice").create_version("m1")
                assert getattr(ei.value, "reason", "") == "vault.unavailable"
            finally:
                kms.close()


def test_configured_collateral_reaches_the_verifiers(kms_factory: Any, tee: UnsafeMockPlatform, tmp_path: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    # attestation.tdx_collateral_dir / gpu_rim_dir in the service config end up in every
    # verify_bundle call of a real release (through gRPC), as the stores the verifiers consult
    import weightseal.kms._release as rel
    from weightseal.attest import NvidiaOcsp, SnpCrlDir
    from weightseal.attest._nvgpu_rim import RimStore
    from weightseal.attest._tdx_collateral import TdxCollateralDir
    from weightseal.kms._config import AttestationConfig

    (tmp_path / "tdx").mkdir()
    (tmp_path / "rims").mkdir()
    (tmp_path / "crls").mkdir()
    caplog.set_level(logging.INFO, logger="weightseal.kms")
    kms = kms_factory(attestation=AttestationConfig(tdx_collateral_dir=str(tmp_path / "tdx"),
                                                     gpu_rim_dir=str(tmp_path / "rims"),
                                                     snp_crl_dir=str(tmp_path / "crls"),
                                                     gpu_ocsp_url="https://ocsp.example"))
    # the start-up log says which sources are on (and never a secret)
    [start] = [r for r in caplog.records if getattr(r, "event", None) == "start"]
    assert start.attestation == {  # type: ignore[attr-defined]
        "mock_keys": "0 pinned",
        "tdx_collateral": f"TdxCollateralDir({str(tmp_path / 'tdx')!r}, allow_partial=False)",
        "gpu_rims": f"RimStore({str(tmp_path / 'rims')!r})",
        "gpu_ocsp": "NvidiaOcsp(url='https://ocsp.example', nonce=True)",
        "snp_kds": "off",
        "snp_crl": f"SnpCrlDir({str(tmp_path / 'crls')!r})",
    }
    seen: list[dict[str, Any]] = []
    real = rel.verify_bundle

    def spy(*a: Any, **kw: Any) -> Any:
        seen.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(rel, "verify_bundle", spy)
    registered(kms)
    resp, _, _ = kms.release("m1", tee)
    assert resp.signature and _last_release_record(kms)["kind"] == "grant"
    assert len(seen) == 1
    assert isinstance(seen[0]["tdx_fetcher"], TdxCollateralDir) and seen[0]["tdx_fetcher"].root == tmp_path / "tdx"
    assert isinstance(seen[0]["gpu_rims"], RimStore) and seen[0]["gpu_rims"].directory == tmp_path / "rims"
    assert seen[0]["tdx_fetcher"] is kms.server.attestation.tdx_fetcher
    assert isinstance(seen[0]["snp_crl"], SnpCrlDir) and seen[0]["snp_crl"].path == tmp_path / "crls"
    assert isinstance(seen[0]["gpu_ocsp"], NvidiaOcsp) and seen[0]["gpu_ocsp"].url == "https://ocsp.example"


def test_collateral_expiry_is_exported_as_metrics(kms_factory: Any, tmp_path: Any, data_dir: Any) -> None:
    # real go-tdx-guest collateral and nvtrust RIMs in the layout the service reads; the
    # metrics report the dates the documents themselves carry
    import base64
    import re
    import shutil
    from datetime import datetime

    from cryptography import x509
    from weightseal.kms._config import AttestationConfig

    tdx_src = data_dir / "attestation" / "tdx" / "go-tdx-guest"
    fleet = tmp_path / "tdx" / "50806f000000"
    fleet.mkdir(parents=True)
    shutil.copy(tdx_src / "collateral" / "sample_tcbInfo_response", fleet / "tcb_info.json")
    shutil.copy(tdx_src / "derived" / "tcbInfoIssuerChain.pem", fleet / "tcb_info_issuer_chain.pem")
    (tmp_path / "tdx" / "90c06f000000").mkdir()  # a platform whose set is still empty
    rims = tmp_path / "rims"
    rims.mkdir()
    leg = data_dir / "attestation" / "nvgpu" / "nvtrust" / "legacy"
    shutil.copy(leg / "Driver_RIM_test_no_gpu.swidtag", rims / "driver.swidtag")
    crls = tmp_path / "crls"
    crls.mkdir()
    snp_src = data_dir / "attestation" / "snp" / "openpcc"
    shutil.copy(snp_src / "amd_milan_crl.pem", crls / "milan_vcek.crl")  # AMD's real Milan CRL
    shutil.copy(snp_src / "amd_milan_crl.pem", crls / "genoa_vcek.crl")  # misfiled: not the Genoa ARK's
    kms = kms_factory(metrics=True, attestation=AttestationConfig(tdx_collateral_dir=str(tmp_path / "tdx"),
                                                                  gpu_rim_dir=str(rims), snp_crl_dir=str(crls)))

    def scrape() -> dict[str, float]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{kms.server.metrics_port}/metrics", timeout=5).read().decode()  # noqa: S310
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(weightseal_(?:tdx|gpu|snp|attestation)\S*) (\S+)$", body, re.M)}

    def ts(s: str) -> float:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    tcb_next = json.loads((fleet / "tcb_info.json").read_bytes())["tcbInfo"]["nextUpdate"]
    xml = (rims / "driver.swidtag").read_text()
    certs = [x509.load_der_x509_certificate(base64.b64decode("".join(c.split())))
             for c in re.findall(r"<(?:\w+:)?X509Certificate>(.*?)</(?:\w+:)?X509Certificate>", xml, re.S)]
    assert certs
    got = scrape()
    assert got['weightseal_tdx_collateral_next_update_seconds{document="tcb_info",fmspc="50806f000000"}'] == ts(tcb_next)
    assert got['weightseal_tdx_collateral_next_update_seconds{document="qe_identity",fmspc="50806f000000"}'] == 0.0
    assert got['weightseal_tdx_collateral_next_update_seconds{document="tcb_info",fmspc="90c06f000000"}'] == 0.0
    assert got['weightseal_gpu_rim_not_after_seconds{file="driver.swidtag",version="545.00"}'] == min(
        c.not_valid_after_utc.timestamp() for c in certs)
    assert got['weightseal_attestation_collateral_readable{source="tdx"}'] == 1.0
    assert got['weightseal_attestation_collateral_readable{source="gpu_rims"}'] == 1.0
    assert got['weightseal_snp_crl_next_update_seconds{key="vcek",product="Milan"}'] == ts("2026-05-12T00:00:00Z")
    assert got['weightseal_snp_crl_next_update_seconds{key="vcek",product="Genoa"}'] == 0.0
    assert got['weightseal_attestation_collateral_readable{source="snp_crl"}'] == 1.0
    # renewed files show up at the next scrape; a vanished directory is reported, not hidden
    shutil.copy(tdx_src / "collateral" / "sample_qeIdentity_response", fleet / "qe_identity.json")
    qe_next = json.loads((fleet / "qe_identity.json").read_bytes())["enclaveIdentity"]["nextUpdate"]
    shutil.rmtree(rims)
    got = scrape()
    assert got['weightseal_tdx_collateral_next_update_seconds{document="qe_identity",fmspc="50806f000000"}'] == ts(qe_next)
    assert got['weightseal_attestation_collateral_readable{source="gpu_rims"}'] == 0.0
    assert not any(k.startswith("weightseal_gpu_rim_not_after_seconds{") for k in got)
    shutil.rmtree(crls)
    got = scrape()
    assert got['weightseal_attestation_collateral_readable{source="snp_crl"}'] == 0.0
