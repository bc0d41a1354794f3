"""Shared helpers for tests/attest_core: real verified claims from the vendor samples and mock
claims.  (Not a conftest: the lead owns tests/conftest.py.)"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

from weightseal.attest import (
    Evidence,
    GpuClaims,
    MockClaims,
    Platform,
    SnpClaims,
    TdxClaims,
    UnsafeMockPlatform,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "attestation"
SNP_DIR = DATA / "snp"
TDX_DIR = DATA / "tdx" / "go-tdx-guest"
GPU_DIR = DATA / "nvgpu"

T_SNP_GO = dt.datetime(2022, 9, 24, 1, tzinfo=dt.UTC)
T_SNP_VIRTEE = dt.datetime(2024, 9, 24, 1, tzinfo=dt.UTC)
T_TDX_V4 = dt.datetime(2023, 7, 1, 1, tzinfo=dt.UTC)
T_TDX_V5 = dt.datetime(2026, 2, 3, 1, tzinfo=dt.UTC)
T_GPU = dt.datetime(2024, 9, 24, 1, tzinfo=dt.UTC)

GO_SNP_MEASUREMENT = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
GO_SNP_CHIP_ID = ("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea4"
                  "64cdce40c05f63c9b610c5068b006b5d")
VIRTEE_SNP_MEASUREMENT = "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
TDX_MRTD = "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"
TDX_MRSEAM = "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656"
TDX_REPORT_DATA = ("6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6"
                   "f0c87a6d766c66f6f29f8acb281f1113")
GPU_NONCE = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"

MOCK = UnsafeMockPlatform.from_seed(b"\x07" * 32)
MOCK_MEAS = bytes([0x11]) * 48


def snp_go_evidence() -> Evidence:
    d = SNP_DIR / "go-sev-guest"
    return Evidence(Platform.SNP, (d / "attestation.bin").read_bytes(),
                    (d / "vcek.testcer").read_bytes() + (d / "ask_ark_milan.pem").read_bytes())


def snp_virtee_evidence() -> Evidence:
    d = SNP_DIR / "virtee-sev"
    return Evidence(Platform.SNP, bytes.fromhex((d / "report_milan.hex").read_text().strip()),
                    (d / "vcek_milan.der").read_bytes())


@functools.lru_cache
def snp_go_claims() -> SnpClaims:
    from weightseal.attest._snp import verify_snp

    ev = snp_go_evidence()
    return verify_snp(ev.report, ev.certs, now=T_SNP_GO)


@functools.lru_cache
def snp_virtee_claims() -> SnpClaims:
    from weightseal.attest._snp import verify_snp

    ev = snp_virtee_evidence()
    return verify_snp(ev.report, ev.certs, now=T_SNP_VIRTEE)


@functools.lru_cache
def tdx_v4_claims() -> TdxClaims:
    from weightseal.attest._tdx import verify_tdx

    return verify_tdx((TDX_DIR / "tdx_prod_quote_SPR_E4.dat").read_bytes(), now=T_TDX_V4)


def tdx_v5_collateral() -> object:
    from weightseal.attest._tdx_collateral import TdxCollateral

    return TdxCollateral(tcb_info=(TDX_DIR / "collateral" / "sample_tcbinfo_response_v5").read_bytes(),
                         tcb_info_issuer_chain=(TDX_DIR / "derived" / "tcbInfoIssuerChain.pem").read_bytes(),
                         allow_partial=True)


@functools.lru_cache
def tdx_v5_claims_with_status() -> TdxClaims:
    from weightseal.attest._tdx import verify_tdx

    return verify_tdx((TDX_DIR / "quote_v5_sample.dat").read_bytes(), now=T_TDX_V5,
                      collateral=tdx_v5_collateral())  # type: ignore[arg-type]


def gpu_evidence() -> Evidence:
    d = GPU_DIR / "nvtrust"
    return Evidence(Platform.NVGPU, (d / "hopperAttestationReport.txt").read_bytes(),
                    (d / "hopperCertChain.txt").read_bytes())


@functools.lru_cache
def gpu_claims_unverified() -> GpuClaims:
    from weightseal.attest._nvgpu import verify_gpu

    ev = gpu_evidence()
    return verify_gpu(ev.report, ev.certs, now=T_GPU, expected_nonce=bytes.fromhex(GPU_NONCE))


@functools.lru_cache
def gpu_claims_verified() -> GpuClaims:
    """Real Hopper claims with measurements compared against reference values (its own)."""
    from weightseal.attest._nvgpu import verify_gpu

    ev = gpu_evidence()
    ref = {i: [v] for i, v in gpu_claims_unverified().measurements.items()}
    return verify_gpu(ev.report, ev.certs, now=T_GPU, expected_nonce=bytes.fromhex(GPU_NONCE), reference=ref)


def mock_claims(*, debug: bool = False, tcb: int = 5, measurement: bytes = MOCK_MEAS) -> MockClaims:
    from weightseal.attest import verify_mock

    return verify_mock(MOCK.report(bytes(64), measurement=measurement, debug=debug, tcb=tcb).report)
