"""AMD SEV-SNP attestation report verifier.

``verify_snp`` follows AMD's SEV-SNP ABI specification (ATTESTATION_REPORT structure) and the
VCEK/VLEK certificate specification.  The steps are numbered in the code:

1. Parse the 1184-byte report (v2, v3, v4, v5; raw or ASCII hex): ``_snp_report``.
2. Signing key from KEY_INFO (VCEK=0, VLEK=1; none=7 and reserved values are rejected),
   MASK_CHIP_KEY (the firmware then writes a zero signature: rejected in step 6),
   AUTHOR_KEY_EN.
3. Endorsement certificates from ``certs`` (DER/PEM leaf, PEM bundle, or extended-report
   certificate table); if no leaf is supplied and ``kds`` is configured, the VCEK is fetched
   from AMD KDS.  Missing -> ``attest.snp.chain``.
4. Chain: VCEK -> ASK -> ARK or VLEK -> ASVK -> ARK, to the PINNED AMD certificates, every
   signature RSASSA-PSS/SHA-384 (salt 48); supplied ASK/ARK must equal the pinned ones;
   validity at ``now`` (``attest.snp.expired``); product from the chain, checked against the
   productName extension, the report's CPUID (v3+) and the caller's ``product``
   (``attest.snp.product``).
5. VCEK/VLEK extensions: bl/tee/snp/ucode (+fmc on Turin) must equal REPORTED_TCB
   (``attest.snp.tcb_mismatch``); a VCEK's hwID must equal CHIP_ID (the first 8 bytes on
   Turin) unless CHIP_ID is all zeros because the host set MASK_CHIP_ID
   (``attest.snp.chip_id``); the VCEK signature in step 6 still binds the report to the chip.
6. Signature: ECDSA P-384 / SHA-384 over bytes 0x000..0x29F, R and S little-endian 72-byte
   fields (``attest.snp.signature``); an all-zero SIGNATURE (MASK_CHIP_KEY) is rejected.
7. Binding: REPORT_DATA must equal ``expected_report_data`` when given (``attest.snp.binding``).
8. Revocation (``_snp_crl``): with a ``crl`` source, the product's ARK CRL must be authentic,
   current (``attest.snp.crl`` / ``attest.snp.crl_expired``) and must not list the chain's
   ASK/ASVK (``attest.snp.revoked``); the claims then say ``crl_checked=True``.  A CRL carried
   in the certificate table is also honoured, but only to deny.

Debug, VMPL, measurement, minimum TCB and so on are policy questions and are left to the policy
layer; they are all in the returned :class:`SnpClaims`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._binding import check_report_data
from ._claims import Platform, SnpClaims, SnpTcb
from ._errors import (
    AttestationError,
    CertificateChainError,
    ClaimsError,
    CollateralError,
    EvidenceParseError,
    SignatureError,
    TcbError,
)
from ._snp_certs import (
    SnpCertBundle,
    SnpEndorsement,
    SnpTrustRoots,
    check_product,
    load_leaf_der,
    normalize_product,
    select_and_verify,
    split_snp_certs,
)
from ._snp_crl import SnpCrlSource, check_snp_crl
from ._snp_kds import KdsClient
from ._snp_report import SIGNING_KEY_VLEK, SnpReport, parse_snp_report
from ._x509util import verify_ecdsa

__all__ = ["verify_snp", "decode_tcb", "snp_claims_from_report", "SNP_REASONS"]

_P384_MAX = 1 << 384
# Every reason code verify_snp raises.
SNP_REASONS = (
    "attest.snp.parse",
    "attest.snp.chain",
    "attest.snp.signature",
    "attest.snp.tcb_mismatch",
    "attest.snp.chip_id",
    "attest.snp.binding",
    "attest.snp.expired",
    "attest.snp.product",
    "attest.snp.crl",
    "attest.snp.crl_expired",
    "attest.snp.revoked",
)


def decode_tcb(raw: int, product: str) -> SnpTcb:
    """TCB_VERSION u64 -> fields.  Milan/Genoa: bl=byte0, tee=byte1, snp=byte6, ucode=byte7.
    Turin: fmc=byte0, bl=byte1, tee=byte2, snp=byte3, ucode=byte7."""
    b = raw.to_bytes(8, "little")
    if product == "Turin":
        return SnpTcb(raw=raw, bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
    return SnpTcb(raw=raw, bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])


def snp_claims_from_report(
    rep: SnpReport, product: str, product_name: str | None = None, *, crl_checked: bool = False
) -> SnpClaims:
    """Build claims from a report whose signature and chain were already verified."""
    return SnpClaims(
        platform=Platform.SNP,
        version=rep.version,
        product=product,
        signing_key=rep.signing_key_name,
        guest_svn=rep.guest_svn,
        policy=rep.policy,
        debug=bool(rep.policy >> 19 & 1),
        migrate_ma=bool(rep.policy >> 18 & 1),
        smt_allowed=bool(rep.policy >> 16 & 1),
        single_socket=bool(rep.policy >> 20 & 1),
        abi_major=rep.policy >> 8 & 0xFF,
        abi_minor=rep.policy & 0xFF,
        family_id=rep.family_id,
        image_id=rep.image_id,
        vmpl=rep.vmpl,
        signature_algo=rep.signature_algo,
        current_tcb=decode_tcb(rep.current_tcb, product),
        reported_tcb=decode_tcb(rep.reported_tcb, product),
        committed_tcb=decode_tcb(rep.committed_tcb, product),
        launch_tcb=decode_tcb(rep.launch_tcb, product),
        platform_info=rep.platform_info,
        author_key_en=rep.author_key_en,
        mask_chip_id=rep.mask_chip_id,
        report_data=rep.report_data,
        measurement=rep.measurement,
        host_data=rep.host_data,
        id_key_digest=rep.id_key_digest,
        author_key_digest=rep.author_key_digest,
        report_id=rep.report_id,
        report_id_ma=rep.report_id_ma,
        chip_id=rep.chip_id,
        current_build=rep.current_build,
        current_major=rep.current_major,
        current_minor=rep.current_minor,
        committed_build=rep.committed_build,
        committed_major=rep.committed_major,
        committed_minor=rep.committed_minor,
        cpuid_fam_id=rep.cpuid_fam_id,
        cpuid_mod_id=rep.cpuid_mod_id,
        cpuid_step=rep.cpuid_step,
        launch_mit_vector=rep.launch_mit_vector,
        current_mit_vector=rep.current_mit_vector,
        product_name=product_name,
        crl_checked=crl_checked,
    )


def _kds_leaf(rep: SnpReport, kds: KdsClient, products: list[str]) -> SnpCertBundle:
    """Step 3 (fallback): fetch the VCEK for this chip and REPORTED_TCB from AMD KDS."""
    if rep.signing_key == SIGNING_KEY_VLEK:
        raise CertificateChainError("no VLEK certificate supplied (KDS does not serve VLEKs)", reason="attest.snp.chain")
    if rep.mask_chip_id:
        raise CertificateChainError(
            "no VCEK supplied and CHIP_ID is masked, so KDS cannot be asked", reason="attest.snp.chain"
        )
    for product in products:
        try:
            der = kds.fetch_vcek(product, rep.chip_id, decode_tcb(rep.reported_tcb, product))
        except CollateralError:
            continue
        bundle = SnpCertBundle()
        der, cert = load_leaf_der(der)
        bundle.leaves.append(("vcek", der, cert))
        return bundle
    raise CertificateChainError("no VCEK supplied and KDS did not provide one", reason="attest.snp.chain")


def _verify(
    report: bytes,
    certs: bytes,
    now: datetime | None,
    expected_report_data: bytes | None,
    kds: KdsClient | None,
    product: str | None,
    trust_roots: SnpTrustRoots | None,
    crl: SnpCrlSource | None = None,
) -> SnpClaims:
    # 1. Parse the report (raw or hex) with bounds and reserved-field checks.
    rep = parse_snp_report(report)

    # 2. Signing key (VCEK/VLEK; none and reserved values rejected by the parser).
    key_type = rep.signing_key_name

    want_product: str | None = None
    if product is not None:
        want_product, _ = normalize_product(product)
    cpuid_prod = rep.cpuid_product
    if rep.version >= 3 and cpuid_prod is None:
        raise ClaimsError(
            f"unsupported CPUID family 0x{rep.cpuid_fam_id:02X} model 0x{rep.cpuid_mod_id:02X}",
            reason="attest.snp.product",
        )
    if want_product is not None and cpuid_prod is not None and cpuid_prod != want_product:
        raise ClaimsError(f"report CPUID is {cpuid_prod}, expected {want_product}", reason="attest.snp.product")

    # 3. Endorsement certificates: supplied, else AMD KDS when configured.
    bundle = split_snp_certs(certs)
    if not any(h in (None, key_type) for h, _d, _c in bundle.leaves):
        if kds is None:
            raise CertificateChainError(f"no {key_type.upper()} certificate supplied", reason="attest.snp.chain")
        candidates = [want_product or cpuid_prod] if (want_product or cpuid_prod) else ["Milan", "Genoa"]
        kds_bundle = _kds_leaf(rep, kds, [p for p in candidates if p])
        bundle = SnpCertBundle(leaves=kds_bundle.leaves, cas=bundle.cas, crl=bundle.crl)

    # 4. Chain to the pinned AMD roots; validity; product.
    end: SnpEndorsement = select_and_verify(bundle, key_type, now=now, trust_roots=trust_roots)
    if cpuid_prod is not None and cpuid_prod != end.product:
        raise ClaimsError(
            f"report CPUID is {cpuid_prod} but the certificate chain is {end.product}", reason="attest.snp.product"
        )
    if product is not None:
        check_product(product, end)

    # 5. VCEK/VLEK extensions vs the report: REPORTED_TCB (not CURRENT_TCB) and CHIP_ID.
    tcb = decode_tcb(rep.reported_tcb, end.product)
    got = (end.bootloader, end.tee, end.snp, end.microcode, end.fmc)
    want = (tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode, tcb.fmc)
    if got != want:
        raise TcbError(
            f"certificate TCB (bl, tee, snp, ucode, fmc) = {got} but REPORTED_TCB = {want}",
            reason="attest.snp.tcb_mismatch",
        )
    # MASK_CHIP_ID makes CHIP_ID all zeros; then there is nothing to compare (go-sev-guest
    # does the same).  KEY_INFO.MASK_CHIP_KEY is a different switch and does NOT skip this.
    if end.key_type == "vcek" and not rep.mask_chip_id:
        hwid = end.hwid or b""
        if not hwid or rep.chip_id[: len(hwid)] != hwid:
            raise ClaimsError("VCEK hwID does not match the report's CHIP_ID", reason="attest.snp.chip_id")

    # 6. Report signature: ECDSA P-384 over bytes 0x000..0x29F, R/S little-endian.
    if rep.signature_is_zero:
        why = " (MASK_CHIP_KEY is set)" if rep.mask_chip_key else ""
        raise SignatureError(f"report is not signed: SIGNATURE is all zeros{why}", reason="attest.snp.signature")
    if not (0 < rep.sig_r < _P384_MAX and 0 < rep.sig_s < _P384_MAX):
        raise SignatureError("signature R/S out of range", reason="attest.snp.signature")
    sig_der = encode_dss_signature(rep.sig_r, rep.sig_s)
    if not verify_ecdsa(end.public_key, sig_der, rep.signed_bytes, hashes.SHA384()):
        raise SignatureError("report signature does not verify under the VCEK/VLEK", reason="attest.snp.signature")

    # 7. Binding of the request (nonce, model id, HPKE key) through REPORT_DATA.
    if expected_report_data is not None:
        check_report_data(rep.report_data, expected_report_data, "snp")

    # 8. Revocation of the chain's ASK/ASVK by the product's ARK CRL.
    t_now = now if now is not None else datetime.now(UTC)
    if t_now.tzinfo is None:
        t_now = t_now.replace(tzinfo=UTC)
    if bundle.crl is not None:
        check_snp_crl(bundle.crl, end.product, end.key_type, now=t_now, trust_roots=trust_roots,
                      require_current=False)
    crl_checked = False
    if crl is not None:
        try:
            data = crl.snp_crl(end.product, end.key_type)
        except AttestationError as exc:
            if exc.reason == "attest.snp.crl":
                raise
            raise CollateralError(f"SNP CRL unavailable ({exc.reason})", reason="attest.snp.crl") from None
        except Exception as exc:
            raise CollateralError(f"SNP CRL source failed ({type(exc).__name__})", reason="attest.snp.crl") from None
        if data is None:
            raise CollateralError(f"no ARK CRL available for {end.product} {end.key_type.upper()} chains",
                                  reason="attest.snp.crl")
        check_snp_crl(data, end.product, end.key_type, now=t_now, trust_roots=trust_roots)
        crl_checked = True

    return snp_claims_from_report(rep, end.product, end.product_name, crl_checked=crl_checked)


def verify_snp(
    report: bytes,
    certs: bytes = b"",
    *,
    now: datetime | None = None,
    expected_report_data: bytes | None = None,
    kds: KdsClient | None = None,
    product: str | None = None,
    trust_roots: SnpTrustRoots | None = None,
    crl: SnpCrlSource | None = None,
) -> SnpClaims:
    """Verify an AMD SEV-SNP attestation report and return its claims.

    ``report``: the 1184-byte ATTESTATION_REPORT, raw or ASCII hex.  ``certs``: the VCEK/VLEK
    (DER or PEM), optionally with the ASK/ASVK and ARK as PEM, or the extended-report
    certificate table (configfs-tsm ``auxblob``).  ``now``: validity time (default: now, UTC).
    ``expected_report_data``: the 64 bytes the report must carry (see ``report_data()``).
    ``kds``: fetch a missing VCEK from AMD KDS (no network unless given).  ``product``:
    expected product ("Milan", "Genoa", "Turin", optionally with stepping, "Milan-B0").
    ``trust_roots``: replace the pinned AMD roots (tests; future products).  ``crl``: where to
    get the ARK CRL (``SnpCrlDir``, ``SnpCrlFile``, ``KdsClient``); without it revocation is
    not checked and the claims say ``crl_checked=False``.

    Raises only :class:`AttestationError` subclasses with reason codes
    ``attest.snp.{parse,chain,expired,product,tcb_mismatch,chip_id,signature,binding,crl,
    crl_expired,revoked}``.
    """
    try:
        return _verify(report, certs, now, expected_report_data, kds, product, trust_roots, crl)
    except AttestationError:
        raise
    except Exception as exc:
        # Defence in depth: no library exception may escape a verifier.  Tests assert this
        # branch is never taken for any input they generate.
        raise EvidenceParseError(
            f"unexpected {type(exc).__name__} while verifying SNP evidence", reason="attest.snp.parse"
        ) from None
