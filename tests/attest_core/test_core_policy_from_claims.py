"""policy_from_claims / ``attest verify --write-policy``: a policy derived from golden evidence
admits that evidence and refuses other real evidence, with the rule that tells them apart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from _attest_core_helpers import (
    T_TDX_V5,
    TDX_DIR,
    TDX_MRTD,
    VIRTEE_SNP_MEASUREMENT,
    gpu_claims_unverified,
    gpu_claims_verified,
    mock_claims,
    snp_go_claims,
    snp_virtee_claims,
    tdx_v4_claims,
)
from weightseal.attest import Policy, evaluate
from weightseal.attest._claims import TdxClaims
from weightseal.attest._errors import PolicyDenied, PolicyFormatError
from weightseal.attest._policy import policy_from_claims

import weightseal_cli


def tdx_v5_claims() -> TdxClaims:
    from weightseal.attest._tdx import verify_tdx

    return verify_tdx((TDX_DIR / "quote_v5_sample.dat").read_bytes(), now=T_TDX_V5)


def _denied(policy: Policy, claims: list, version: int = 1) -> str:  # type: ignore[type-arg]
    with pytest.raises(PolicyDenied) as ei:
        evaluate(policy, claims, model_version=version, allow_mock=True)
    return str(ei.value.reason)


def test_snp_golden_policy_admits_its_evidence_only() -> None:
    golden = snp_virtee_claims()
    pol = policy_from_claims([golden], model_versions=[1, 2])
    prof = pol.to_dict()["profiles"][0]
    t = golden.reported_tcb
    assert prof["measurements"] == [VIRTEE_SNP_MEASUREMENT]
    assert prof["min_tcb"] == {"bootloader": t.bootloader, "tee": t.tee, "snp": t.snp, "microcode": t.microcode}
    assert (prof["vmpl"], prof["signing_keys"], prof["products"]) == ([golden.vmpl], ["vcek"], ["Milan"])
    assert "chip_ids" not in prof  # any machine running the image, not just the reference one
    d = evaluate(pol, [golden], model_version=2, allow_mock=False)
    assert d.allowed and d.profile_index == 0 and d.measurement == VIRTEE_SNP_MEASUREMENT
    assert _denied(pol, [golden], version=3) == "policy.model_version"
    assert _denied(pol, [snp_go_claims()]) == "policy.measurement"  # another real guest
    # the same image on a platform one SVN below the reference is refused on its TCB
    older = dataclasses.replace(golden, reported_tcb=dataclasses.replace(t, snp=t.snp - 1))
    assert _denied(pol, [older]) == "policy.tcb"


def test_tdx_golden_policy_pins_mrtd_rtmr0_2_and_seam() -> None:
    golden = tdx_v4_claims()
    pol = policy_from_claims([golden], model_versions=[1])
    prof = pol.to_dict()["profiles"][0]
    assert prof["mrtd"] == [TDX_MRTD] and prof["mrseam"] == [golden.mr_seam.hex()]
    assert [prof[f"rtmr{i}"] for i in range(3)] == [[golden.rtmrs[i].hex()] for i in range(3)]
    assert "rtmr3" not in prof and "tcb_status" not in prof  # verified without collateral
    assert prof["min_tee_tcb_svn"] == golden.tee_tcb_svn.hex()
    assert evaluate(pol, [golden], model_version=1, allow_mock=False).allowed
    assert _denied(pol, [tdx_v5_claims()]) == "policy.measurement"  # another real TD
    rt = list(golden.rtmrs)
    rt[1] = bytes(48)
    assert _denied(pol, [dataclasses.replace(golden, rtmrs=tuple(rt))]) == "policy.tdx.rtmr"
    # verified with collateral, the reference's TCB status is pinned too
    with_status = dataclasses.replace(golden, tcb_status="UpToDate")
    pol5 = policy_from_claims([with_status], model_versions=[1])
    assert pol5.to_dict()["profiles"][0]["tcb_status"] == [with_status.tcb_status]
    assert evaluate(pol5, [with_status], model_version=1, allow_mock=False).allowed


def test_gpu_section_from_golden_gpus() -> None:
    cpu = mock_claims()
    gpu = gpu_claims_verified()
    pol = policy_from_claims([cpu, gpu], model_versions=[1])
    g = pol.to_dict()["profiles"][0]["gpu"]
    assert (g["required"], g["count"], g["driver_versions"], g["vbios_versions"]) == (
        True, 1, [gpu.driver_version], [gpu.vbios_version])
    assert g["measurements_verified_required"] is True
    assert evaluate(pol, [cpu, gpu], model_version=1, allow_mock=True).allowed
    assert _denied(pol, [cpu]) == "policy.gpu.required"  # no GPU at all
    # unverified measurements: CC mode is not established (it rests on the golden values)
    assert _denied(pol, [cpu, gpu_claims_unverified()]) == "policy.gpu.cc"


@pytest.mark.parametrize("bad", ["debug", "gpu_first", "empty", "two_cpus"])
def test_refused_inputs(bad: str) -> None:
    claims = {"debug": [mock_claims(debug=True)], "gpu_first": [gpu_claims_verified(), mock_claims()],
              "empty": [], "two_cpus": [mock_claims(), mock_claims()]}[bad]
    with pytest.raises(PolicyFormatError) as ei:
        policy_from_claims(claims, model_versions=[1])
    assert ei.value.reason == "policy.invalid"


def test_cli_write_policy_then_verify_against_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    quote = str(TDX_DIR / "tdx_prod_quote_SPR_E4.dat")
    out = tmp_path / "policy.json"
    now = ["--now", "2023-07-01T01:00:00Z"]
    assert weightseal_cli.main(["attest", "verify", quote, *now, "--write-policy", str(out),
                                "--model-versions", "1,2"]) == 0
    text = capsys.readouterr().out
    pol = Policy.load(out)
    assert f"policy written to {out} ({pol.digest})" in text
    assert json.loads(out.read_text())["profiles"][0]["mrtd"] == [TDX_MRTD]
    assert weightseal_cli.main(["attest", "policy", "check", str(out)]) == 0
    assert f"digest: {pol.digest}" in capsys.readouterr().out
    assert weightseal_cli.main(["attest", "verify", quote, *now, "--policy", str(out), "--model-version", "2"]) == 0
    assert "verdict: ALLOWED" in capsys.readouterr().out
    v5 = str(TDX_DIR / "quote_v5_sample.dat")
    assert weightseal_cli.main(["attest", "verify", v5, "--now", "2026-02-03T01:00:00Z", "--policy", str(out),
                                "--model-version", "1"]) == 1
    assert "policy.measurement" in capsys.readouterr().out
    # never overwrites; needs the versions; a failed verification writes nothing
    assert weightseal_cli.main(["attest", "verify", quote, *now, "--write-policy", str(out),
                                "--model-versions", "1"]) != 0
    assert "refusing to overwrite" in capsys.readouterr().err
    other = tmp_path / "other.json"
    assert weightseal_cli.main(["attest", "verify", quote, *now, "--write-policy", str(other)]) != 0
    assert "--model-versions" in capsys.readouterr().err
    assert weightseal_cli.main(["attest", "verify", quote, "--now", "2053-07-01T01:00:00Z",
                                "--write-policy", str(other), "--model-versions", "1"]) == 1
    assert not other.exists()
