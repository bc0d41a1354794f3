"""Evidence and typed claims: the contract between verifiers, policy evaluation, the key
service (audit records) and the CLI.

A verifier takes an :class:`Evidence` and returns one of the ``*Claims`` classes below, or
raises an ``AttestationError``.  Claims are only ever produced by a verifier after every
signature and chain check passed; policy evaluation consumes them.  ``to_dict()`` gives a
JSON-safe view (bytes as lower-case hex) used by ``weightseal attest verify --json`` and by
audit records.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TDX_TCB_STATUSES",
    "Platform",
    "Evidence",
    "SnpTcb",
    "SnpClaims",
    "TdxClaims",
    "GpuClaims",
    "MockClaims",
    "Claims",
    "CpuClaims",
]

#: Intel's TCB level statuses (TCB Info / QE Identity collateral), in Intel's order.  The
#: collateral parser accepts only these; policies name them in ``tdx.tcb_status``.
TDX_TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)


class Platform(enum.StrEnum):
    SNP = "snp"
    TDX = "tdx"
    NVGPU = "nvgpu"
    MOCK = "mock"


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence as it travels from collector to verifier.

    ``report``: the raw blob (SNP ATTESTATION_REPORT, TDX quote, NVIDIA SPDM request+response,
    mock report).  ``certs``: platform-specific endorsement material supplied with it:
      * snp: VCEK/VLEK (DER or PEM), optionally followed by ASK/ASVK+ARK PEM, or the raw
        SNP extended-report certificate table (GUID table, as in configfs-tsm ``auxblob``);
      * nvgpu: the PEM device certificate chain (leaf first);
      * tdx: empty (the PCK chain is inside the quote) ;
      * mock: empty.
    """

    platform: Platform
    report: bytes
    certs: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "platform", Platform(self.platform))


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return bytes(v).hex()
    if isinstance(v, enum.Enum):
        return v.value
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


class _ClaimsBase:
    def to_dict(self) -> dict[str, Any]:
        out = _jsonable(self)
        assert isinstance(out, dict)
        return out


@dataclass(frozen=True)
class SnpTcb(_ClaimsBase):
    """TCB_VERSION (u64). Milan/Genoa: bootloader=byte0, tee=byte1, snp=byte6, microcode=byte7.
    Turin: fmc=byte0, bootloader=byte1, tee=byte2, snp=byte3, microcode=byte7."""

    raw: int
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None


@dataclass(frozen=True)
class SnpClaims(_ClaimsBase):
    platform: Platform
    version: int
    product: str  # "Milan" | "Genoa" | "Turin"
    signing_key: str  # "vcek" | "vlek"
    guest_svn: int
    policy: int  # raw GUEST_POLICY
    debug: bool
    migrate_ma: bool
    smt_allowed: bool
    single_socket: bool
    abi_major: int
    abi_minor: int
    family_id: bytes  # 16
    image_id: bytes  # 16
    vmpl: int
    signature_algo: int
    current_tcb: SnpTcb
    reported_tcb: SnpTcb
    committed_tcb: SnpTcb
    launch_tcb: SnpTcb
    platform_info: int
    author_key_en: bool
    mask_chip_id: bool  # CHIP_ID is all zeros (the host set MASK_CHIP_ID)
    report_data: bytes  # 64
    measurement: bytes  # 48
    host_data: bytes  # 32
    id_key_digest: bytes  # 48
    author_key_digest: bytes  # 48
    report_id: bytes  # 32
    report_id_ma: bytes  # 32
    chip_id: bytes  # 64 (all zero when masked)
    current_build: int
    current_major: int
    current_minor: int
    committed_build: int
    committed_major: int
    committed_minor: int
    cpuid_fam_id: int | None = None  # v3+
    cpuid_mod_id: int | None = None
    cpuid_step: int | None = None
    launch_mit_vector: int | None = None  # v5+
    current_mit_vector: int | None = None  # v5+
    product_name: str | None = None  # VCEK/VLEK productName extension, e.g. "Milan-B0"
    crl_checked: bool = False  # the operator's current ARK CRL was checked: ASK/ASVK not revoked


@dataclass(frozen=True)
class TdxClaims(_ClaimsBase):
    platform: Platform
    quote_version: int  # 4 | 5
    body_type: int  # 2 = TDX 1.0 (584 bytes), 3 = TDX 1.5 (648 bytes)
    tee_tcb_svn: bytes  # 16
    mr_seam: bytes  # 48
    mr_signer_seam: bytes  # 48
    seam_attributes: bytes  # 8
    td_attributes: bytes  # 8
    debug: bool  # TD_ATTRIBUTES bit 0 (TUD.DEBUG)
    xfam: bytes  # 8
    mr_td: bytes  # 48
    mr_config_id: bytes  # 48
    mr_owner: bytes  # 48
    mr_owner_config: bytes  # 48
    rtmrs: tuple[bytes, bytes, bytes, bytes]  # 4 x 48
    report_data: bytes  # 64
    qe_vendor_id: bytes  # 16
    qe_svn: int  # quote header QE SVN
    pce_svn: int  # quote header PCE SVN
    qe_report_isv_svn: int
    fmspc: bytes  # 6, from the PCK certificate SGX extensions
    pck_ppid: bytes  # 16
    pck_pcesvn: int
    pck_cpusvn: bytes  # 16
    tee_tcb_svn_2: bytes | None = None  # TDX 1.5 body only
    mr_service_td: bytes | None = None  # TDX 1.5 body only
    tcb_status: str | None = None  # from TCB Info collateral when supplied ("UpToDate", ...)
    tcb_date: str | None = None
    advisory_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuClaims(_ClaimsBase):
    platform: Platform
    architecture: str  # "hopper" | "blackwell"
    nonce: bytes  # 32, from the SPDM GET_MEASUREMENTS request
    driver_version: str
    vbios_version: str  # lower-case dotted, e.g. "96.00.9f.00.01"
    cc_enabled: bool | None  # from opaque data when present; None if the evidence does not say
    ppcie: bool  # protected-PCIe mode (FEATURE_FLAG / PROTECTED_PCIE_STATUS)
    measurements: dict[int, bytes]  # SPDM measurement index -> digest
    fwid: bytes | None  # from the signing cert FWID extension (Hopper) or opaque data
    board_id: bytes | None
    chip_sku: str | None
    project: str | None
    project_sku: str | None
    ak_serial: str  # hex serial of the attestation-key (leaf) certificate = ueid
    hwmodel: str | None = None
    measurements_verified: bool = False  # True once compared against RIM / reference values
    opaque: dict[str, str] = field(default_factory=dict)  # raw opaque fields, hex
    ocsp_checked: bool = False  # the device chain was checked with NVIDIA's OCSP responder: not revoked


@dataclass(frozen=True)
class MockClaims(_ClaimsBase):
    platform: Platform
    measurement: bytes  # 48
    report_data: bytes  # 64
    debug: bool
    tcb: int
    platform_key: bytes  # the Ed25519 public key that signed it (32)


CpuClaims = SnpClaims | TdxClaims | MockClaims
Claims = SnpClaims | TdxClaims | GpuClaims | MockClaims
