"""Release policy: strict parsing, canonical digest, and the deny-by-default rule matrix.

Claims come from the REAL vendor samples (verified by the SNP/TDX/GPU verifiers at a time inside
their validity) wherever the sample has the property; a few variants are hand-built with
``dataclasses.replace`` on real claims (marked "hand-built") where no sample has the property.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
from typing import Any

import pytest
import yaml
from _attest_core_helpers import (
    GO_SNP_CHIP_ID,
    GO_SNP_MEASUREMENT,
    GPU_DIR,
    MOCK,
    MOCK_MEAS,
    T_GPU,
    TDX_MRSEAM,
    TDX_MRTD,
    VIRTEE_SNP_MEASUREMENT,
    gpu_claims_unverified,
    gpu_claims_verified,
    mock_claims,
    snp_go_claims,
    snp_virtee_claims,
    tdx_v4_claims,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from weightseal.attest import Decision, Policy, PolicyDenied, PolicyFormatError, evaluate
from weightseal.attest._claims import Claims

Z16, Z32, Z48 = "00" * 16, "00" * 32, "00" * 48
ONE16, ONE32, ONE48 = "00" * 15 + "01", "00" * 31 + "01", "00" * 47 + "01"


def pol(*profiles: dict[str, Any], model_versions: list[int] | None = None) -> Policy:
    return Policy.from_dict({"version": 1, "model_versions": model_versions if model_versions is not None else [1, 2],
                             "profiles": list(profiles)})


def deny(policy: Policy, claims: list[Claims], *, allow_mock: bool = False, mv: int = 1) -> PolicyDenied:
    with pytest.raises(PolicyDenied) as ei:
        evaluate(policy, claims, model_version=mv, allow_mock=allow_mock)
    return ei.value


def allow(policy: Policy, claims: list[Claims], *, allow_mock: bool = False, mv: int = 1) -> Decision:
    d = evaluate(policy, claims, model_version=mv, allow_mock=allow_mock)
    assert d.allowed is True
    return d


# ---------------------------------------------------------------------------------------------
# SNP: go-sev-guest attestation.bin (Milan, VCEK, debug on, SMT on, TCB bl2/tee0/snp5/ucode68)

SNP_BASE: dict[str, Any] = {"platform": "snp", "measurements": [GO_SNP_MEASUREMENT], "allow_debug": True}

SNP_MATRIX = [
    # (rule override, passes?, expected reason when it fails)
    ({"measurements": [VIRTEE_SNP_MEASUREMENT]}, "policy.measurement"),
    ({"allow_debug": False}, "policy.debug"),
    ({"vmpl": [1, 2, 3]}, "policy.vmpl"),
    ({"vmpl": []}, "policy.vmpl"),
    ({"signing_keys": ["vlek"]}, "policy.signing_key"),
    ({"signing_keys": []}, "policy.signing_key"),
    ({"products": ["Genoa", "Turin"]}, "policy.product"),
    ({"min_tcb": {"bootloader": 2, "tee": 0, "snp": 6, "microcode": 68}}, "policy.tcb"),
    ({"min_tcb": {"bootloader": 3, "tee": 0, "snp": 5, "microcode": 68}}, "policy.tcb"),
    ({"min_tcb": {"bootloader": 2, "tee": 1, "snp": 5, "microcode": 68}}, "policy.tcb"),
    ({"min_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 69}}, "policy.tcb"),
    ({"min_tcb": {"bootloader": 0, "tee": 0, "snp": 0, "microcode": 0, "fmc": 0}}, "policy.tcb"),  # Milan has no FMC
    ({"min_guest_svn": 1}, "policy.guest_svn"),
    ({"allow_smt": False}, "policy.smt"),
    ({"chip_ids": [GO_SNP_CHIP_ID[:-2] + "5e"]}, "policy.chip_id"),
    ({"chip_ids": []}, "policy.chip_id"),
    ({"host_data": [ONE32]}, "policy.host_data"),
    ({"host_data": []}, "policy.host_data"),
    ({"family_id": [ONE16]}, "policy.family_id"),
    ({"image_id": [ONE16]}, "policy.image_id"),
    ({"id_key_digests": [ONE48]}, "policy.id_key_digest"),
    ({"require_crl": True}, "policy.crl"),  # verified without an AMD CRL source
    ({"gpu": {"required": True}}, "policy.gpu.required"),
]

SNP_PASSING = [
    {},
    {"vmpl": [0]},
    {"vmpl": [0, 1]},
    {"signing_keys": ["vcek"]},
    {"products": ["Milan"]},
    {"min_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}},
    {"min_tcb": {"bootloader": 1, "tee": 0, "snp": 1, "microcode": 1}},
    {"min_guest_svn": 0},
    {"allow_smt": True},
    {"allow_migration_agent": False},
    {"chip_ids": [GO_SNP_CHIP_ID, ONE16 * 4]},
    {"host_data": [Z32]},
    {"family_id": [Z16]},
    {"image_id": [Z16]},
    {"id_key_digests": [Z48]},
    {"require_crl": False},
    {"gpu": {"required": False}},
]


@pytest.mark.parametrize(("override", "reason"), SNP_MATRIX, ids=[r for _, r in SNP_MATRIX])
def test_snp_rule_fails(override: dict[str, Any], reason: str) -> None:
    p = pol({**SNP_BASE, **override})
    d = deny(p, [snp_go_claims()])
    assert d.reason == reason
    assert d.rule.startswith("profiles[0].")


@pytest.mark.parametrize("override", SNP_PASSING, ids=["ok-" + (",".join(o) or "base") for o in SNP_PASSING])
def test_snp_rule_passes(override: dict[str, Any]) -> None:
    p = pol({**SNP_BASE, **override})
    d = allow(p, [snp_go_claims()])
    assert d.profile_index == 0
    assert d.measurement == GO_SNP_MEASUREMENT
    assert d.chip_id == GO_SNP_CHIP_ID
    assert d.tcb == "0x4405000000000002"
    assert d.policy_digest == p.digest
    assert d.platform == "snp"


def test_snp_debug_off_sample_passes_default_debug_rule() -> None:
    p = pol({"platform": "snp", "measurements": [VIRTEE_SNP_MEASUREMENT],
             "min_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}})
    d = allow(p, [snp_virtee_claims()])
    assert d.tcb == "0x7308000000000003"
    assert deny(p, [snp_go_claims()]).reason == "policy.measurement"


def test_snp_migration_agent_hand_built() -> None:
    c = dataclasses.replace(snp_go_claims(), migrate_ma=True)  # hand-built: no sample has MA
    assert deny(pol(SNP_BASE), [c]).reason == "policy.migration_agent"
    allow(pol({**SNP_BASE, "allow_migration_agent": True}), [c])


def test_snp_vlek_and_turin_fmc_hand_built() -> None:
    base = snp_go_claims()
    tcb = dataclasses.replace(base.reported_tcb, fmc=2)
    turin = dataclasses.replace(base, product="Turin", signing_key="vlek", reported_tcb=tcb)  # hand-built
    p = {**SNP_BASE, "products": ["Turin"], "signing_keys": ["vlek"]}
    allow(pol({**p, "min_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68, "fmc": 2}}), [turin])
    assert deny(pol({**p, "min_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68, "fmc": 3}}),
                [turin]).reason == "policy.tcb"


def test_masked_chip_id_not_in_decision() -> None:
    c = dataclasses.replace(snp_go_claims(), mask_chip_id=True, chip_id=bytes(64))  # hand-built
    assert allow(pol(SNP_BASE), [c]).chip_id is None


# ---------------------------------------------------------------------------------------------
# TDX: go-tdx-guest tdx_prod_quote_SPR_E4.dat (v4)

TDX_BASE: dict[str, Any] = {"platform": "tdx", "mrtd": [TDX_MRTD]}


def _rtmr(i: int) -> str:
    return tdx_v4_claims().rtmrs[i].hex()


TDX_MATRIX = [
    ({"mrtd": [ONE48]}, "policy.measurement"),
    ({"mrseam": [ONE48]}, "policy.tdx.mrseam"),
    ({"min_tee_tcb_svn": "03000400000000000000000000000011"}, "policy.tcb"),
    ({"min_tee_tcb_svn": "04000000000000000000000000000000"}, "policy.tcb"),
    ({"rtmr0": [ONE48]}, "policy.tdx.rtmr"),
    ({"rtmr3": [ONE48]}, "policy.tdx.rtmr"),
    ({"rtmr1": []}, "policy.tdx.rtmr"),
    ({"xfam": ["e71a060000000001"]}, "policy.tdx.xfam"),
    ({"mr_config_id": [ONE48]}, "policy.tdx.mr_config_id"),
    ({"mr_owner": [ONE48]}, "policy.tdx.mr_owner"),
    ({"tcb_status": ["UpToDate"]}, "policy.tdx.tcb_status"),  # verified without collateral: no status
    ({"gpu": {"required": True, "count": 1}}, "policy.gpu.required"),
]


@pytest.mark.parametrize(("override", "reason"), TDX_MATRIX, ids=[f"{r}-{i}" for i, (_, r) in enumerate(TDX_MATRIX)])
def test_tdx_rule_fails(override: dict[str, Any], reason: str) -> None:
    d = deny(pol({**TDX_BASE, **override}), [tdx_v4_claims()])
    assert d.reason == reason


def test_tdx_rule_passes() -> None:
    full = {**TDX_BASE, "mrseam": [TDX_MRSEAM], "min_tee_tcb_svn": "03000400000000000000000000000000",
            "xfam": ["e71a060000000000"], "mr_config_id": [Z48], "mr_owner": [Z48], "allow_debug": False,
            **{f"rtmr{i}": [_rtmr(i)] for i in range(4)}}
    d = allow(pol(full), [tdx_v4_claims()])
    assert d.measurement == TDX_MRTD and d.tcb == "03000400000000000000000000000000" and d.chip_id is None
    allow(pol(TDX_BASE), [tdx_v4_claims()])


def test_tdx_debug_and_tcb_status_hand_built() -> None:
    dbg = dataclasses.replace(tdx_v4_claims(), debug=True)  # hand-built: no debug TD sample
    assert deny(pol(TDX_BASE), [dbg]).reason == "policy.debug"
    allow(pol({**TDX_BASE, "allow_debug": True}), [dbg])
    up = dataclasses.replace(tdx_v4_claims(), tcb_status="UpToDate")  # hand-built status
    allow(pol({**TDX_BASE, "tcb_status": ["UpToDate", "SWHardeningNeeded"]}), [up])
    old = dataclasses.replace(tdx_v4_claims(), tcb_status="OutOfDate")
    assert deny(pol({**TDX_BASE, "tcb_status": ["UpToDate"]}), [old]).reason == "policy.tdx.tcb_status"


# ---------------------------------------------------------------------------------------------
# GPU: nvtrust hopperAttestationReport (H100, driver 550.90.07, VBIOS 96.00.9f.00.01)

CPU_PROFILE: dict[str, Any] = {"platform": "snp", "measurements": [VIRTEE_SNP_MEASUREMENT]}


def gpu_pol(**gpu: Any) -> Policy:
    return pol({**CPU_PROFILE, "gpu": {"required": True, **gpu}})


GPU_MATRIX = [
    ({"count": 2}, "verified", "policy.gpu.count"),
    ({}, "unverified", "policy.gpu.cc"),  # CC mode is only established by verified measurements
    ({"cc_required": False}, "unverified", "policy.gpu.measurements"),
    ({"driver_versions": ["550.90.08"]}, "verified", "policy.gpu.driver"),
    ({"driver_versions": []}, "verified", "policy.gpu.driver"),
    ({"min_driver_version": "550.90.8"}, "verified", "policy.gpu.driver"),
    ({"min_driver_version": "555"}, "verified", "policy.gpu.driver"),
    ({"vbios_versions": ["96.00.9f.00.02"]}, "verified", "policy.gpu.vbios"),
    ({"vbios_versions": []}, "verified", "policy.gpu.vbios"),
]


def _gpu(kind: str) -> Claims:
    return gpu_claims_verified() if kind == "verified" else gpu_claims_unverified()


@pytest.mark.parametrize(("gpu", "kind", "reason"), GPU_MATRIX, ids=[f"{r}-{i}" for i, (_, _, r) in enumerate(GPU_MATRIX)])
def test_gpu_rule_fails(gpu: dict[str, Any], kind: str, reason: str) -> None:
    d = deny(gpu_pol(**gpu), [snp_virtee_claims(), _gpu(kind)])
    assert d.reason == reason
    assert d.rule.startswith("profiles[0].gpu.")


@pytest.mark.parametrize("gpu", [
    {},
    {"driver_versions": ["550.90.07"], "vbios_versions": ["96.00.9F.00.01"]},
    {"min_driver_version": "550.90.7"},
    {"min_driver_version": "550"},
    {"count": 1, "cc_required": True, "measurements_verified_required": True},
])
def test_gpu_rule_passes(gpu: dict[str, Any]) -> None:
    d = allow(gpu_pol(**gpu), [snp_virtee_claims(), gpu_claims_verified()])
    assert d.gpus == ({"ak_serial": gpu_claims_verified().ak_serial, "driver_version": "550.90.07",
                       "vbios_version": "96.00.9f.00.01"},)


def test_gpu_unverified_allowed_only_when_owner_relaxes_it() -> None:
    p = gpu_pol(cc_required=False, measurements_verified_required=False)
    allow(p, [snp_virtee_claims(), gpu_claims_unverified()])


def test_gpu_rules_apply_to_present_gpus_even_when_not_required() -> None:
    p = pol({**CPU_PROFILE, "gpu": {"required": False, "driver_versions": ["1.0"]}})
    allow(p, [snp_virtee_claims()])
    assert deny(p, [snp_virtee_claims(), gpu_claims_verified()]).reason == "policy.gpu.driver"


def test_gpu_ppcie_real_sample() -> None:
    from weightseal.attest._nvgpu import verify_gpu

    item = json.loads((GPU_DIR / "nvtrust" / "ppcie" / "gpu_evidence.json").read_text())[0]
    c = verify_gpu(base64.b64decode(item["evidence"]), base64.b64decode(item["certificate"]), now=T_GPU)
    assert c.ppcie is True
    relaxed = {"cc_required": False, "measurements_verified_required": False}
    assert deny(gpu_pol(**relaxed), [snp_virtee_claims(), c]).reason == "policy.gpu.ppcie"
    allow(gpu_pol(**relaxed, allow_ppcie=True), [snp_virtee_claims(), c])


# ---------------------------------------------------------------------------------------------
# mock

MOCK_BASE: dict[str, Any] = {"platform": "mock", "measurements": [MOCK_MEAS.hex()]}


def test_mock_rules() -> None:
    c = mock_claims(tcb=5)
    allow(pol(MOCK_BASE), [c], allow_mock=True)
    allow(pol({**MOCK_BASE, "min_tcb": 5, "platform_keys": [MOCK.public_key.hex()]}), [c], allow_mock=True)
    assert deny(pol({**MOCK_BASE, "measurements": [Z48]}), [c], allow_mock=True).reason == "policy.measurement"
    assert deny(pol({**MOCK_BASE, "min_tcb": 6}), [c], allow_mock=True).reason == "policy.tcb"
    assert deny(pol({**MOCK_BASE, "platform_keys": [Z32]}), [c], allow_mock=True).reason == "policy.mock.platform_key"
    assert deny(pol({**MOCK_BASE, "platform_keys": []}), [c], allow_mock=True).reason == "policy.mock.platform_key"
    dbg = mock_claims(debug=True)
    assert deny(pol(MOCK_BASE), [dbg], allow_mock=True).reason == "policy.debug"
    allow(pol({**MOCK_BASE, "allow_debug": True}), [dbg], allow_mock=True)


def test_mock_profile_needs_allow_mock() -> None:
    d = deny(pol(MOCK_BASE), [mock_claims()], allow_mock=False)
    assert d.reason == "policy.mock_not_allowed"
    assert d.rule == "profiles[0].platform"
    # mock_dev demo helper
    p = Policy.mock_dev(MOCK_MEAS.hex(), model_versions=[3])
    assert allow(p, [mock_claims()], allow_mock=True, mv=3).profile_name == "mock-dev"
    assert deny(p, [mock_claims()], allow_mock=False, mv=3).reason == "policy.mock_not_allowed"
    assert deny(p, [mock_claims()], allow_mock=True, mv=1).reason == "policy.model_version"


# ---------------------------------------------------------------------------------------------
# deny by default, specificity


def test_deny_by_default() -> None:
    snp = snp_go_claims()
    assert deny(pol(), [snp]).reason == "policy.platform"  # no profiles
    assert deny(pol(TDX_BASE, MOCK_BASE), [snp], allow_mock=True).reason == "policy.platform"
    assert deny(pol(SNP_BASE, model_versions=[]), [snp]).reason == "policy.model_version"
    d = deny(pol(SNP_BASE, model_versions=[2]), [snp])
    assert (d.reason, d.rule) == ("policy.model_version", "model_versions")
    assert deny(pol(SNP_BASE), []).reason == "policy.claims"
    assert deny(pol(SNP_BASE), [gpu_claims_verified()]).reason == "policy.claims"
    assert deny(pol(SNP_BASE), [snp, snp]).reason == "policy.claims"
    assert deny(pol(SNP_BASE), [snp], mv=True).reason == "policy.model_version"  # type: ignore[arg-type]
    # empty required allowlists are rejected when the policy is parsed
    for prof in ({"platform": "snp", "measurements": []}, {"platform": "tdx", "mrtd": []},
                 {"platform": "mock", "measurements": []}, {"platform": "snp"}, {"platform": "tdx"}):
        with pytest.raises(PolicyFormatError) as ei:
            pol(prof)
        assert ei.value.reason == "policy.invalid"


def test_empty_allowlist_in_constructed_rules_still_denies() -> None:
    from weightseal.attest._policy import Profile, SnpRules

    p = Policy(model_versions=(1,), profiles=(Profile(platform=snp_go_claims().platform,
                                                      rules=SnpRules(measurements=(), allow_debug=True)),))
    assert deny(p, [snp_go_claims()]).reason == "policy.measurement"


def test_most_specific_failure_wins() -> None:
    snp = snp_go_claims()
    p = pol(TDX_BASE,
            {**SNP_BASE, "measurements": [ONE48]},
            {**SNP_BASE, "min_tcb": {"bootloader": 9, "tee": 0, "snp": 0, "microcode": 0}},
            {**SNP_BASE, "measurements": [Z48]})
    d = deny(p, [snp])
    assert (d.reason, d.rule) == ("policy.tcb", "profiles[2].min_tcb")
    # ties go to the lowest index
    d2 = deny(pol({**SNP_BASE, "vmpl": [3]}, {**SNP_BASE, "vmpl": [2]}), [snp])
    assert d2.rule == "profiles[0].vmpl"


def test_second_profile_matches() -> None:
    p = pol(TDX_BASE, {**SNP_BASE, "allow_debug": False}, {**SNP_BASE, "name": "debug-ok"})
    d = allow(p, [snp_go_claims()])
    assert (d.profile_index, d.profile_name) == (2, "debug-ok")
    assert d.to_dict()["profile_index"] == 2 and json.dumps(d.to_dict())


# ---------------------------------------------------------------------------------------------
# document: strict parsing, canonical form, digest

FULL: dict[str, Any] = {
    "version": 1,
    "description": "prod",
    "model_versions": [3, 4],
    "profiles": [
        {"platform": "snp", "name": "milan", "measurements": [GO_SNP_MEASUREMENT.upper()],
         "min_tcb": {"bootloader": 2, "tee": 0, "snp": 5, "microcode": 68}, "vmpl": [0], "chip_ids": [GO_SNP_CHIP_ID],
         "gpu": {"required": True, "count": 1, "driver_versions": ["550.90.07"], "vbios_versions": ["96.00.9F.00.01"]}},
        {"platform": "tdx", "mrtd": [TDX_MRTD], "rtmr2": [Z48], "min_tee_tcb_svn": "03000400000000000000000000000000",
         "tcb_status": ["UpToDate"]},
    ],
}


def test_canonical_form_is_normalised() -> None:
    p = Policy.from_dict(FULL)
    d = json.loads(p.canonical_json())
    s0 = d["profiles"][0]
    assert s0["measurements"] == [GO_SNP_MEASUREMENT]  # lower-cased
    assert s0["allow_debug"] is False and s0["signing_keys"] == ["vcek", "vlek"]  # defaults filled
    assert s0["gpu"]["vbios_versions"] == ["96.00.9f.00.01"] and s0["gpu"]["cc_required"] is True
    assert p.canonical_json() == json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    assert p.digest.startswith("sha256:") and len(p.digest) == 7 + 64
    # round trip through to_dict
    assert Policy.from_dict(p.to_dict()).digest == p.digest


def _shuffle_keys(o: Any) -> Any:
    if isinstance(o, dict):
        return {k: _shuffle_keys(o[k]) for k in reversed(list(o))}
    if isinstance(o, list):
        return [_shuffle_keys(x) for x in o]
    return o


def test_digest_stable_under_reordering_whitespace_and_format() -> None:
    ref = Policy.from_dict(FULL).digest
    assert Policy.loads(json.dumps(FULL)).digest == ref
    assert Policy.loads(json.dumps(_shuffle_keys(FULL), indent=7)).digest == ref
    assert Policy.loads(yaml.safe_dump(FULL, sort_keys=False)).digest == ref
    assert Policy.loads(yaml.safe_dump(_shuffle_keys(FULL), default_flow_style=True).encode()).digest == ref
    # explicit defaults = omitted defaults
    explicit = copy.deepcopy(FULL)
    explicit["profiles"][0].update(allow_debug=False, allow_smt=True, min_guest_svn=0)
    assert Policy.from_dict(explicit).digest == ref


def _paths(o: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(o, dict):
        return [p for k, v in o.items() for p in _paths(v, (*prefix, k))]
    if isinstance(o, list):
        return [p for i, v in enumerate(o) for p in _paths(v, (*prefix, i))]
    return [prefix]


LEAVES = [p for p in _paths(FULL) if p != ("version",) and p[-1] != "platform"]


def _mutate(v: Any, path: tuple[Any, ...]) -> Any:
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + (1 if "vmpl" in path else 10)
    assert isinstance(v, str)
    if all(c in "0123456789abcdefABCDEF" for c in v) and len(v) % 2 == 0 and len(v) >= 16:
        return ("1" if v[0] != "1" else "2") + v[1:]
    if v == "UpToDate":
        return "OutOfDate"
    return v + "1" if v[-1].isdigit() else v + "x"


@pytest.mark.parametrize("path", LEAVES, ids=["/".join(map(str, p)) for p in LEAVES])
def test_any_value_change_changes_digest(path: tuple[Any, ...]) -> None:
    doc = copy.deepcopy(FULL)
    node = doc
    for k in path[:-1]:
        node = node[k]
    before = node[path[-1]]
    node[path[-1]] = _mutate(before, path)
    if node[path[-1]] == before:
        pytest.fail(f"no mutation for {path}")
    assert Policy.from_dict(doc).digest != Policy.from_dict(FULL).digest


BAD_DOCS: list[tuple[str, Any]] = [
    ("not a mapping", [1, 2]),
    ("unknown top key", {**FULL, "extra": 1}),
    ("version 2", {**FULL, "version": 2}),
    ("version true", {**FULL, "version": True}),
    ("version string", {**FULL, "version": "1"}),
    ("missing profiles", {"version": 1, "model_versions": [1]}),
    ("model version bool", {**FULL, "model_versions": [True]}),
    ("model version negative", {**FULL, "model_versions": [-1]}),
    ("model version dup", {**FULL, "model_versions": [1, 1]}),
    ("profiles not list", {**FULL, "profiles": {"a": 1}}),
    ("unknown platform", {**FULL, "profiles": [{"platform": "sgx", "measurements": [Z48]}]}),
    ("unknown profile key", {**FULL, "profiles": [{**SNP_BASE, "mrtd": [Z48]}]}),
    ("tdx key in mock", {**FULL, "profiles": [{**MOCK_BASE, "vmpl": [0]}]}),
    ("short hex", {**FULL, "profiles": [{"platform": "snp", "measurements": ["00" * 47]}]}),
    ("bad hex", {**FULL, "profiles": [{"platform": "snp", "measurements": ["zz" * 48]}]}),
    ("0x hex", {**FULL, "profiles": [{"platform": "snp", "measurements": ["0x" + "00" * 47]}]}),
    ("int for hex", {**FULL, "profiles": [{"platform": "snp", "measurements": [0]}]}),
    ("bool for int", {**FULL, "profiles": [{**SNP_BASE, "min_guest_svn": True}]}),
    ("int for bool", {**FULL, "profiles": [{**SNP_BASE, "allow_debug": 1}]}),
    ("vmpl range", {**FULL, "profiles": [{**SNP_BASE, "vmpl": [4]}]}),
    ("bad signing key", {**FULL, "profiles": [{**SNP_BASE, "signing_keys": ["ark"]}]}),
    ("bad product", {**FULL, "profiles": [{**SNP_BASE, "products": ["Naples"]}]}),
    ("min_tcb missing", {**FULL, "profiles": [{**SNP_BASE, "min_tcb": {"bootloader": 1}}]}),
    ("min_tcb extra", {**FULL, "profiles": [{**SNP_BASE, "min_tcb": {"bootloader": 1, "tee": 1, "snp": 1,
                                                                      "microcode": 1, "x": 1}}]}),
    ("min_tcb range", {**FULL, "profiles": [{**SNP_BASE, "min_tcb": {"bootloader": 256, "tee": 1, "snp": 1,
                                                                      "microcode": 1}}]}),
    ("tdx svn length", {**FULL, "profiles": [{**TDX_BASE, "min_tee_tcb_svn": "0300"}]}),
    ("tdx bad status", {**FULL, "profiles": [{**TDX_BASE, "tcb_status": ["Fine"]}]}),
    ("rtmr4", {**FULL, "profiles": [{**TDX_BASE, "rtmr4": [Z48]}]}),
    ("gpu unknown", {**FULL, "profiles": [{**SNP_BASE, "gpu": {"required": True, "mig": 1}}]}),
    ("gpu count 0 required", {**FULL, "profiles": [{**SNP_BASE, "gpu": {"required": True, "count": 0}}]}),
    ("gpu driver version", {**FULL, "profiles": [{**SNP_BASE, "gpu": {"min_driver_version": "550.x"}}]}),
    ("gpu not mapping", {**FULL, "profiles": [{**SNP_BASE, "gpu": True}]}),
]


@pytest.mark.parametrize(("name", "doc"), BAD_DOCS, ids=[n for n, _ in BAD_DOCS])
def test_invalid_documents_rejected(name: str, doc: Any) -> None:
    with pytest.raises(PolicyFormatError) as ei:
        Policy.from_dict(doc)
    assert ei.value.reason == "policy.invalid"
    with pytest.raises(PolicyFormatError):
        Policy.loads(json.dumps(doc))


@pytest.mark.parametrize("text", [
    "", "null", "[", "{", "version: 1\nversion: 1\nmodel_versions: []\nprofiles: []\n",
    '{"version":1,"version":1,"model_versions":[],"profiles":[]}',
    "version: 1\nmodel_versions: []\nprofiles:\n - platform: snp\n   measurements: [" + "0" * 96 + "]\n",  # YAML int
    "!!python/object:os.system {}", "a: *b", "\udcff", "[" * 100000,
])
def test_malformed_text_rejected(text: str) -> None:
    with pytest.raises(PolicyFormatError) as ei:
        Policy.loads(text)
    assert ei.value.reason == "policy.invalid"


def test_loads_bytes_and_load_path(tmp_path: Any) -> None:
    with pytest.raises(PolicyFormatError):
        Policy.loads(b"\xff\xfe")
    with pytest.raises(PolicyFormatError):
        Policy.loads(b" " * (1 << 20 + 1))
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(FULL))
    assert Policy.load(f).digest == Policy.from_dict(FULL).digest
    with pytest.raises(PolicyFormatError):
        Policy.load(tmp_path / "missing.yaml")


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=20))
def test_from_dict_arbitrary_raises_only_policy_errors(doc: Any) -> None:
    try:
        Policy.from_dict(doc)
    except PolicyFormatError as exc:
        assert exc.reason == "policy.invalid"
