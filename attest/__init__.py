"""weightseal.attest: evidence types, verifiers (SEV-SNP, TDX, NVIDIA GPU, software mock),
collectors, request binding and release policies.  Knows nothing of weights, keys or the wire."""

from ._binding import gpu_nonce, report_data
from ._claims import (
    Claims,
    CpuClaims,
    Evidence,
    GpuClaims,
    MockClaims,
    Platform,
    SnpClaims,
    SnpTcb,
    TdxClaims,
)
from ._collect import Detection, collect, detect
from ._errors import (
    AttestationError,
    BindingError,
    CertificateChainError,
    ClaimsError,
    CollateralError,
    CollectorError,
    EvidenceParseError,
    MockNotAllowedError,
    PolicyDenied,
    PolicyError,
    PolicyFormatError,
    SignatureError,
    TcbError,
    UnsupportedEvidenceError,
    WeightsealError,
)
from ._mock import UnsafeMockPlatform, verify_mock
from ._nvgpu import verify_gpu
from ._nvgpu_ocsp import NvidiaOcsp
from ._nvgpu_rim import NvidiaRimService, RimQuery, RimStore
from ._policy import Decision, Policy, evaluate, policy_from_claims
from ._snp import verify_snp
from ._snp_crl import SnpCrlDir, SnpCrlFile, SnpCrlStatus, check_snp_crl
from ._snp_kds import KdsClient
from ._tdx import verify_tdx
from ._tdx_collateral import TdxCollateral
from ._verify import (
    dumps_bundle,
    load_bundle,
    loads_bundle,
    save_bundle,
    verify_bundle,
    verify_evidence,
)

__all__ = [
    "AttestationError",
    "BindingError",
    "CertificateChainError",
    "Claims",
    "ClaimsError",
    "CollateralError",
    "CollectorError",
    "CpuClaims",
    "Decision",
    "Detection",
    "Evidence",
    "EvidenceParseError",
    "GpuClaims",
    "KdsClient",
    "MockClaims",
    "MockNotAllowedError",
    "NvidiaOcsp",
    "NvidiaRimService",
    "Platform",
    "Policy",
    "PolicyDenied",
    "PolicyError",
    "PolicyFormatError",
    "RimQuery",
    "RimStore",
    "SignatureError",
    "SnpClaims",
    "SnpCrlDir",
    "SnpCrlFile",
    "SnpCrlStatus",
    "SnpTcb",
    "TcbError",
    "TdxClaims",
    "TdxCollateral",
    "UnsafeMockPlatform",
    "UnsupportedEvidenceError",
    "WeightsealError",
    "check_snp_crl",
    "collect",
    "detect",
    "dumps_bundle",
    "evaluate",
    "policy_from_claims",
    "gpu_nonce",
    "load_bundle",
    "loads_bundle",
    "report_data",
    "save_bundle",
    "verify_bundle",
    "verify_evidence",
    "verify_gpu",
    "verify_mock",
    "verify_snp",
    "verify_tdx",
]
