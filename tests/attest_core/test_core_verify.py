"""The generic dispatcher and bundles, on real vendor evidence and mock evidence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from _attest_core_helpers import (
    GO_SNP_MEASUREMENT,
    GPU_NONCE,
    MOCK,
    T_GPU,
    T_SNP_GO,
    T_TDX_V4,
    TDX_DIR,
    TDX_MRTD,
    TDX_REPORT_DATA,
    gpu_evidence,
    snp_go_evidence,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from weightseal.attest import (
    AttestationError,
    BindingError,
    Evidence,
    EvidenceParseError,
    GpuClaims,
    MockNotAllowedError,
    Platform,
    SnpClaims,
    TdxClaims,
    dumps_bundle,
    gpu_nonce,
    load_bundle,
    loads_bundle,
    save_bundle,
    verify_bundle,
    verify_evidence,
)

GO_RD = bytes.fromhex("0102030405") + bytes(59)
RD = bytes(range(64))


def tdx_ev() -> Evidence:
    return Evidence(Platform.TDX, (TDX_DIR / "tdx_prod_quote_SPR_E4.dat").read_bytes())


def test_dispatch_real_snp() -> None:
    c = verify_evidence(snp_go_evidence(), expected_report_data=GO_RD, now=T_SNP_GO)
    assert isinstance(c, SnpClaims) and c.measurement.hex() == GO_SNP_MEASUREMENT
    with pytest.raises(BindingError) as ei:
        verify_evidence(snp_go_evidence(), expected_report_data=RD, now=T_SNP_GO)
    assert ei.value.reason == "attest.snp.binding"


def test_dispatch_real_tdx() -> None:
    c = verify_evidence(tdx_ev(), expected_report_data=bytes.fromhex(TDX_REPORT_DATA), now=T_TDX_V4)
    assert isinstance(c, TdxClaims) and c.mr_td.hex() == TDX_MRTD
    with pytest.raises(BindingError) as ei:
        verify_evidence(tdx_ev(), expected_report_data=RD, now=T_TDX_V4)
    assert ei.value.reason.startswith("attest.tdx.")


def test_dispatch_real_gpu_nonce_rules() -> None:
    # the real sample's nonce is not derived from any report_data of ours: binding must fail
    with pytest.raises(BindingError):
        verify_evidence(gpu_evidence(), expected_report_data=RD, now=T_GPU)
    c = verify_evidence(gpu_evidence(), expected_report_data=None, expected_gpu_nonce=bytes.fromhex(GPU_NONCE), now=T_GPU)
    assert isinstance(c, GpuClaims) and c.nonce.hex() == GPU_NONCE
    with pytest.raises(BindingError):
        verify_evidence(gpu_evidence(), expected_report_data=None, expected_gpu_nonce=bytes(32), now=T_GPU)
    with pytest.raises(BindingError):  # raw GPU nonce cannot be combined with report_data
        verify_evidence(gpu_evidence(), expected_report_data=RD, expected_gpu_nonce=bytes(32), now=T_GPU)


def test_gpu_nonce_is_derived_from_report_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import weightseal.attest._nvgpu as nv

    seen = {}

    def fake(report: bytes, certs: bytes, **kw: object) -> str:
        seen.update(kw)
        return "ok"

    monkeypatch.setattr(nv, "verify_gpu", fake)
    assert verify_evidence(Evidence(Platform.NVGPU, b"x", b"y"), expected_report_data=RD,
                           gpu_rims=[b"rim"]) == "ok"  # type: ignore[comparison-overlap]
    assert seen["expected_nonce"] == gpu_nonce(RD) and seen["rims"] == (b"rim",)


def test_bundle_shape_rules() -> None:
    mock_ev = MOCK.report(RD)
    gpu = gpu_evidence()
    for evs, reason in (([], "attest.bundle"), ([gpu], "attest.bundle"), ([mock_ev, mock_ev], "attest.bundle"),
                        ([mock_ev, tdx_ev()], "attest.bundle"), ([mock_ev] + [gpu] * 17, "attest.bundle")):
        with pytest.raises(AttestationError) as ei:
            verify_bundle(evs, RD, allow_mock=True)
        assert ei.value.reason == reason
    with pytest.raises(MockNotAllowedError):
        verify_bundle([mock_ev], RD)
    claims = verify_bundle([mock_ev], RD, allow_mock=True, mock_keys=[MOCK.public_key])
    assert [c.platform for c in claims] == [Platform.MOCK]


def test_bundle_with_real_cpu_and_duplicate_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import weightseal.attest._nvgpu as nv

    real = nv.verify_gpu

    def gpu_any_nonce(report: bytes, certs: bytes, **kw: object) -> GpuClaims:
        kw["expected_nonce"] = None  # the real sample's nonce is fixed; check everything else
        return real(report, certs, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(nv, "verify_gpu", gpu_any_nonce)
    claims = verify_bundle([snp_go_evidence(), gpu_evidence()], GO_RD, now=T_SNP_GO.replace(year=2024))
    assert [c.platform for c in claims] == [Platform.SNP, Platform.NVGPU]
    with pytest.raises(AttestationError) as ei:
        verify_bundle([snp_go_evidence(), gpu_evidence(), gpu_evidence()], GO_RD, now=T_SNP_GO.replace(year=2024))
    assert ei.value.reason == "attest.bundle"


def test_bundle_file_round_trip(tmp_path: Path) -> None:
    evs = [snp_go_evidence(), gpu_evidence()]
    f = tmp_path / "b.json"
    save_bundle(f, evs)
    assert load_bundle(f) == evs
    doc = json.loads(f.read_text())
    assert doc["version"] == 1 and doc["evidence"][0]["platform"] == "snp"
    assert base64.b64decode(doc["evidence"][0]["report"]) == evs[0].report
    assert loads_bundle(dumps_bundle([tdx_ev()]))[0].certs == b""


def _doc(**over: object) -> bytes:
    base: dict[str, object] = {"version": 1, "evidence": [{"platform": "tdx", "report": "AAAA"}]}
    base.update(over)
    return json.dumps(base).encode()


@pytest.mark.parametrize("data", [
    b"", b"[]", b"{", b"\xff", _doc(version=2), _doc(version=True), _doc(extra=1), _doc(evidence=[]),
    _doc(evidence=[{"platform": "sgx", "report": "AAAA"}]), _doc(evidence=[{"platform": "tdx"}]),
    _doc(evidence=[{"platform": "tdx", "report": "AAA"}]), _doc(evidence=[{"platform": "tdx", "report": "AAB="}]),
    _doc(evidence=[{"platform": "tdx", "report": ""}]), _doc(evidence=[{"platform": "tdx", "report": 5}]),
    _doc(evidence=[{"platform": "tdx", "report": "AAAA", "x": 1}]), _doc(evidence=["x"]),
    b'{"version":1,"version":1,"evidence":[]}', b"[" * 100000,
])
def test_bundle_strict(data: bytes) -> None:
    with pytest.raises(EvidenceParseError) as ei:
        loads_bundle(data)
    assert ei.value.reason == "attest.bundle"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_bundle_garbage_only_typed_errors(data: bytes) -> None:
    try:
        loads_bundle(data)
    except EvidenceParseError as exc:
        assert exc.reason == "attest.bundle"


def test_load_bundle_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvidenceParseError):
        load_bundle(tmp_path / "nope.json")
