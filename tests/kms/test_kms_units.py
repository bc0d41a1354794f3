"""Unit tests without Vault: nonces, release crypto, config, status table, generated code."""

from __future__ import annotations

import filecmp
import os
import stat
from pathlib import Path

import grpc
import nacl.signing
import pytest
from weightseal.attest._errors import (
    BindingError,
    MockNotAllowedError,
    PolicyDenied,
    PolicyFormatError,
)
from weightseal.kms._config import (
    load_config,
    load_or_create_nonce_secret,
    load_or_create_signing_key,
)
from weightseal.kms._errors import (
    AuditError,
    AuthError,
    ConfigError,
    ModelNotFoundError,
    ModelRevokedError,
    NonceError,
    PermissionDeniedError,
    VaultError,
    VaultUnavailableError,
)
from weightseal.kms._nonce import NonceService
from weightseal.kms._release import RequestError
from weightseal.kms._server import status_for
from weightseal.proto import _release_crypto as rc
from weightseal.proto import generate
from weightseal.proto import weightseal_v1_pb2 as pb

import weightseal_cli

ROOT = Path(__file__).resolve().parents[2]


# -- nonces -----------------------------------------------------------------------------------------

class _T:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def _reason(fn: object) -> str:
    with pytest.raises(NonceError) as ei:
        fn()  # type: ignore[operator]
    return ei.value.reason


def test_nonce_lifecycle() -> None:
    clk = _T()
    ns = NonceService(b"k" * 32, ttl_seconds=60, clock=clk)
    n, exp = ns.issue("m1")
    assert len(n) == 32 and exp == int(clk.t * 1000) + 60_000
    n2, _ = ns.issue("m1")
    assert n != n2
    assert ns.check(n, "m1") == exp
    assert _reason(lambda: ns.check(n, "m1")) == "nonce.replayed"
    assert _reason(lambda: ns.check(n2, "m2")) == "nonce.model"
    assert _reason(lambda: NonceService(b"x" * 32, clock=clk).check(n2, "m1")) == "nonce.invalid"
    assert _reason(lambda: ns.check(n2[:31], "m1")) == "nonce.invalid"
    for i in range(32):  # any single bit flip is caught
        bad = bytearray(n2)
        bad[i] ^= 0x01
        assert _reason(lambda b=bytes(bad): ns.check(b, "m1")) in ("nonce.invalid", "nonce.model")
    clk.t += 60
    assert _reason(lambda: ns.check(n2, "m1")) == "nonce.expired"
    # a second replica with the same secret accepts a nonce the first issued (once)
    n3, _ = ns.issue("m1")
    other = NonceService(b"k" * 32, clock=clk)
    assert other.check(n3, "m1") > 0 and ns.check(n3, "m1") > 0  # single use is per replica
    # the spent set is pruned on expiry
    assert ns.spent_count >= 1
    clk.t += 120
    ns.issue("m1")
    n4, _ = ns.issue("m1")
    ns.check(n4, "m1")
    assert ns.spent_count == 1


def test_nonce_secret_rules() -> None:
    with pytest.raises(NonceError):
        NonceService(b"short")
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(NonceService(b"k" * 32))


# -- release crypto ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suite", rc.SUITES)
def test_hpke_roundtrip_and_info_binding(suite: str) -> None:
    priv, pub = rc.make_hpke_keypair(suite)
    assert len(pub) == (32 if suite == "x25519" else 1216)
    info = rc.release_info(suite=suite, model_id="m", model_version=1, nonce=b"n" * 32, policy_digest="sha256:00",
                           public_key=pub)
    enc, ct = rc.hpke_seal(suite, pub, bytearray(b"d" * 32), info)
    assert bytes(rc.hpke_open(priv, enc, ct, info)) == b"d" * 32
    for other in (
        rc.release_info(suite=suite, model_id="m2", model_version=1, nonce=b"n" * 32, policy_digest="sha256:00", public_key=pub),
        rc.release_info(suite=suite, model_id="m", model_version=2, nonce=b"n" * 32, policy_digest="sha256:00", public_key=pub),
        rc.release_info(suite=suite, model_id="m", model_version=1, nonce=b"o" * 32, policy_digest="sha256:00", public_key=pub),
        rc.release_info(suite=suite, model_id="m", model_version=1, nonce=b"n" * 32, policy_digest="sha256:01", public_key=pub),
        rc.owner_info(suite=suite, model_id="m", model_version=1, public_key=pub),
    ):
        with pytest.raises(rc.ReleaseVerificationError) as ei:
            rc.hpke_open(priv, enc, ct, other)
        assert ei.value.reason == "release.decrypt"
    assert repr(priv) == f"HpkePrivateKey(suite={suite!r})"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(priv)


def test_public_key_checks() -> None:
    for suite, key, reason in (("x25519", b"\x00" * 31, "hpke.public_key"), ("mlkem768-x25519", b"\x00" * 32, "hpke.public_key"),
                               ("p256", b"\x00" * 65, "hpke.suite")):
        with pytest.raises(rc.ReleaseVerificationError) as ei:
            rc.check_public_key(suite, key)
        assert ei.value.reason == reason


def _signed(sk: nacl.signing.SigningKey, priv: rc.HpkePrivateKey, pub: bytes, **over: object) -> bytes:
    fields: dict[str, object] = dict(model_id="m", model_version=1, nonce=b"n" * 32, policy_digest="sha256:aa",
                                     hpke_suite=priv.suite, hpke_public_key=pub, issued_at_ms=1000, key_id="vault:v1")
    fields.update(over)
    info = rc.release_info(suite=priv.suite, model_id=str(fields["model_id"]), model_version=int(fields["model_version"]),  # type: ignore[call-overload]
                           nonce=bytes(fields["nonce"]), policy_digest=str(fields["policy_digest"]), public_key=pub)  # type: ignore[arg-type]
    enc, ct = rc.hpke_seal(priv.suite, pub, b"k" * 32, info)
    return pb.ReleasePayload(enc=enc, ciphertext=ct, **fields).SerializeToString()  # type: ignore[arg-type]


def test_open_release_checks() -> None:
    sk = nacl.signing.SigningKey(b"s" * 32)
    spk = bytes(sk.verify_key)
    priv, pub = rc.make_hpke_keypair()
    payload = _signed(sk, priv, pub)
    sig = rc.sign_payload(sk, payload)
    fields, dek = rc.open_release(payload, sig, spk, priv, model_id="m", nonce=b"n" * 32, model_version=1,
                                  policy_digest="sha256:aa", now_ms=1000)
    assert bytes(dek) == b"k" * 32 and fields.key_id == "vault:v1"

    def reason(**kw: object) -> str:
        args: dict[str, object] = dict(model_id="m", nonce=b"n" * 32)
        args.update(kw)
        with pytest.raises(rc.ReleaseVerificationError) as ei:
            rc.open_release(payload, sig, spk, priv, **args)  # type: ignore[arg-type]
        return ei.value.reason

    assert reason(model_version=2) == "release.binding"
    assert reason(policy_digest="sha256:bb") == "release.binding"
    assert reason(now_ms=1000 + 10 * 60 * 1000) == "release.stale"
    # the signature covers a domain label: a bare Ed25519 signature of the payload is refused
    with pytest.raises(rc.ReleaseVerificationError):
        rc.verify_payload(spk, payload, bytes(sk.sign(payload).signature))
    # a signed but malformed payload
    junk = b"\xff\xff\xff"
    with pytest.raises(rc.ReleaseVerificationError) as ei:
        rc.open_release(junk, rc.sign_payload(sk, junk), spk, priv, model_id="m", nonce=b"n" * 32)
    assert ei.value.reason == "release.invalid"
    # a payload whose info fields were altered (re-signed by the key holder) still fails to open
    swapped = pb.ReleasePayload()
    swapped.ParseFromString(payload)
    swapped.policy_digest = "sha256:cc"
    p2 = swapped.SerializeToString()
    with pytest.raises(rc.ReleaseVerificationError) as ei:
        rc.open_release(p2, rc.sign_payload(sk, p2), spk, priv, model_id="m", nonce=b"n" * 32)
    assert ei.value.reason == "release.decrypt"


# -- status table -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "code"), [
    (PolicyDenied("x", reason="policy.measurement"), grpc.StatusCode.PERMISSION_DENIED),
    (BindingError("x", reason="attest.mock.binding"), grpc.StatusCode.PERMISSION_DENIED),
    (MockNotAllowedError("x"), grpc.StatusCode.PERMISSION_DENIED),
    (NonceError("x", reason="nonce.expired"), grpc.StatusCode.FAILED_PRECONDITION),
    (NonceError("x", reason="nonce.replayed"), grpc.StatusCode.FAILED_PRECONDITION),
    (NonceError("x", reason="nonce.invalid"), grpc.StatusCode.PERMISSION_DENIED),
    (NonceError("x", reason="nonce.model"), grpc.StatusCode.PERMISSION_DENIED),
    (ModelNotFoundError("x"), grpc.StatusCode.NOT_FOUND),
    (ModelRevokedError("x"), grpc.StatusCode.PERMISSION_DENIED),
    (VaultUnavailableError("x"), grpc.StatusCode.UNAVAILABLE),
    (VaultError("x"), grpc.StatusCode.INTERNAL),
    (AuditError("x"), grpc.StatusCode.UNAVAILABLE),
    (AuthError("x"), grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError("x"), grpc.StatusCode.PERMISSION_DENIED),
    (RequestError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (PolicyFormatError("x"), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_status_table(exc: Exception, code: grpc.StatusCode) -> None:
    assert status_for(exc) == code  # type: ignore[arg-type]


# -- config -----------------------------------------------------------------------------------------

def _write(tmp: Path, text: str) -> Path:
    p = tmp / "kms.yaml"
    p.write_text(text)
    return p


PROD = """
listen: 0.0.0.0:8443
admin_listen: 0.0.0.0:8444
tls: {cert: tls/server.pem, key: tls/server.key, client_ca: tls/ca.pem}
vault: {address: "https://vault:8200", role_id: r, secret_id_file: /run/secrets/sid}
auth: {admins: ["spiffe://corp/sec"]}
"""


def test_config_file_env_and_paths(tmp_path: Path) -> None:
    p = _write(tmp_path, PROD)
    cfg = load_config(p, env={"WEIGHTSEAL_KMS_VAULT_ADDRESS": "https://other:8200", "WEIGHTSEAL_KMS_NONCE_TTL_SECONDS": "30",
                              "WEIGHTSEAL_KMS_AUTH_ADMINS": "a,b", "WEIGHTSEAL_KMS_TLS_INSECURE": "false", "HOME": "/x"})
    assert cfg.vault.address == "https://other:8200" and cfg.nonce_ttl_seconds == 30.0
    assert cfg.auth.admins == ("a", "b") and cfg.tls.insecure is False and not cfg.dev
    assert cfg.tls.cert == str(tmp_path / "tls" / "server.pem") and cfg.vault.secret_id_file == "/run/secrets/sid"  # noqa: S105
    assert cfg.keys.signing_key == str(tmp_path / "service-signing.key")


@pytest.mark.parametrize(("text", "env"), [
    (PROD + "bogus: 1\n", {}),
    (PROD + "vault_extra: {}\n", {}),
    (PROD.replace("role_id: r", "role_id: 5"), {}),
    (PROD, {"WEIGHTSEAL_KMS_VAULT_ADRESS": "typo"}),
    (PROD, {"WEIGHTSEAL_KMS_NONCE_TTL_SECONDS": "abc"}),
    (PROD, {"WEIGHTSEAL_KMS_NONCE_TTL_SECONDS": "0"}),
    (PROD, {"WEIGHTSEAL_KMS_TLS_INSECURE": "true"}),  # plaintext only in dev mode
    (PROD.replace('vault: {address: "https://vault:8200", role_id: r, secret_id_file: /run/secrets/sid}', ""), {}),
    (PROD.replace("client_ca: tls/ca.pem", ""), {}),
    (PROD.replace("listen: 0.0.0.0:8443", "listen: nowhere"), {}),
    (PROD + "attestation: {tdx_collateral_dir: tdx, tdx_pcs_url: 'https://pcs.example'}\n", {}),  # one source
    (PROD + "attestation: {tdx_pcs_url: 'http://pcs.example'}\n", {}),  # plain http
    (PROD, {"WEIGHTSEAL_KMS_ATTESTATION_SNP_KDS_URL": "kdsintf.amd.com"}),
    (PROD + "attestation: {snp_kds_cache_dir: kds}\n", {}),  # a cache without KDS
    (PROD + "attestation: {tdx_root_crl_url: 'https://pccs/rootcacrl'}\n", {}),  # without a PCS
    (PROD + "attestation: {gpu_rim_dir: 5}\n", {}),
    (PROD + "attestation: {snp_crl_from_kds: true}\n", {}),  # CRLs from KDS without KDS
    (PROD + "attestation: {gpu_rim_dir: rims, gpu_rim_service_url: 'https://rim.attestation.nvidia.com/v1/rim/'}\n", {}),
    (PROD + "attestation: {gpu_rim_service_url: 'http://rim.example/v1/rim/'}\n", {}),
    (PROD + "attestation: {gpu_rim_cache_dir: rim-cache}\n", {}),  # a cache without the service
    (PROD + "attestation: {gpu_rim_service_key_file: k}\n", {}),
    (PROD + "attestation: {gpu_ocsp_ca_file: ca.pem}\n", {}),  # a CA without a responder
    (PROD + "attestation: {gpu_ocsp_url: 'http://ocsp.ndis.nvidia.com'}\n", {}),
    (PROD + "attestation: {snp_crl_dir: crls, snp_crl_from_kds: true, snp_kds_url: 'https://kdsintf.amd.com'}\n", {}),
    (PROD + "attestation: {snp_crl_from_kds: 'sometimes', snp_kds_url: 'https://kdsintf.amd.com'}\n", {}),
    ("[1, 2]", {}),
    ("a: [", {}),
])
def test_config_rejects(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(_write(tmp_path, text), env=env)
    assert ei.value.reason == "config.invalid"


def test_service_key_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sk_path = tmp_path / "k" / "signing.key"
    ns_path = tmp_path / "k" / "nonce.key"
    assert weightseal_cli.main(["kms", "keygen", "--signing-key", str(sk_path), "--nonce-secret", str(ns_path)]) == 0
    out = capsys.readouterr().out
    assert "created, 0600" in out
    for p in (sk_path, ns_path):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    key = load_or_create_signing_key(sk_path)
    assert len(load_or_create_nonce_secret(ns_path)) == 32
    assert weightseal_cli.main(["kms", "pubkey", "--signing-key", str(sk_path)]) == 0
    assert capsys.readouterr().out.strip() == bytes(key.verify_key).hex()
    os.chmod(sk_path, 0o644)
    with pytest.raises(ConfigError):
        load_or_create_signing_key(sk_path)
    with pytest.raises(ConfigError):
        load_or_create_signing_key(tmp_path / "absent.key", create=False)


# -- generated code -----------------------------------------------------------------------------------

def test_generated_proto_code_is_current(tmp_path: Path) -> None:
    written = generate.generate(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["weightseal_v1_pb2.py", "weightseal_v1_pb2.pyi", "weightseal_v1_pb2_grpc.py"]
    proto_dir = ROOT / "proto"
    for n in names:
        assert filecmp.cmp(tmp_path / n, proto_dir / n, shallow=False), f"{n} is stale: run `make proto`"
    assert "from weightseal.proto import weightseal_v1_pb2" in (proto_dir / "weightseal_v1_pb2_grpc.py").read_text()


def test_dev_mode_cannot_come_from_file_or_environment(tmp_path):
    from weightseal.kms import ConfigError, load_config

    cfg = tmp_path / "kms.yaml"
    cfg.write_text("dev: true\n")
    with pytest.raises(ConfigError) as e1:
        load_config(cfg, env={})
    assert e1.value.reason == "config.invalid" and "dev" in str(e1.value)
    with pytest.raises(ConfigError) as e2:
        load_config(None, env={"WEIGHTSEAL_KMS_DEV": "true"})
    assert e2.value.reason == "config.invalid" and "WEIGHTSEAL_KMS_DEV" in str(e2.value)


def test_production_server_never_creates_service_keys(tmp_path):
    """A replica that silently made its own signing key would sign with a key no loader pins and
    verify nonces no other replica issued: production mode requires provisioned keys."""
    from weightseal.kms import ConfigError
    from weightseal.kms._config import KeysConfig, TlsConfig, VaultConfig, load_config
    from weightseal.kms._server import serve

    cfg = load_config(None, env={}, dev=False,
                      vault=VaultConfig(address="http://127.0.0.1:1", role_id="r", secret_id="s"),  # noqa: S106 - not a secret
                      tls=TlsConfig(cert=str(tmp_path / "c"), key=str(tmp_path / "k"), client_ca=str(tmp_path / "ca")),
                      keys=KeysConfig(signing_key=str(tmp_path / "signing.key"),
                                      nonce_secret=str(tmp_path / "nonce.key")))
    with pytest.raises(ConfigError) as e:
        serve(cfg, vault_client=object())
    assert e.value.reason == "config.invalid" and "weightseal kms keygen" in str(e.value)
    assert not (tmp_path / "signing.key").exists() and not (tmp_path / "nonce.key").exists()


def test_config_attestation_sources(tmp_path: Path) -> None:
    from weightseal.attest._nvgpu_rim import RimStore
    from weightseal.attest._snp_kds import KdsClient
    from weightseal.attest._tdx_collateral import IntelPcsFetcher, TdxCollateralDir
    from weightseal.kms._server import attestation_options

    (tmp_path / "tdx").mkdir()
    (tmp_path / "rims").mkdir()
    text = PROD + ("attestation: {tdx_collateral_dir: tdx, gpu_rim_dir: rims,"
                   " snp_kds_url: 'https://kds.example/vcek/v1', snp_kds_cache_dir: kds-cache}\n")
    cfg = load_config(_write(tmp_path, text), env={"WEIGHTSEAL_KMS_ATTESTATION_TDX_COLLATERAL_PARTIAL": "yes"})
    att = cfg.attestation
    assert att.tdx_collateral_dir == str(tmp_path / "tdx") and att.tdx_collateral_partial is True
    assert att.gpu_rim_dir == str(tmp_path / "rims") and att.snp_kds_cache_dir == str(tmp_path / "kds-cache")
    opts = attestation_options(cfg)
    assert isinstance(opts.tdx_fetcher, TdxCollateralDir) and opts.tdx_fetcher.root == tmp_path / "tdx"
    assert opts.tdx_fetcher.allow_partial is True
    assert isinstance(opts.gpu_rims, RimStore) and opts.gpu_rims.directory == tmp_path / "rims"
    assert isinstance(opts.snp_kds, KdsClient)
    assert repr(opts.snp_kds) == f"KdsClient(base_url='https://kds.example/vcek/v1', cache_dir={str(tmp_path / 'kds-cache')!r})"
    # Intel PCS or a PCCS instead of a directory
    pcs = load_config(_write(tmp_path, PROD + "attestation: {tdx_pcs_url: 'https://pccs.internal:8081/'}\n"), env={})
    fetcher = attestation_options(pcs).tdx_fetcher
    assert isinstance(fetcher, IntelPcsFetcher) and fetcher._base == "https://pccs.internal:8081"
    assert fetcher._root_crl_url == "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    pccs = load_config(_write(tmp_path, PROD + "attestation: {tdx_pcs_url: 'https://pccs.internal:8081',"
                                           " tdx_root_crl_url: 'https://pccs.internal:8081/sgx/certification/v4/rootcacrl'}\n"), env={})
    fetcher = attestation_options(pccs).tdx_fetcher
    assert fetcher._root_crl_url == "https://pccs.internal:8081/sgx/certification/v4/rootcacrl"
    from weightseal.kms._server import attestation_summary

    summary = attestation_summary(attestation_options(pccs))
    assert summary["tdx_collateral"] == ("IntelPcsFetcher(base_url='https://pccs.internal:8081', "
                                         "root_crl_url='https://pccs.internal:8081/sgx/certification/v4/rootcacrl')")
    assert (summary["gpu_rims"], summary["gpu_ocsp"], summary["snp_crl"]) == ("off", "off", "off")
    # nothing configured: no collateral source, no RIMs, no network
    plain = attestation_options(load_config(_write(tmp_path, PROD), env={}))
    assert (plain.tdx_fetcher, plain.tdx_collateral, plain.gpu_rims, plain.snp_kds, plain.mock_keys) == (None, None, (), None, None)


def test_config_snp_crl_sources(tmp_path: Path) -> None:
    from weightseal.attest import KdsClient, SnpCrlDir
    from weightseal.kms._server import attestation_options

    (tmp_path / "crls").mkdir()
    opts = attestation_options(load_config(_write(tmp_path, PROD + "attestation: {snp_crl_dir: crls}\n"), env={}))
    assert isinstance(opts.snp_crl, SnpCrlDir) and opts.snp_crl.path == tmp_path / "crls" and opts.snp_kds is None
    kds = attestation_options(load_config(_write(
        tmp_path, PROD + "attestation: {snp_kds_url: 'https://kdsintf.amd.com', snp_crl_from_kds: true}\n"), env={}))
    assert isinstance(kds.snp_crl, KdsClient) and kds.snp_crl is kds.snp_kds
    assert kds.snp_crl.crl_url("Genoa") == "https://kdsintf.amd.com/vcek/v1/Genoa/crl"
    # KDS for VCEKs alone does not switch revocation checking on
    only_kds = attestation_options(load_config(_write(
        tmp_path, PROD + "attestation: {snp_kds_url: 'https://kdsintf.amd.com'}\n"), env={}))
    assert isinstance(only_kds.snp_kds, KdsClient) and only_kds.snp_crl is None
    env = attestation_options(load_config(_write(tmp_path, PROD), env={"WEIGHTSEAL_KMS_ATTESTATION_SNP_CRL_DIR":
                                                                       str(tmp_path / "crls")}))
    assert isinstance(env.snp_crl, SnpCrlDir) and env.snp_crl.path == tmp_path / "crls"


def test_config_gpu_rim_service(tmp_path: Path) -> None:
    from weightseal.attest import NvidiaRimService
    from weightseal.kms._server import attestation_options

    (tmp_path / "rim.key").write_text("nvapi-abc_123\n")
    text = PROD + ("attestation: {gpu_rim_service_url: 'https://rim.attestation.nvidia.com/v1/rim/',"
                   " gpu_rim_service_key_file: rim.key, gpu_rim_cache_dir: rim-cache}\n")
    opts = attestation_options(load_config(_write(tmp_path, text), env={}))
    assert isinstance(opts.gpu_rims, NvidiaRimService)
    assert opts.gpu_rims.base_url == "https://rim.attestation.nvidia.com/v1/rim/"
    assert opts.gpu_rims.cache_dir == tmp_path / "rim-cache"
    assert opts.gpu_rims._key == "nvapi-abc_123" and "nvapi" not in repr(opts.gpu_rims)
    for bad in (b"two words", b"", b"caf\xc3\xa9"):
        (tmp_path / "rim.key").write_bytes(bad)
        with pytest.raises(ConfigError) as ei:
            attestation_options(load_config(_write(tmp_path, text), env={}))
        assert ei.value.reason == "config.invalid"
    (tmp_path / "rim.key").unlink()
    with pytest.raises(ConfigError) as ei:
        attestation_options(load_config(_write(tmp_path, text), env={}))
    assert ei.value.reason == "config.invalid" and "rim.key" in str(ei.value)


def test_config_gpu_ocsp(tmp_path: Path) -> None:
    from weightseal.attest import NvidiaOcsp
    from weightseal.kms._server import attestation_options

    plain = attestation_options(load_config(_write(tmp_path, PROD), env={}))
    assert plain.gpu_ocsp is None
    text = PROD + "attestation: {gpu_ocsp_url: 'https://ocsp.ndis.nvidia.com', gpu_ocsp_ca_file: ocsp-ca.pem}\n"
    opts = attestation_options(load_config(_write(tmp_path, text), env={"WEIGHTSEAL_KMS_ATTESTATION_GPU_OCSP_NONCE": "false"}))
    assert isinstance(opts.gpu_ocsp, NvidiaOcsp)
    assert (opts.gpu_ocsp.url, opts.gpu_ocsp.nonce, opts.gpu_ocsp._ca_file) == (
        "https://ocsp.ndis.nvidia.com", False, str(tmp_path / "ocsp-ca.pem"))


@pytest.mark.parametrize("key", ["tdx_collateral_dir", "gpu_rim_dir", "snp_crl_dir"])
def test_config_attestation_directory_must_exist(tmp_path: Path, key: str) -> None:
    from weightseal.kms._server import attestation_options

    cfg = load_config(_write(tmp_path, PROD + f"attestation: {{{key}: absent}}\n"), env={})
    with pytest.raises(ConfigError) as ei:
        attestation_options(cfg)
    assert ei.value.reason == "config.invalid" and str(tmp_path / "absent") in str(ei.value)
