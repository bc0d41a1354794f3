"""AMD SEV-SNP ATTESTATION_REPORT parsing (SEV-SNP ABI spec, table "ATTESTATION_REPORT
Structure"; report versions 2, 3, 4 and 5).

Layout (0x4A0 bytes, little-endian integers)::

    0x000 VERSION u32            0x140 REPORT_ID[32]
    0x004 GUEST_SVN u32          0x160 REPORT_ID_MA[32]
    0x008 POLICY u64             0x180 REPORTED_TCB u64
    0x010 FAMILY_ID[16]          0x188 CPUID_FAM_ID u8   (v3+; reserved in v2)
    0x020 IMAGE_ID[16]           0x189 CPUID_MOD_ID u8   (v3+)
    0x030 VMPL u32               0x18A CPUID_STEP u8     (v3+)
    0x034 SIGNATURE_ALGO u32     0x18B..0x19F reserved, MBZ
    0x038 CURRENT_TCB u64        0x1A0 CHIP_ID[64]
    0x040 PLATFORM_INFO u64      0x1E0 COMMITTED_TCB u64
    0x048 KEY_INFO u32:          0x1E8 CURRENT_BUILD, _MINOR, _MAJOR u8; 0x1EB MBZ
          bit 0 AUTHOR_KEY_EN    0x1EC COMMITTED_BUILD, _MINOR, _MAJOR u8; 0x1EF MBZ
          bit 1 MASK_CHIP_KEY    0x1F0 LAUNCH_TCB u64
          bits 4:2 SIGNING_KEY   0x1F8 LAUNCH_MIT_VECTOR u64  (v5)
          bits 31:5 MBZ          0x200 CURRENT_MIT_VECTOR u64 (v5)
    0x04C reserved, MBZ          0x208..0x29F reserved, MBZ
    0x050 REPORT_DATA[64]        0x2A0 SIGNATURE: R[72] S[72] little-endian, then MBZ to 0x4A0
    0x090 MEASUREMENT[48]
    0x0C0 HOST_DATA[32]
    0x0E0 ID_KEY_DIGEST[48]
    0x110 AUTHOR_KEY_DIGEST[48]

The signature (ECDSA P-384 with SHA-384) covers bytes 0x000..0x29F.

Version 4 is accepted with the version-3 layout: AMD firmware emitted it between the v3 and v5
ABI revisions and both go-sev-guest and virtee/sev accept it.  The 16 bytes at 0x1F8 are
reported as mitigation vectors only for v5 and are not required to be zero for earlier versions
(firmware that predates them leaves them zero, and they are covered by the signature).

Reserved-bit policy: the MBZ ranges above are rejected when non-zero (as go-sev-guest does).
GUEST_POLICY (ABI spec table "Guest Policy Structure"): bits 7:0 ABI_MINOR, 15:8 ABI_MAJOR,
16 SMT, 17 reserved MUST BE ONE, 18 MIGRATE_MA, 19 DEBUG, 20 SINGLE_SOCKET, 21 CXL_ALLOW,
22 MEM_AES_256_XTS, 23 RAPL_DIS, 24 CIPHERTEXT_HIDING_DRAM, 25 PAGE_SWAP_DISABLE, 63:26 MBZ.
The firmware refuses to launch a guest with reserved policy bits set, so a set bit 63:26 means
a policy this verifier cannot interpret: it is rejected (fail closed, as go-sev-guest does).
PLATFORM_INFO (0 SMT_EN, 1 TSME_EN, 2 ECC_EN, 3 RAPL_DIS, 4 CIPHERTEXT_HIDING_EN,
5 ALIAS_CHECK_COMPLETE, 7 SEV_TIO_EN) describes the host, not the guest; its unknown bits are
passed on raw for the policy layer.

KEY_INFO bit 1 is MASK_CHIP_KEY (SNP_CONFIG.MaskChipKey): when set the firmware does not sign
the report with the VCEK and writes zeros into SIGNATURE.  It is NOT the CHIP_ID masking
(SNP_CONFIG.MaskChipId), which is not reported anywhere except that CHIP_ID reads as all zeros;
``mask_chip_id`` below is therefore "CHIP_ID is all zeros".
"""

from __future__ import annotations

import string
import struct
from dataclasses import dataclass

from ._errors import EvidenceParseError

__all__ = [
    "REPORT_SIZE",
    "SIGNED_LEN",
    "SIGNING_KEY_VCEK",
    "SIGNING_KEY_VLEK",
    "SIGNING_KEY_NONE",
    "SnpReport",
    "parse_snp_report",
    "decode_report_bytes",
    "cpuid_product",
]

REPORT_SIZE = 0x4A0
SIGNED_LEN = 0x2A0
SIG_OFF = 0x2A0
SIG_COMPONENT_LEN = 72  # R and S each occupy 72 bytes, little-endian (P-384 uses 48)
SIG_ALGO_ECDSA_P384_SHA384 = 1
SUPPORTED_VERSIONS = frozenset({2, 3, 4, 5})
SIGNING_KEY_VCEK = 0
SIGNING_KEY_VLEK = 1
SIGNING_KEY_NONE = 7
POLICY_RESERVED_ONE_BIT = 17
POLICY_SMT = 16
POLICY_MIGRATE_MA = 18
POLICY_DEBUG = 19
POLICY_SINGLE_SOCKET = 20
POLICY_CXL_ALLOW = 21
POLICY_MEM_AES_256_XTS = 22
POLICY_RAPL_DIS = 23
POLICY_CIPHERTEXT_HIDING_DRAM = 24
POLICY_PAGE_SWAP_DISABLE = 25
POLICY_MBZ_SHIFT = 26  # bits 63:26 are reserved, must be zero

_HEX = frozenset(string.hexdigits.encode())
_WS = b" \t\r\n"


def _perr(msg: str) -> EvidenceParseError:
    return EvidenceParseError(msg, reason="attest.snp.parse")


def _unwrap(raw: bytes) -> bytes | None:
    """The 1184-byte report inside the envelopes real guests hand out, or None.

    * the bare report (configfs-tsm ``outblob``);
    * MSG_REPORT_RSP as ``/dev/sev-guest`` returns it: u32 status (0), u32 report_size (1184),
      24 reserved zero bytes, then the report;
    * an Azure vTPM HCL report (magic ``HCLA``): the SNP report at offset 0x20;
    * a bare report followed by bytes that are not part of it (tools append padding or other
      data): the first 1184 bytes, when they start with a known report version.  Nothing after
      the report is signed, so nothing after it is used.
    """
    if len(raw) == REPORT_SIZE:
        return raw
    if len(raw) < REPORT_SIZE:
        return None
    if raw[:4] == b"HCLA" and len(raw) >= 0x20 + REPORT_SIZE:
        return raw[0x20:0x20 + REPORT_SIZE]
    if (len(raw) >= 0x20 + REPORT_SIZE and int.from_bytes(raw[0:4], "little") == 0
            and int.from_bytes(raw[4:8], "little") == REPORT_SIZE and not any(raw[8:0x20])):
        return raw[0x20:0x20 + REPORT_SIZE]
    if 2 <= int.from_bytes(raw[0:4], "little") <= 5:
        return raw[:REPORT_SIZE]
    return None


def decode_report_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    """Raw 1184-byte report from raw binary or ASCII hex (whitespace ignored), unwrapped from
    the envelopes listed in :func:`_unwrap`."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise _perr("report is neither binary nor ASCII hex") from None
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _perr("report must be bytes")
    raw = bytes(data)
    if len(raw) > 16 * REPORT_SIZE:
        raise _perr(f"report is {len(raw)} bytes, expected {REPORT_SIZE}")
    compact = bytes(b for b in raw if b not in _WS)
    if compact[:2] in (b"0x", b"0X"):
        compact = compact[2:]
    if len(compact) >= 2 * REPORT_SIZE and len(compact) % 2 == 0 and all(b in _HEX for b in compact):
        raw = bytes.fromhex(compact.decode("ascii"))
    out = _unwrap(raw)
    if out is None:
        raise _perr(f"report is {len(raw)} bytes, expected {REPORT_SIZE} (or {2 * REPORT_SIZE} hex digits)")
    return out


def cpuid_product(fam: int, mod: int) -> str | None:
    """SEV-SNP product from the CPUID family/model bytes of a v3+ report (None if unknown)."""
    if fam == 0x19:
        if mod <= 0x0F:
            return "Milan"
        if 0x10 <= mod <= 0x1F or 0xA0 <= mod <= 0xAF:
            return "Genoa"
    if fam == 0x1A and mod <= 0x11:
        return "Turin"
    return None


@dataclass(frozen=True)
class SnpReport:
    """A parsed (NOT yet verified) ATTESTATION_REPORT.  TCB values are raw u64s here; they are
    decoded once the product (Milan/Genoa vs Turin layout) is known."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    signer_info: int
    author_key_en: bool
    mask_chip_id: bool  # CHIP_ID is all zeros (SNP_CONFIG.MaskChipId, or a VLEK host)
    signing_key: int  # 0 VCEK, 1 VLEK, 7 none
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_fam_id: int | None
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: int
    launch_mit_vector: int | None
    current_mit_vector: int | None
    sig_r: int
    sig_s: int
    mask_chip_key: bool = False  # KEY_INFO bit 1: firmware did not sign (SIGNATURE is zero)

    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_LEN]

    def policy_bit(self, bit: int) -> bool:
        return bool(self.policy >> bit & 1)

    @property
    def signature_is_zero(self) -> bool:
        return not any(self.raw[SIG_OFF:REPORT_SIZE])

    @property
    def cpuid_product(self) -> str | None:
        if self.cpuid_fam_id is None or self.cpuid_mod_id is None:
            return None
        return cpuid_product(self.cpuid_fam_id, self.cpuid_mod_id)

    @property
    def signing_key_name(self) -> str:
        return {SIGNING_KEY_VCEK: "vcek", SIGNING_KEY_VLEK: "vlek"}.get(self.signing_key, "none")


def _mbz(raw: bytes, lo: int, hi: int) -> None:
    if any(raw[lo:hi]):
        raise _perr(f"reserved bytes 0x{lo:X}..0x{hi - 1:X} are not zero")


def parse_snp_report(data: bytes | bytearray | memoryview | str) -> SnpReport:
    """Step 1: parse the 1184-byte report (raw or hex) with bounds and reserved-field checks.

    Raises only ``EvidenceParseError(reason="attest.snp.parse")``.
    """
    raw = decode_report_bytes(data)

    def u32(off: int) -> int:
        return int(struct.unpack_from("<I", raw, off)[0])

    def u64(off: int) -> int:
        return int(struct.unpack_from("<Q", raw, off)[0])

    version = u32(0x00)
    if version not in SUPPORTED_VERSIONS:
        raise _perr(f"unsupported report version {version}")
    policy = u64(0x08)
    if not policy >> POLICY_RESERVED_ONE_BIT & 1:
        raise _perr("GUEST_POLICY bit 17 (reserved, must be one) is zero")
    if policy >> POLICY_MBZ_SHIFT:
        raise _perr(f"GUEST_POLICY reserved bits 63:26 are not zero (0x{policy:016X})")
    sig_algo = u32(0x34)
    if sig_algo != SIG_ALGO_ECDSA_P384_SHA384:
        raise _perr(f"unsupported SIGNATURE_ALGO {sig_algo}")
    vmpl = u32(0x30)
    if vmpl > 3:
        raise _perr(f"VMPL {vmpl} out of range")

    # Step 2: KEY_INFO: AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY.
    signer_info = u32(0x48)
    if signer_info >> 5:
        raise _perr("signer info bits 31:5 are reserved and not zero")
    signing_key = (signer_info >> 2) & 7
    if signing_key == SIGNING_KEY_NONE:
        raise _perr("report is unsigned (SIGNING_KEY = none)")
    if signing_key not in (SIGNING_KEY_VCEK, SIGNING_KEY_VLEK):
        raise _perr(f"SIGNING_KEY {signing_key} is reserved")
    _mbz(raw, 0x4C, 0x50)

    if version >= 3:
        fam, mod, step = raw[0x188], raw[0x189], raw[0x18A]
        cpuid: tuple[int | None, int | None, int | None] = (fam, mod, step)
        _mbz(raw, 0x18B, 0x1A0)
    else:
        cpuid = (None, None, None)
        _mbz(raw, 0x188, 0x1A0)
    _mbz(raw, 0x1EB, 0x1EC)
    _mbz(raw, 0x1EF, 0x1F0)
    _mbz(raw, 0x208, SIG_OFF)
    sig = raw[SIG_OFF : SIG_OFF + 2 * SIG_COMPONENT_LEN]
    _mbz(raw, SIG_OFF + 2 * SIG_COMPONENT_LEN, REPORT_SIZE)
    mit = (u64(0x1F8), u64(0x200)) if version >= 5 else (None, None)

    return SnpReport(
        raw=raw,
        version=version,
        guest_svn=u32(0x04),
        policy=policy,
        family_id=raw[0x10:0x20],
        image_id=raw[0x20:0x30],
        vmpl=vmpl,
        signature_algo=sig_algo,
        current_tcb=u64(0x38),
        platform_info=u64(0x40),
        signer_info=signer_info,
        author_key_en=bool(signer_info & 1),
        mask_chip_id=not any(raw[0x1A0:0x1E0]),
        mask_chip_key=bool(signer_info & 2),
        signing_key=signing_key,
        report_data=raw[0x50:0x90],
        measurement=raw[0x90:0xC0],
        host_data=raw[0xC0:0xE0],
        id_key_digest=raw[0xE0:0x110],
        author_key_digest=raw[0x110:0x140],
        report_id=raw[0x140:0x160],
        report_id_ma=raw[0x160:0x180],
        reported_tcb=u64(0x180),
        cpuid_fam_id=cpuid[0],
        cpuid_mod_id=cpuid[1],
        cpuid_step=cpuid[2],
        chip_id=raw[0x1A0:0x1E0],
        committed_tcb=u64(0x1E0),
        current_build=raw[0x1E8],
        current_minor=raw[0x1E9],
        current_major=raw[0x1EA],
        committed_build=raw[0x1EC],
        committed_minor=raw[0x1ED],
        committed_major=raw[0x1EE],
        launch_tcb=u64(0x1F0),
        launch_mit_vector=mit[0],
        current_mit_vector=mit[1],
        sig_r=int.from_bytes(sig[:SIG_COMPONENT_LEN], "little"),
        sig_s=int.from_bytes(sig[SIG_COMPONENT_LEN:], "little"),
    )
