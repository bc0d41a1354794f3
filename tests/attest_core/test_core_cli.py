"""`weightseal attest ...` through weightseal_cli.main on real samples and mock evidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from _attest_core_helpers import (
    DATA,
    GO_SNP_MEASUREMENT,
    GPU_NONCE,
    TDX_DIR,
    TDX_MRTD,
    TDX_REPORT_DATA,
    VIRTEE_SNP_MEASUREMENT,
)
from weightseal.attest import report_data

import weightseal_cli

GO = DATA / "snp" / "go-sev-guest"
VIRTEE = DATA / "snp" / "virtee-sev"
NV = DATA / "nvgpu" / "nvtrust"
GO_RD = "0102030405" + "00" * 59


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = weightseal_cli.main(["attest", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    rc, out, _ = run(capsys, "verify", *argv, "--json")
    return rc, json.loads(out)


def test_verify_snp_hex_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "verify", str(VIRTEE / "report_milan.hex"), "--certs", str(VIRTEE / "vcek_milan.der"),
                     "--now", "2024-09-24T01:00:00Z")
    assert rc == 0
    assert "[snp]" in out and VIRTEE_SNP_MEASUREMENT in out and "verdict: VERIFIED" in out
    assert "binding was NOT checked" in out


def test_verify_snp_binding_and_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    certs = tmp_path / "certs.pem"
    certs.write_bytes((GO / "vcek.testcer").read_bytes() + (GO / "ask_ark_milan.pem").read_bytes())
    args = [str(GO / "attestation.bin"), "--certs", str(certs), "--now", "2022-09-24T01:00:00Z"]
    rc, res = run_json(capsys, *args, "--report-data", GO_RD)
    assert rc == 0 and res["verdict"] == "verified" and res["binding_checked"] is True
    assert res["claims"][0]["measurement"] == GO_SNP_MEASUREMENT
    rc, res = run_json(capsys, *args, "--report-data", "00" * 64)
    assert rc == 1 and (res["verdict"], res["reason"]) == ("invalid", "attest.snp.binding")
    policy = tmp_path / "p.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "model_versions": [1], "profiles": [
        {"platform": "snp", "measurements": [GO_SNP_MEASUREMENT], "allow_debug": True,
         "min_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}}]}))
    rc, res = run_json(capsys, *args, "--report-data", GO_RD, "--policy", str(policy), "--model-version", "1")
    assert rc == 0 and res["verdict"] == "allowed" and res["decision"]["profile_index"] == 0
    assert res["decision"]["policy_digest"] == res["policy_digest"]
    rc, res = run_json(capsys, *args, "--policy", str(policy), "--model-version", "2")
    assert rc == 1 and (res["verdict"], res["reason"], res["rule"]) == ("denied", "policy.model_version", "model_versions")
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"version": 1, "model_versions": [1], "profiles": [
        {"platform": "snp", "measurements": [GO_SNP_MEASUREMENT]}]}))
    rc, out, _ = run(capsys, "verify", *args, "--policy", str(strict), "--model-version", "1")
    assert rc == 1 and "verdict: DENIED (policy.debug, profiles[0].allow_debug)" in out


def test_verify_snp_with_amd_crl(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # AMD's real Milan ARK CRL (file or directory form) with the real virtee Milan report
    crl = DATA / "snp" / "openpcc" / "amd_milan_crl.pem"
    args = [str(VIRTEE / "report_milan.hex"), "--certs", str(VIRTEE / "vcek_milan.der"), "--now", "2025-06-01T00:00:00Z"]
    rc, res = run_json(capsys, *args)
    assert rc == 0 and res["claims"][0]["crl_checked"] is False
    rc, res = run_json(capsys, *args, "--snp-crl", str(crl))
    assert rc == 0 and res["verdict"] == "verified" and res["claims"][0]["crl_checked"] is True
    d = tmp_path / "crls"
    d.mkdir()
    shutil.copy(crl, d / "milan_vcek.crl")
    rc, res = run_json(capsys, *args, "--snp-crl", str(d))
    assert rc == 0 and res["claims"][0]["crl_checked"] is True
    rc, res = run_json(capsys, *args, "--snp-crl", str(DATA / "snp" / "openpcc" / "amd_genoa_crl.pem"))
    assert rc == 1 and (res["verdict"], res["reason"]) == ("invalid", "attest.snp.crl")
    rc, res = run_json(capsys, str(VIRTEE / "report_milan.hex"), "--certs", str(VIRTEE / "vcek_milan.der"),
                       "--now", "2026-06-01T00:00:00Z", "--snp-crl", str(crl))
    assert rc == 1 and res["reason"] == "attest.snp.crl_expired"
    # a golden policy written from CRL-checked evidence requires the check
    out = tmp_path / "golden.json"
    rc, res = run_json(capsys, *args, "--snp-crl", str(crl), "--write-policy", str(out), "--model-versions", "1")
    assert rc == 0 and json.loads(out.read_text())["profiles"][0]["require_crl"] is True
    rc, res = run_json(capsys, *args, "--policy", str(out), "--model-version", "1")
    assert rc == 1 and (res["verdict"], res["reason"], res["rule"]) == ("denied", "policy.crl", "profiles[0].require_crl")
    rc, _, err = run(capsys, "verify", *args, "--snp-crl", str(tmp_path / "missing.crl"))
    assert rc == 1 and "no such file or directory" in err


def test_verify_tdx_auto_detect_and_collateral(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    quote = str(TDX_DIR / "tdx_prod_quote_SPR_E4.dat")
    rc, res = run_json(capsys, quote, "--now", "2023-07-01T01:00:00Z", "--report-data", TDX_REPORT_DATA)
    assert rc == 0 and res["claims"][0]["platform"] == "tdx" and res["claims"][0]["mr_td"] == TDX_MRTD
    rc, res = run_json(capsys, quote, "--now", "2053-07-01T01:00:00Z")
    assert rc == 1 and res["verdict"] == "invalid" and res["reason"].startswith("attest.tdx.")
    # full 2023 collateral: the sample platform is below every TCB level (EXPECTED.md: NotSupported)
    col = tmp_path / "col"
    col.mkdir()
    c = TDX_DIR / "collateral"
    shutil.copy(c / "sample_tcbInfo_response", col / "tcb_info.json")
    shutil.copy(c / "sample_qeIdentity_response", col / "qe_identity.json")
    shutil.copy(c / "pckcrl", col / "pck_crl.der")
    shutil.copy(c / "rootcrl.der", col / "root_crl.der")
    shutil.copy(TDX_DIR / "derived" / "tcbInfoIssuerChain.pem", col / "tcb_info_issuer_chain.pem")
    shutil.copy(TDX_DIR / "derived" / "qeIdentityIssuerChain.pem", col / "qe_identity_issuer_chain.pem")
    rc, res = run_json(capsys, quote, "--now", "2023-07-01T01:00:00Z", "--collateral", str(col))
    assert rc == 1 and res["reason"] == "attest.tdx.tcb_status"
    # the fleet layout the key service reads: one set per FMSPC; this quote's is 50806f000000
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    shutil.copytree(col, fleet / "90c06f000000")
    rc, res = run_json(capsys, quote, "--now", "2023-07-01T01:00:00Z", "--collateral", str(fleet))
    assert rc == 1 and res["reason"] == "attest.tdx.collateral" and "50806f000000" in res["message"]
    shutil.copytree(col, fleet / "50806f000000")
    rc, res = run_json(capsys, quote, "--now", "2023-07-01T01:00:00Z", "--collateral", str(fleet))
    assert rc == 1 and res["reason"] == "attest.tdx.tcb_status"


def test_verify_gpu_hex_with_nonce(capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(NV / "hopperAttestationReport.txt"), "--certs", str(NV / "hopperCertChain.txt"),
            "--now", "2024-09-24T00:00:00Z"]
    rc, res = run_json(capsys, *args, "--gpu-nonce", GPU_NONCE)
    assert rc == 0 and res["claims"][0]["driver_version"] == "550.90.07"
    assert res["claims"][0]["vbios_version"] == "96.00.9f.00.01"
    rc, res = run_json(capsys, *args, "--gpu-nonce", "00" * 32)
    assert rc == 1 and res["reason"] == "attest.gpu.nonce"


def test_verify_gpu_legacy_with_rims(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    leg = NV / "legacy"
    rc, res = run_json(capsys, str(leg / "attestationReport.txt"), "--certs", str(leg / "gpuAkCertChain.txt"),
                       "--now", "2023-10-01T00:00:00Z",
                       "--gpu-nonce", "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e",
                       "--rim", str(leg / "Driver_RIM_test_no_gpu.swidtag"),
                       str(leg / "1010_0200_882_96005E0001_test_no_gpu.swidtag"))
    assert rc == 0, res
    assert res["claims"][0]["measurements_verified"] is True and res["claims"][0]["driver_version"] == "545.00"
    # --rim DIR: the pair is picked from a directory of RIMs by the report's versions
    rims = tmp_path / "rims"
    rims.mkdir()
    shutil.copy(leg / "Driver_RIM_test_no_gpu.swidtag", rims)
    rc, res = run_json(capsys, str(leg / "attestationReport.txt"), "--certs", str(leg / "gpuAkCertChain.txt"),
                       "--now", "2023-10-01T00:00:00Z", "--rim", str(rims))
    assert rc == 1 and res["reason"] == "attest.gpu.rim" and "no RIM for VBIOS version" in res["message"]
    shutil.copy(leg / "1010_0200_882_96005E0001_test_no_gpu.swidtag", rims)
    rc, res = run_json(capsys, str(leg / "attestationReport.txt"), "--certs", str(leg / "gpuAkCertChain.txt"),
                       "--now", "2023-10-01T00:00:00Z", "--rim", str(rims))
    assert rc == 0 and res["claims"][0]["measurements_verified"] is True


def test_verify_ppcie_evidence_list(capsys: pytest.CaptureFixture[str]) -> None:
    rc, res = run_json(capsys, str(NV / "ppcie" / "gpu_evidence.json"), "--now", "2025-06-01T00:00:00Z",
                       "--gpu-nonce", "4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e")
    assert rc == 0, res
    assert len(res["claims"]) == 8 and {c["ppcie"] for c in res["claims"]} == {True}


def test_mock_workflow(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = tmp_path / "mock.key"
    rc, out, err = run(capsys, "mock", "keygen", "--out", str(key))
    assert rc == 0 and "UNSAFE" in err and key.exists()
    pub = out.strip().split()[-1]
    assert len(bytes.fromhex(pub)) == 32
    rc, _, _ = run(capsys, "mock", "keygen", "--out", str(key))
    assert rc == 1  # refuses to overwrite
    nonce, hpke = "ab" * 32, "cd" * 32
    binding = ["--nonce", nonce, "--model-id", "m1", "--hpke-key", hpke]
    bundle = tmp_path / "mock.json"
    rc, _, err = run(capsys, "mock", "report", "--key", str(key), "--measurement", "11" * 48, *binding,
                     "--out", str(bundle))
    assert rc == 0 and "UNSAFE" in err
    rc, res = run_json(capsys, str(bundle), *binding)
    assert rc == 1 and res["reason"] == "attest.mock.not_allowed"
    rc, res = run_json(capsys, str(bundle), *binding, "--allow-mock", "--mock-key-pub", pub)
    assert rc == 0 and res["claims"][0]["report_data"] == report_data(bytes.fromhex(nonce), "m1", bytes.fromhex(hpke)).hex()
    rc, res = run_json(capsys, str(bundle), "--nonce", nonce, "--model-id", "m2", "--hpke-key", hpke, "--allow-mock")
    assert rc == 1 and res["reason"] == "attest.mock.binding"
    rc, res = run_json(capsys, str(bundle), *binding, "--allow-mock", "--mock-key-pub", "00" * 32)
    assert rc == 1 and res["reason"] == "attest.mock.untrusted_key"
    pol = tmp_path / "dev.json"
    pol.write_text(json.dumps({"version": 1, "model_versions": [1], "profiles": [
        {"platform": "mock", "measurements": ["11" * 48]}]}))
    rc, res = run_json(capsys, str(bundle), *binding, "--allow-mock", "--policy", str(pol), "--model-version", "1")
    assert rc == 0 and res["verdict"] == "allowed"
    # collect --attester mock writes the same kind of bundle
    out_b = tmp_path / "collected.json"
    rc, _, _ = run(capsys, "collect", "--attester", "mock", "--mock-key", str(key), "--measurement", "11" * 48,
                   "--gpus", "none", *binding, "--out", str(out_b))
    assert rc == 0
    rc, res = run_json(capsys, str(out_b), *binding, "--allow-mock", "--policy", str(pol), "--model-version", "1")
    assert rc == 0 and res["verdict"] == "allowed"


def test_collect_auto_without_tee(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if Path("/dev/sev-guest").exists():  # pragma: no cover - this test describes a non-TEE host
        pytest.fail("test host is an SNP guest; this test expects a machine without a TEE")
    rc, _, err = run(capsys, "collect", "--report-data", "00" * 64, "--configfs-root", str(tmp_path / "none"),
                     "--gpus", "none")
    assert rc == 1 and "attest.collect.no_tee" in err
    rc, out, _ = run(capsys, "detect", "--configfs-root", str(tmp_path / "none"))
    assert rc == 1 and "none found" in out


def test_policy_check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from weightseal.attest import Policy

    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nmodel_versions: [1]\nprofiles:\n  - platform: tdx\n    mrtd: ['" + TDX_MRTD + "']\n")
    rc, out, _ = run(capsys, "policy", "check", str(p), "--canonical")
    assert rc == 0 and f"digest: {Policy.load(p).digest}" in out and '"mrtd":["' + TDX_MRTD in out
    p.write_text("version: 1\nmodel_versions: [1]\nprofiles:\n  - platform: tdx\n    mrtd: ['" + TDX_MRTD + "']\n    x: 1\n")
    rc, out, _ = run(capsys, "policy", "check", str(p))
    assert rc == 1 and "policy.invalid" in out and "unknown field 'x'" in out


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\x00" * 10)
    rc, out, _ = run(capsys, "verify", str(raw))
    assert rc == 1 and "verdict: INVALID (attest.unsupported)" in out and "pass --platform" in out
    rc, _, err = run(capsys, "verify", str(GO / "attestation.bin"), "--nonce", "00" * 32)
    assert rc == 1 and "go together" in err
    rc, _, err = run(capsys, "verify", str(GO / "attestation.bin"), "--report-data", "00")
    assert rc == 1 and "64 bytes" in err


@pytest.mark.parametrize("envelope", ["azure_hcl", "msg_report_rsp"])
def test_cli_sniffs_and_verifies_snp_envelopes(tmp_path, capsys, envelope):
    from weightseal_cli import main

    d = Path(__file__).resolve().parents[1] / "data" / "attestation" / "snp" / "go-sev-guest"
    rep = (d / "attestation.bin").read_bytes()
    wrapped = (b"HCLA" + bytes(28) + rep + b"tail" if envelope == "azure_hcl"
               else (0).to_bytes(4, "little") + (1184).to_bytes(4, "little") + bytes(24) + rep)
    f = tmp_path / "report.bin"
    f.write_bytes(wrapped)
    rc = main(["attest", "verify", str(f), "--certs", str(d / "vcek.testcer"), "--now", "2023-01-01T00:00:00Z", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["verdict"] == "verified"
    assert out["claims"][0]["measurement"].startswith("b07af9620f3b839b")


def test_cli_reads_0x_prefixed_hex(tmp_path, capsys):
    from weightseal_cli import main

    d = Path(__file__).resolve().parents[1] / "data" / "attestation" / "tdx" / "go-tdx-guest"
    f = tmp_path / "quote.hex"
    f.write_text("0x" + (d / "quote_v5_sample.dat").read_bytes().hex() + "\n")
    rc = main(["attest", "verify", str(f), "--now", "2026-02-03T01:00:00Z", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["verdict"] == "verified" and out["claims"][0]["quote_version"] == 5
