"""Shared paths and loaders for the NVIDIA GPU verifier tests (imported by the test modules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent / "data" / "attestation" / "nvgpu"
NVTRUST = SHARED / "nvtrust"
TRUSTEE = SHARED / "trustee"
LEGACY = NVTRUST / "legacy"
BLACKWELL = SHARED / "trustee-blackwell"

# Inside the validity of the legacy RIM signer certificates (2023-06 .. 2025-06).
RIM_VALID_AT = datetime(2024, 1, 15, tzinfo=UTC)

HOPPER_NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")
LEGACY_NONCE = bytes.fromhex("4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e")
COCO_NONCE = bytes.fromhex("87d8e24ab336adafe228d49e83d745f6dba4ae505372b6a5704820856b343fec")
BLACKWELL_NONCE = bytes.fromhex("4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e")
PPCIE_NONCE = bytes.fromhex("4760e30534a0621357d458b1a7936551b5dc4cd1e69718adf7ed9fb0252a537e")


def rd(p: Path) -> bytes:
    return p.read_bytes()


def hopper() -> tuple[bytes, bytes]:
    return rd(NVTRUST / "hopperAttestationReport.txt"), rd(NVTRUST / "hopperCertChain.txt")


def blackwell() -> tuple[bytes, bytes]:
    """The real RTX PRO 6000 Blackwell sample (trustee; see PROVENANCE.md)."""
    return rd(BLACKWELL / "blackwellAttestationReport.txt"), rd(BLACKWELL / "blackwell_cert_chain_case1.txt")


def legacy() -> tuple[bytes, bytes]:
    return rd(LEGACY / "attestationReport.txt"), rd(LEGACY / "gpuAkCertChain.txt")


def legacy_rims() -> list[bytes]:
    return [rd(LEGACY / "Driver_RIM_test_no_gpu.swidtag"), rd(LEGACY / "1010_0200_882_96005E0001_test_no_gpu.swidtag")]


def ppcie() -> list[dict[str, str]]:
    data = json.loads((NVTRUST / "ppcie" / "gpu_evidence.json").read_text())
    assert isinstance(data, list)
    return data


GPU_REASONS = {
    "attest.gpu.parse",
    "attest.gpu.chain",
    "attest.gpu.fwid",
    "attest.gpu.signature",
    "attest.gpu.nonce",
    "attest.gpu.expired",
    "attest.gpu.rim",
    "attest.gpu.rim_expired",
    "attest.gpu.measurement",
    "attest.gpu.ocsp",
    "attest.gpu.revoked",
}
