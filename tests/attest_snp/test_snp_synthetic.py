"""SEV-SNP verifier paths with no public real evidence (Genoa/Turin reports, v3/v4/v5 layouts,
VLEK-signed reports, masked chip id, KDS fetching), exercised with a SYNTHETIC AMD-like
hierarchy injected as ``trust_roots`` (never pinned in the package)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from snp_testlib import (
    CHIP,
    NOW_SYNTH,
    TURIN_CHIP,
    FakeFetcher,
    der,
    gsg_report,
    leaf_key,
    pem,
    synth_product,
    synth_report,
    synth_roots,
    synth_tcb,
    synth_vcek,
    tcb_u64,
)
from weightseal.attest import (
    BindingError,
    CertificateChainError,
    ClaimsError,
    SignatureError,
    TcbError,
)
from weightseal.attest._snp import verify_snp
from weightseal.attest._snp_certs import build_snp_cert_table
from weightseal.attest._snp_kds import KdsClient

_vcek = synth_vcek
_tcb = synth_tcb
_report = synth_report


def _verify(report: bytes, certs: bytes, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("now", NOW_SYNTH)
    kw.setdefault("trust_roots", synth_roots())
    return verify_snp(report, certs, **kw)


@pytest.mark.parametrize("product,version", [("Milan", 3), ("Genoa", 3), ("Genoa", 4), ("Genoa", 5), ("Turin", 5), ("Turin", 3)])
def test_synthetic_vcek_reports_verify(product: str, version: int) -> None:
    c = _verify(_report(product, version=version), _vcek(product), product=product)
    assert c.product == product and c.version == version and c.signing_key == "vcek"
    assert c.product_name == f"{product}-B0"
    assert c.reported_tcb.bootloader == 3 and c.reported_tcb.tee == 1
    assert c.reported_tcb.snp == 20 and c.reported_tcb.microcode == 210
    assert c.reported_tcb.fmc == (1 if product == "Turin" else None)
    fam, mod, step = {"Milan": (0x19, 1, 1), "Genoa": (0x19, 0x11, 1), "Turin": (0x1A, 2, 0)}[product]
    assert (c.cpuid_fam_id, c.cpuid_mod_id, c.cpuid_step) == (fam, mod, step)
    if version >= 5:
        assert (c.launch_mit_vector, c.current_mit_vector) == (3, 5)
    else:
        assert c.launch_mit_vector is None and c.current_mit_vector is None
    assert c.platform_info == 0x25 and c.guest_svn == 7
    assert (c.current_major, c.current_minor, c.current_build) == (1, 55, 9)
    assert c.family_id == b"\xaa" * 16 and c.measurement == b"\x22" * 48


def test_turin_tcb_byte_layout_is_used_for_comparison() -> None:
    # Same numbers at Milan/Genoa byte positions would not match a Turin VCEK.
    wrong = tcb_u64("Genoa", bl=3, tee=1, snp=20, ucode=210)
    with pytest.raises(TcbError) as ei:
        _verify(_report("Turin", version=5, tcb=wrong), _vcek("Turin"))
    assert ei.value.reason == "attest.snp.tcb_mismatch"
    # fmc differs
    with pytest.raises(TcbError):
        _verify(_report("Turin", version=5, tcb=_tcb("Turin", fmc=2)), _vcek("Turin"))


def test_turin_needs_fmc_extension() -> None:
    cert = der(synth_product("Turin").leaf("vcek", leaf_key(), hwid=TURIN_CHIP[:8], bl=3, tee=1, snp=20, ucode=210))
    with pytest.raises(CertificateChainError) as ei:
        _verify(_report("Turin", version=5), cert)
    assert ei.value.reason == "attest.snp.chain"


def test_tcb_mismatch_uses_reported_not_current() -> None:
    # current_tcb differs from reported_tcb (as in trustee's sample): fine
    rep = _report("Genoa", current_tcb=_tcb("Genoa", snp=21))
    c = _verify(rep, _vcek("Genoa"))
    assert c.current_tcb.snp == 21 and c.reported_tcb.snp == 20
    # reported differs from the VCEK: denied even though current matches
    rep = _report("Genoa", tcb=_tcb("Genoa", snp=19), current_tcb=_tcb("Genoa"))
    with pytest.raises(TcbError) as ei:
        _verify(rep, _vcek("Genoa"))
    assert ei.value.reason == "attest.snp.tcb_mismatch"


@pytest.mark.parametrize("field", ["bl", "tee", "snp", "ucode"])
def test_each_tcb_component_is_compared(field: str) -> None:
    with pytest.raises(TcbError):
        _verify(_report("Milan"), _vcek("Milan", **{field: 99}))  # type: ignore[arg-type]


def test_chip_id_rules() -> None:
    other = bytes(reversed(CHIP))
    with pytest.raises(ClaimsError) as ei:
        _verify(_report("Genoa", chip_id=other), _vcek("Genoa"))
    assert ei.value.reason == "attest.snp.chip_id"
    # MASK_CHIP_ID (host switch, not in KEY_INFO): chip_id is zero and not compared
    c = _verify(_report("Genoa", mask_chip_id=True), _vcek("Genoa"))
    assert c.mask_chip_id is True and c.chip_id == bytes(64)
    # Turin: the 8-byte hwID must equal CHIP_ID[0:8]
    with pytest.raises(ClaimsError) as ei:
        _verify(_report("Turin", version=5, chip_id=b"\x09" * 8 + bytes(56)), _vcek("Turin"))
    assert ei.value.reason == "attest.snp.chip_id"
    # Wrong hwID length for the product is a malformed VCEK
    with pytest.raises(CertificateChainError):
        _verify(_report("Genoa"), _vcek("Genoa", hwid=CHIP[:8]))


def test_vlek_signed_report() -> None:
    sp = synth_product("Genoa")
    vlek = sp.leaf("vlek", leaf_key("vlek"), bl=3, tee=1, snp=20, ucode=210)
    rep = _report("Genoa", tag="vlek", signing_key=1, mask_chip_id=True)
    c = _verify(rep, der(vlek))
    assert c.signing_key == "vlek" and c.product == "Genoa"
    # VLEK reports need no chip id (not masked either)
    rep2 = _report("Genoa", tag="vlek", signing_key=1)
    assert _verify(rep2, der(vlek)).chip_id == CHIP
    # with the ASVK+ARK bundle, and inside a cert table under the VLEK GUID
    assert _verify(rep, pem(vlek) + pem(sp.asvk) + pem(sp.ark)).signing_key == "vlek"
    table = build_snp_cert_table({"vlek": der(vlek), "ask": der(sp.asvk), "ark": der(sp.ark)})
    assert _verify(rep, table).signing_key == "vlek"
    # table with both VCEK and VLEK: the report's signing key picks the leaf
    both = build_snp_cert_table({"vcek": _vcek("Genoa"), "vlek": der(vlek)})
    assert _verify(rep, both).signing_key == "vlek"
    assert _verify(_report("Genoa"), both).signing_key == "vcek"
    # a VLEK offered for a VCEK-signed report and vice versa
    with pytest.raises(CertificateChainError) as ei:
        _verify(_report("Genoa", tag="vlek"), der(vlek))
    assert ei.value.reason == "attest.snp.chain"
    with pytest.raises(CertificateChainError):
        _verify(_report("Genoa", signing_key=1), _vcek("Genoa"))
    # a VLEK TCB mismatch
    with pytest.raises(TcbError):
        _verify(_report("Genoa", tag="vlek", signing_key=1, tcb=_tcb("Genoa", tee=2)), der(vlek))


def test_leaf_signed_by_ask_of_other_product_or_self_made() -> None:
    # A VCEK issued by the Genoa ASK does not verify a Milan-CPUID report.
    with pytest.raises(ClaimsError) as ei:
        _verify(_report("Milan"), _vcek("Genoa"))
    assert ei.value.reason == "attest.snp.product"
    # A leaf whose issuer is a non-pinned CA that copies the pinned ASK's name.
    from cryptography.hazmat.primitives.asymmetric import rsa
    from snp_testlib import _sign_cert

    rogue_key = rsa.generate_private_key(65537, 2048)
    rogue = _sign_cert("SEV-VCEK", leaf_key().public_key(), "SEV-Genoa", rogue_key, ca=False)
    with pytest.raises(CertificateChainError) as ei2:
        _verify(_report("Genoa"), der(rogue))
    assert ei2.value.reason == "attest.snp.chain"


def test_product_name_must_match_chain() -> None:
    cert = der(synth_product("Genoa").leaf("vcek", leaf_key(), hwid=CHIP, bl=3, tee=1, snp=20, ucode=210, product_name="Milan-B0"))
    with pytest.raises(ClaimsError) as ei:
        _verify(_report("Genoa"), cert)
    assert ei.value.reason == "attest.snp.product"


def test_unknown_cpuid_is_product_error() -> None:
    with pytest.raises(ClaimsError) as ei:
        _verify(_report("Genoa", cpuid=(0x1A, 0x50, 0)), _vcek("Genoa"))
    assert ei.value.reason == "attest.snp.product"
    with pytest.raises(ClaimsError) as ei:
        _verify(_report("Genoa"), _vcek("Genoa"), product="Turin")
    assert ei.value.reason == "attest.snp.product"


def test_expired_leaf_and_not_yet_valid() -> None:
    sp = synth_product("Genoa")
    old = sp.leaf("vcek", leaf_key(), hwid=CHIP, bl=3, tee=1, snp=20, ucode=210,
                  not_before=NOW_SYNTH - timedelta(days=400), not_after=NOW_SYNTH - timedelta(days=1))
    with pytest.raises(CertificateChainError) as ei:
        _verify(_report("Genoa"), der(old))
    assert ei.value.reason == "attest.snp.expired"
    with pytest.raises(CertificateChainError) as ei:
        _verify(_report("Genoa"), _vcek("Genoa"), now=NOW_SYNTH.replace(year=2019))
    assert ei.value.reason == "attest.snp.expired"


def test_wrong_leaf_curve_is_chain_error() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from snp_testlib import _sign_cert

    k = ec.generate_private_key(ec.SECP256R1())
    cert = _sign_cert("SEV-VCEK", k.public_key(), "SEV-Genoa", synth_product("Genoa").ask_key, ca=False)
    with pytest.raises(CertificateChainError) as ei:
        _verify(_report("Genoa"), der(cert))
    assert ei.value.reason == "attest.snp.chain"


def test_signature_and_binding_on_synthetic() -> None:
    rep = bytearray(_report("Turin", version=5))
    rep[0x1F8] ^= 1  # launch_mit_vector is signed
    with pytest.raises(SignatureError):
        _verify(bytes(rep), _vcek("Turin"))
    with pytest.raises(BindingError) as ei:
        _verify(_report("Turin", version=5), _vcek("Turin"), expected_report_data=b"\x12" * 64)
    assert ei.value.reason == "attest.snp.binding"
    assert _verify(_report("Turin", version=5), _vcek("Turin"), expected_report_data=b"\x11" * 64).vmpl == 0
    # signed by another key: signature error
    with pytest.raises(SignatureError):
        _verify(_report("Genoa", tag="other"), _vcek("Genoa"))


def test_policy_bits_decoded() -> None:
    pol = (1 << 17) | (1 << 16) | (1 << 18) | (1 << 19) | (1 << 20) | (2 << 8) | 7
    c = _verify(_report("Genoa", policy=pol), _vcek("Genoa"))
    assert (c.smt_allowed, c.migrate_ma, c.debug, c.single_socket) == (True, True, True, True)
    assert (c.abi_major, c.abi_minor) == (2, 7)
    # defined newer bits (21..25) are passed through raw, not rejected (policy decides)
    c2 = _verify(_report("Genoa", policy=(1 << 17) | (1 << 25)), _vcek("Genoa"))
    assert c2.policy == (1 << 17) | (1 << 25) and not c2.debug


def test_vmpl_and_author_key_carried() -> None:
    c = _verify(_report("Genoa", vmpl=2, author_key_en=True), _vcek("Genoa"))
    assert c.vmpl == 2 and c.author_key_en is True


# --------------------------------------------------------------------------- KDS


def test_kds_urls() -> None:
    from weightseal.attest._snp import decode_tcb

    k = KdsClient(FakeFetcher({}))
    u = k.vcek_url("Milan", bytes.fromhex("3ac3fe21" + "00" * 60), decode_tcb(0x4405000000000002, "Milan"))
    assert u == "https://kdsintf.amd.com/vcek/v1/Milan/3ac3fe21" + "00" * 60 + "?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"
    t = decode_tcb(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little"), "Turin")
    u = k.vcek_url("Turin", TURIN_CHIP, t)
    assert u == "https://kdsintf.amd.com/vcek/v1/Turin/0102030405060708?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=9"
    assert k.cert_chain_url("Genoa") == "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain"
    assert k.cert_chain_url("Genoa", vlek=True) == "https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain"


def test_kds_fetch_real_vcek_with_cache(tmp_path: Path) -> None:
    from snp_testlib import NOW_GSG, gsg_vcek

    chip = gsg_report()[0x1A0:0x1E0]
    url = f"https://kdsintf.amd.com/vcek/v1/Milan/{chip.hex()}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"
    fetch = FakeFetcher({url: gsg_vcek()})
    kds = KdsClient(fetch, cache_dir=tmp_path / "kds")
    c = verify_snp(gsg_report(), b"", now=NOW_GSG, kds=kds, product="Milan")
    assert c.product_name == "Milan-B0" and fetch.calls == [url]
    # second time from the on-disk cache, no fetch
    verify_snp(gsg_report(), b"", now=NOW_GSG, kds=KdsClient(FakeFetcher({}), cache_dir=tmp_path / "kds"))
    assert len(list((tmp_path / "kds").iterdir())) == 1
    # v2 report without a product: Milan then Genoa are tried
    fetch2 = FakeFetcher({url: gsg_vcek()})
    assert verify_snp(gsg_report(), b"", now=NOW_GSG, kds=KdsClient(fetch2)).product == "Milan"
    # KDS down / wrong answer
    with pytest.raises(CertificateChainError) as ei:
        verify_snp(gsg_report(), b"", now=NOW_GSG, kds=KdsClient(FakeFetcher({})))
    assert ei.value.reason == "attest.snp.chain"
    with pytest.raises(CertificateChainError):
        verify_snp(gsg_report(), b"", now=NOW_GSG, kds=KdsClient(FakeFetcher({url: b"<html>"})))
    # a tampered cache entry only causes a denial
    (next((tmp_path / "kds").iterdir())).write_bytes(b"garbage")
    with pytest.raises(CertificateChainError):
        verify_snp(gsg_report(), b"", now=NOW_GSG, kds=KdsClient(FakeFetcher({}), cache_dir=tmp_path / "kds"))


def test_kds_turin_and_vlek_and_masked() -> None:
    url = (
        "https://kdsintf.amd.com/vcek/v1/Turin/0102030405060708?fmcSPL=1&blSPL=3&teeSPL=1&snpSPL=20&ucodeSPL=210"
    )
    fetch = FakeFetcher({url: _vcek("Turin")})
    c = _verify(_report("Turin", version=5), b"", kds=KdsClient(fetch))
    assert c.product == "Turin" and fetch.calls == [url]
    with pytest.raises(CertificateChainError):  # KDS does not serve VLEKs
        _verify(_report("Genoa", signing_key=1), b"", kds=KdsClient(FakeFetcher({})))
    with pytest.raises(CertificateChainError):  # masked chip id: nothing to ask KDS for
        _verify(_report("Genoa", mask_chip_id=True), b"", kds=KdsClient(FakeFetcher({})))


def test_kds_fetcher_errors_are_typed() -> None:
    from weightseal.attest import CollateralError
    from weightseal.attest._snp import decode_tcb

    def boom(url: str) -> bytes:
        raise RuntimeError("x")

    with pytest.raises(CollateralError) as ei:
        KdsClient(boom).fetch_vcek("Milan", CHIP, decode_tcb(0, "Milan"))
    assert ei.value.reason == "attest.snp.kds"
    with pytest.raises(CollateralError):
        KdsClient(lambda u: b"x" * 100_000).fetch_cert_chain("Milan")
    with pytest.raises(CollateralError):
        KdsClient(boom).vcek_url("Milan", bytes(64), decode_tcb(0, "Milan"))
    assert "kdsintf" in repr(KdsClient(boom))
