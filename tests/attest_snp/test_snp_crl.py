"""AMD ARK CRLs (attest/_snp_crl.py): revocation of the pinned ASK/ASVK.

Real data first: AMD's own Milan and Genoa CRLs as KDS serves them (tests/data/attestation/
PROVENANCE.md, ``snp/openpcc``), checked under the pinned ARKs and with the real virtee Milan
report.  The Genoa CRL lists a real revocation (serial 0x020001, the predecessor of the pinned
Genoa ASK).  Paths no real CRL exercises (our ASK revoked, unsupported critical extensions,
other signature parameters) use the synthetic AMD-like hierarchy of ``snp_testlib``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from snp_testlib import (
    DATA,
    NOW_SYNTH,
    PSS,
    T0,
    FakeFetcher,
    _name,
    _sign_cert,
    synth_product,
    synth_report,
    synth_roots,
    synth_vcek,
    virtee_report,
    virtee_vcek,
)
from weightseal.attest import (
    AttestationError,
    CertificateChainError,
    CollateralError,
    KdsClient,
    SnpCrlDir,
    SnpCrlFile,
    check_snp_crl,
)
from weightseal.attest._snp import verify_snp
from weightseal.attest._snp_certs import (
    SnpProductRoots,
    SnpTrustRoots,
    build_snp_cert_table,
    default_trust_roots,
)
from weightseal.attest._snp_crl import MAX_CRL_BYTES, load_snp_crl

CRLS = DATA / "openpcc"
MILAN_CRL_PEM = CRLS / "amd_milan_crl.pem"
GENOA_CRL_PEM = CRLS / "amd_genoa_crl.pem"
# Inside both the Milan CRL's window (2025-05-06 .. 2026-05-12) and the virtee VCEK's.
NOW = datetime(2025, 6, 1, tzinfo=UTC)
NOW_GENOA = datetime(2025, 6, 1, tzinfo=UTC)  # Genoa CRL: 2024-10-23 .. 2025-11-03


def milan_der() -> bytes:
    return x509.load_pem_x509_crl(MILAN_CRL_PEM.read_bytes()).public_bytes(Encoding.DER)


def _reason(fn: Any) -> str:
    with pytest.raises(AttestationError) as ei:
        fn()
    return ei.value.reason


# ---------------------------------------------------------------------------------------------
# Real AMD CRLs


def test_real_milan_crl_fields() -> None:
    st = check_snp_crl(MILAN_CRL_PEM.read_bytes(), "Milan", "vcek", now=NOW)
    assert (st.product, st.key_type, st.crl_number, st.entries) == ("Milan", "vcek", 6, 0)
    assert st.this_update == datetime(2025, 5, 6, 12, 39, 6, tzinfo=UTC)
    assert st.next_update == datetime(2026, 5, 12, 0, 0, tzinfo=UTC)
    # DER and PEM are the same CRL
    assert check_snp_crl(milan_der(), "Milan", "vcek", now=NOW) == st


def test_real_genoa_crl_lists_amds_revocation_of_serial_020001() -> None:
    st = check_snp_crl(GENOA_CRL_PEM.read_bytes(), "Genoa", "vcek", now=NOW_GENOA)
    assert (st.crl_number, st.entries) == (4, 1)
    assert st.next_update == datetime(2025, 11, 3, 1, 0, tzinfo=UTC)
    _der, crl = load_snp_crl(GENOA_CRL_PEM.read_bytes())
    [entry] = list(crl)
    assert entry.serial_number == 0x020001
    assert entry.revocation_date_utc == datetime(2022, 10, 31, 12, 0, tzinfo=UTC)
    # The pinned Genoa ASK is its successor, 0x020002, and is not listed ...
    assert default_trust_roots().products["Genoa"].ask.serial_number == 0x020002
    # ... but the certificate AMD revoked is: with the REAL ARK, the REAL CRL and an ASK
    # carrying the revoked serial, the check denies.
    real = default_trust_roots().products["Genoa"]
    old_ask = SimpleNamespace(ark=real.ark, ask=SimpleNamespace(serial_number=0x020001), asvk=real.asvk)
    roots = SnpTrustRoots({"Genoa": old_ask})  # type: ignore[dict-item]
    with pytest.raises(CertificateChainError) as ei:
        check_snp_crl(GENOA_CRL_PEM.read_bytes(), "Genoa", "vcek", now=NOW_GENOA, trust_roots=roots)
    assert ei.value.reason == "attest.snp.revoked" and "ASK (serial 20001)" in str(ei.value)


def test_real_report_with_real_crl_is_crl_checked() -> None:
    plain = verify_snp(virtee_report(), virtee_vcek(), now=NOW)
    assert plain.crl_checked is False
    c = verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=SnpCrlFile(MILAN_CRL_PEM))
    assert c.crl_checked is True
    assert c.to_dict() == {**plain.to_dict(), "crl_checked": True}


@pytest.mark.parametrize("path,product,key_type,now,reason", [
    (GENOA_CRL_PEM, "Milan", "vcek", NOW, "attest.snp.crl"),  # another product's ARK
    (MILAN_CRL_PEM, "Genoa", "vcek", NOW, "attest.snp.crl"),
    (MILAN_CRL_PEM, "Turin", "vlek", NOW, "attest.snp.crl"),
    (MILAN_CRL_PEM, "Milan", "vcek", datetime(2026, 5, 12, 0, 0, 1, tzinfo=UTC), "attest.snp.crl_expired"),
    (MILAN_CRL_PEM, "Milan", "vcek", datetime(2025, 5, 6, 12, 39, 5, tzinfo=UTC), "attest.snp.crl_expired"),
    (MILAN_CRL_PEM, "Mars", "vcek", NOW, "attest.snp.crl"),
    (MILAN_CRL_PEM, "Milan", "ask", NOW, "attest.snp.crl"),
])
def test_real_crl_refused(path: Path, product: str, key_type: str, now: datetime, reason: str) -> None:
    assert _reason(lambda: check_snp_crl(path.read_bytes(), product, key_type, now=now)) == reason


def test_freshness_bounds_are_inclusive() -> None:
    naive = datetime(2026, 5, 12, 0, 0, 1)  # taken as UTC: one second past nextUpdate
    assert _reason(lambda: check_snp_crl(milan_der(), "Milan", "vcek", now=naive)) == "attest.snp.crl_expired"
    for t in (datetime(2025, 5, 6, 12, 39, 6, tzinfo=UTC), datetime(2026, 5, 12, tzinfo=UTC)):
        assert check_snp_crl(milan_der(), "Milan", "vcek", now=t).crl_number == 6
    # a host-supplied CRL is never required to be current (it can only deny)
    late = datetime(2030, 1, 1, tzinfo=UTC)
    assert check_snp_crl(milan_der(), "Milan", "vcek", now=late, require_current=False).crl_number == 6


def test_real_report_denied_with_stale_or_foreign_crl() -> None:
    late = datetime(2026, 6, 1, tzinfo=UTC)  # VCEK still valid, CRL past nextUpdate
    assert _reason(lambda: verify_snp(virtee_report(), virtee_vcek(), now=late,
                                      crl=SnpCrlFile(MILAN_CRL_PEM))) == "attest.snp.crl_expired"
    assert _reason(lambda: verify_snp(virtee_report(), virtee_vcek(), now=NOW,
                                      crl=SnpCrlFile(GENOA_CRL_PEM))) == "attest.snp.crl"


def test_every_single_bit_flip_of_the_real_crl_is_refused() -> None:
    # Exhaustive: 866 bytes x 8 bits.  Each flip breaks the DER, the algorithm identifiers'
    # equality, or the ARK signature; none may verify and none may escape as a library error.
    good = milan_der()
    reasons: dict[str, int] = {}
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            try:
                check_snp_crl(bytes(bad), "Milan", "vcek", now=NOW)
            except AttestationError as exc:
                reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
                continue
            pytest.fail(f"flip of bit {bit} in byte {i} verified")
    assert set(reasons) <= {"attest.snp.crl", "attest.snp.crl_expired"}
    assert sum(reasons.values()) == len(good) * 8
    assert reasons["attest.snp.crl"] > len(good) * 7  # all but (possibly) a few date flips


@pytest.mark.parametrize("mangle", [
    lambda d, p: d[:-1],  # truncated
    lambda d, p: d[:400],
    lambda d, p: d + b"\x00",  # trailing byte
    lambda d, p: d + d,  # two DER CRLs
    lambda d, p: p + p,  # two PEM CRLs
    lambda d, p: p.replace(b"X509 CRL", b"CERTIFICATE"),
    lambda d, p: b"",
    lambda d, p: b"\x30" + b"\x84\xff\xff\xff\xff",
    lambda d, p: b"-----BEGIN X509 CRL-----\n!!!\n-----END X509 CRL-----\n",
    lambda d, p: b"0" * (MAX_CRL_BYTES + 1),
])
def test_malformed_crl_is_refused(mangle: Any) -> None:
    data = mangle(milan_der(), MILAN_CRL_PEM.read_bytes())
    assert _reason(lambda: check_snp_crl(data, "Milan", "vcek", now=NOW)) == "attest.snp.crl"


def test_non_bytes_are_refused() -> None:
    assert _reason(lambda: load_snp_crl("not bytes")) == "attest.snp.crl"  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Synthetic hierarchy: our ASK/ASVK revoked, scope, signature parameters


def synth_crl(product: str = "Genoa", *, revoked: tuple[int, ...] = (), this: datetime = NOW_SYNTH - timedelta(days=1),
              nxt: datetime = NOW_SYNTH + timedelta(days=30), key: rsa.RSAPrivateKey | None = None,
              rsa_padding: Any = PSS, algorithm: Any = None, issuer: str | None = None,
              extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
              entry_extensions: tuple[tuple[x509.ExtensionType, bool], ...] = ()) -> bytes:
    sp = synth_product(product)
    b = (x509.CertificateRevocationListBuilder().issuer_name(_name(issuer or f"ARK-{product}"))
         .last_update(this).next_update(nxt).add_extension(x509.CRLNumber(7), critical=False))
    for ext, crit in extensions:
        b = b.add_extension(ext, critical=crit)
    for serial in revoked:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(T0)
        for ext, crit in entry_extensions:
            rb = rb.add_extension(ext, critical=crit)
        b = b.add_revoked_certificate(rb.build())
    crl = b.sign(key or sp.ark_key, algorithm or hashes.SHA384(), rsa_padding=rsa_padding)
    return crl.public_bytes(Encoding.DER)


@dataclass
class CrlBytes:
    """An ``SnpCrlSource`` over fixed bytes that records what it was asked."""

    data: bytes | None
    asked: list[tuple[str, str]]

    def snp_crl(self, product: str, key_type: str) -> bytes | None:
        self.asked.append((product, key_type))
        return self.data


def _verify_genoa(crl: Any = None, certs: bytes | None = None, **kw: Any) -> Any:
    return verify_snp(synth_report("Genoa"), certs if certs is not None else synth_vcek("Genoa"), now=NOW_SYNTH,
                      trust_roots=synth_roots(), crl=crl, **kw)


def test_synthetic_current_crl_passes_and_is_asked_for_the_chain() -> None:
    src = CrlBytes(synth_crl(revoked=(0x999,)), [])
    c = _verify_genoa(src)
    assert c.crl_checked is True and src.asked == [("Genoa", "vcek")]


def test_revoked_ask_denies_the_vcek_chain() -> None:
    ask = synth_product("Genoa").ask
    src = CrlBytes(synth_crl(revoked=(0x999, ask.serial_number)), [])
    with pytest.raises(CertificateChainError) as ei:
        _verify_genoa(src)
    assert ei.value.reason == "attest.snp.revoked"
    assert f"serial {ask.serial_number:x}" in str(ei.value)


def test_revocation_is_for_the_chains_own_intermediate() -> None:
    sp = synth_product("Genoa")
    assert sp.ask.serial_number == sp.asvk.serial_number  # the synthetic ARK reuses serial 1
    # so give the check a trust store whose ASVK has a distinct serial: a CRL listing only
    # the ASVK denies VLEK chains and not VCEK chains
    asvk_key = rsa.generate_private_key(65537, 2048)
    asvk = _sign_cert("SEV-VLEK-Genoa", asvk_key.public_key(), "ARK-Genoa", sp.ark_key, ca=True, serial=0x4242)
    roots = SnpTrustRoots({"Genoa": SnpProductRoots("Genoa", sp.ark, sp.ask, asvk)})
    crl = synth_crl(revoked=(0x4242,))
    assert check_snp_crl(crl, "Genoa", "vcek", now=NOW_SYNTH, trust_roots=roots).entries == 1
    with pytest.raises(CertificateChainError) as ei:
        check_snp_crl(crl, "Genoa", "vlek", now=NOW_SYNTH, trust_roots=roots)
    assert ei.value.reason == "attest.snp.revoked" and "ASVK" in str(ei.value)


@pytest.mark.parametrize("kw,reason", [
    ({"rsa_padding": padding.PKCS1v15()}, "attest.snp.crl"),  # not PSS
    ({"rsa_padding": padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=32)}, "attest.snp.crl"),
    ({"algorithm": hashes.SHA256(), "rsa_padding": padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)},
     "attest.snp.crl"),
    ({"key": rsa.generate_private_key(65537, 2048)}, "attest.snp.crl"),  # right name, wrong key
    ({"issuer": "ARK-Milan"}, "attest.snp.crl"),
    ({"extensions": ((x509.DeltaCRLIndicator(3), True),)}, "attest.snp.crl"),
    ({"extensions": ((x509.IssuingDistributionPoint(None, None, False, True, None, False, False), True),)}, "attest.snp.crl"),
    ({"revoked": (5,), "entry_extensions": ((x509.CertificateIssuer([x509.DNSName("x.example")]), True),)},
     "attest.snp.crl"),
    ({"this": NOW_SYNTH + timedelta(seconds=1)}, "attest.snp.crl_expired"),
    ({"nxt": NOW_SYNTH - timedelta(seconds=1)}, "attest.snp.crl_expired"),
])
def test_synthetic_crl_refused(kw: dict[str, Any], reason: str) -> None:
    assert _reason(lambda: check_snp_crl(synth_crl(**kw), "Genoa", "vcek", now=NOW_SYNTH,
                                         trust_roots=synth_roots())) == reason


def test_non_critical_unknown_extensions_and_entry_reasons_are_accepted() -> None:
    crl = synth_crl(revoked=(77,), extensions=((x509.DeltaCRLIndicator(3), False),),
                    entry_extensions=((x509.CRLReason(x509.ReasonFlags.key_compromise), True),))
    assert check_snp_crl(crl, "Genoa", "vcek", now=NOW_SYNTH, trust_roots=synth_roots()).entries == 1
    # any reason, certificateHold included, counts as revoked
    ask = synth_product("Genoa").ask.serial_number
    held = synth_crl(revoked=(ask,), entry_extensions=((x509.CRLReason(x509.ReasonFlags.certificate_hold), False),))
    assert _reason(lambda: check_snp_crl(held, "Genoa", "vcek", now=NOW_SYNTH,
                                         trust_roots=synth_roots())) == "attest.snp.revoked"


def test_authority_key_identifier_must_name_the_ark() -> None:
    # an ARK with a subject key identifier (as AMD's have); a CRL that it signed but whose AKI
    # names another key is refused
    ark_key = rsa.generate_private_key(65537, 2048)
    ski = x509.SubjectKeyIdentifier.from_public_key(ark_key.public_key())
    ark = _sign_cert("ARK-Genoa", ark_key.public_key(), "ARK-Genoa", ark_key, ca=True, exts=[ski])
    ask = _sign_cert("SEV-Genoa", rsa.generate_private_key(65537, 2048).public_key(), "ARK-Genoa", ark_key, ca=True)
    roots = SnpTrustRoots({"Genoa": SnpProductRoots("Genoa", ark, ask)})
    right = x509.AuthorityKeyIdentifier(ski.digest, None, None)
    wrong = x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None)
    ok = synth_crl(key=ark_key, extensions=((right, False),))
    assert check_snp_crl(ok, "Genoa", "vcek", now=NOW_SYNTH, trust_roots=roots).crl_number == 7
    bad = synth_crl(key=ark_key, extensions=((wrong, False),))
    assert _reason(lambda: check_snp_crl(bad, "Genoa", "vcek", now=NOW_SYNTH, trust_roots=roots)) == "attest.snp.crl"
    # a product without a pinned ASVK has nothing to check a VLEK chain against
    assert _reason(lambda: check_snp_crl(ok, "Genoa", "vlek", now=NOW_SYNTH, trust_roots=roots)) == "attest.snp.crl"


@pytest.mark.parametrize("source,reason", [
    (CrlBytes(None, []), "attest.snp.crl"),  # no CRL for this product
    (CrlBytes(b"garbage", []), "attest.snp.crl"),
    (SimpleNamespace(snp_crl=lambda p, k: (_ for _ in ()).throw(RuntimeError("boom"))), "attest.snp.crl"),
    (SimpleNamespace(snp_crl=lambda p, k: (_ for _ in ()).throw(CollateralError("x", reason="attest.snp.kds"))),
     "attest.snp.crl"),
])
def test_a_configured_source_without_a_usable_crl_denies(source: Any, reason: str) -> None:
    assert _reason(lambda: _verify_genoa(source)) == reason


def test_crl_source_is_not_consulted_for_evidence_that_fails_earlier() -> None:
    src = CrlBytes(synth_crl(), [])
    bad = bytearray(synth_report("Genoa"))
    bad[0x2A0] ^= 1  # signature
    with pytest.raises(AttestationError) as ei:
        verify_snp(bytes(bad), synth_vcek("Genoa"), now=NOW_SYNTH, trust_roots=synth_roots(), crl=src)
    assert ei.value.reason == "attest.snp.signature" and src.asked == []


def test_host_supplied_crl_in_the_certificate_table_can_deny_but_not_vouch() -> None:
    ask = synth_product("Genoa").ask.serial_number
    vcek = synth_vcek("Genoa")
    # revoking: denied even without an operator CRL source
    table = build_snp_cert_table({"vcek": vcek, "crl": synth_crl(revoked=(ask,))})
    assert _reason(lambda: _verify_genoa(certs=table)) == "attest.snp.revoked"
    # stale but authentic and not revoking: accepted, yet revocation is NOT counted as checked
    stale = synth_crl(this=NOW_SYNTH - timedelta(days=400), nxt=NOW_SYNTH - timedelta(days=300))
    c = _verify_genoa(certs=build_snp_cert_table({"vcek": vcek, "crl": stale}))
    assert c.crl_checked is False
    # ... and the operator's current CRL still decides
    c = _verify_genoa(CrlBytes(synth_crl(), []), certs=build_snp_cert_table({"vcek": vcek, "crl": stale}))
    assert c.crl_checked is True
    # a forged CRL in the table is refused
    forged = synth_crl(key=rsa.generate_private_key(65537, 2048))
    assert _reason(lambda: _verify_genoa(certs=build_snp_cert_table({"vcek": vcek, "crl": forged}))) == "attest.snp.crl"


# ---------------------------------------------------------------------------------------------
# Sources: directory, file, KDS


def test_crl_directory(tmp_path: Path) -> None:
    d = tmp_path / "crls"
    d.mkdir()
    (d / "milan_vcek.crl").write_bytes(milan_der())
    (d / "genoa_vcek.crl").write_bytes(b"not a crl")
    (d / "README").write_text("ignored")
    store = SnpCrlDir(d)
    assert sorted(store.files()) == [("Genoa", "vcek"), ("Milan", "vcek")]
    assert store.snp_crl("Milan", "vcek") == milan_der()
    assert store.snp_crl("Milan", "vlek") is None and store.snp_crl("Mars", "vcek") is None
    assert store.next_updates() == {("Milan", "vcek"): datetime(2026, 5, 12, tzinfo=UTC), ("Genoa", "vcek"): None}
    assert verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=store).crl_checked is True
    # read on every request: replacing the file takes effect at once
    tmp = d / ".new"
    tmp.write_bytes(GENOA_CRL_PEM.read_bytes())
    os.replace(tmp, d / "milan_vcek.crl")
    assert _reason(lambda: verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=store)) == "attest.snp.crl"
    (d / "milan_vcek.crl").unlink()
    assert _reason(lambda: verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=store)) == "attest.snp.crl"
    (d / "milan_vcek.crl").write_bytes(b"\x30" * (MAX_CRL_BYTES + 1))
    assert _reason(lambda: store.snp_crl("Milan", "vcek")) == "attest.snp.crl"
    assert _reason(lambda: SnpCrlDir(tmp_path / "missing")) == "attest.snp.crl"


MILAN_URL = "https://kdsintf.amd.com/vcek/v1/Milan/crl"


def test_kds_crl_urls() -> None:
    k = KdsClient(FakeFetcher({}))
    assert k.crl_url("Milan") == MILAN_URL
    assert k.crl_url("Turin", vlek=True) == "https://kdsintf.amd.com/vlek/v1/Turin/crl"
    assert _reason(lambda: k.crl_url("Mars")) == "attest.snp.kds"
    assert _reason(lambda: k.snp_crl("Milan", "ask")) == "attest.snp.kds"
    with pytest.raises(ValueError):
        KdsClient(FakeFetcher({}), crl_refresh_seconds=0)


def test_kds_crl_is_refreshed_and_survives_an_outage(tmp_path: Path) -> None:
    clock = [1000.0]
    fetch = FakeFetcher({MILAN_URL: milan_der()})
    kds = KdsClient(fetch, cache_dir=tmp_path / "kds", crl_refresh_seconds=600, clock=lambda: clock[0])
    c = verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=kds)
    assert c.crl_checked is True and fetch.calls == [MILAN_URL]
    clock[0] += 599
    assert kds.snp_crl("Milan", "vcek") == milan_der() and len(fetch.calls) == 1  # still fresh
    clock[0] += 2
    fetch.responses[MILAN_URL] = GENOA_CRL_PEM.read_bytes()  # what KDS now serves (wrong issuer)
    assert kds.snp_crl("Milan", "vcek") == GENOA_CRL_PEM.read_bytes() and len(fetch.calls) == 2
    assert _reason(lambda: verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=kds)) == "attest.snp.crl"
    # outage after the refresh interval: the last copy is used (its nextUpdate still rules)
    clock[0] += 601
    fetch.responses.clear()
    assert kds.snp_crl("Milan", "vcek") == GENOA_CRL_PEM.read_bytes() and len(fetch.calls) == 3
    # a new client (restart) finds the disk copy; it is fresh by its mtime, so no request
    fresh = KdsClient(FakeFetcher({}), cache_dir=tmp_path / "kds", crl_refresh_seconds=600)
    assert fresh.snp_crl("Milan", "vcek") == GENOA_CRL_PEM.read_bytes()
    # nothing held and KDS unreachable: an error the verifier turns into attest.snp.crl
    cold = KdsClient(FakeFetcher({}))
    assert _reason(lambda: cold.snp_crl("Milan", "vcek")) == "attest.snp.kds"
    assert _reason(lambda: verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=cold)) == "attest.snp.crl"


def test_kds_stale_disk_copy_is_refetched(tmp_path: Path) -> None:
    seed = KdsClient(FakeFetcher({MILAN_URL: GENOA_CRL_PEM.read_bytes()}), cache_dir=tmp_path)
    assert seed.snp_crl("Milan", "vcek") == GENOA_CRL_PEM.read_bytes()
    [cached] = list(tmp_path.glob("*.crl"))
    old = time.time() - 7200
    os.utime(cached, (old, old))
    fetch = FakeFetcher({MILAN_URL: milan_der()})
    kds = KdsClient(fetch, cache_dir=tmp_path)  # default refresh: one hour
    assert kds.snp_crl("Milan", "vcek") == milan_der() and fetch.calls == [MILAN_URL]
    assert cached.read_bytes() == milan_der()



# ---------------------------------------------------------------------------------------------
# Policy: require_crl


def test_policy_require_crl_with_real_evidence() -> None:
    from weightseal.attest import (
        Policy,
        PolicyDenied,
        PolicyFormatError,
        evaluate,
        policy_from_claims,
    )

    checked = verify_snp(virtee_report(), virtee_vcek(), now=NOW, crl=SnpCrlFile(MILAN_CRL_PEM))
    unchecked = verify_snp(virtee_report(), virtee_vcek(), now=NOW)
    golden = policy_from_claims([checked], model_versions=[1])
    assert golden.to_dict()["profiles"][0]["require_crl"] is True
    assert evaluate(golden, [checked], model_version=1, allow_mock=False).allowed is True
    with pytest.raises(PolicyDenied) as ei:
        evaluate(golden, [unchecked], model_version=1, allow_mock=False)
    assert (ei.value.reason, ei.value.rule) == ("policy.crl", "profiles[0].require_crl")
    # from unchecked evidence the rule is not written, and an explicit false is the default:
    # policies that predate the rule keep their canonical form and digest
    loose = policy_from_claims([unchecked], model_versions=[1])
    assert "require_crl" not in loose.to_dict()["profiles"][0]
    doc = loose.to_dict()
    doc["profiles"][0]["require_crl"] = False
    assert Policy.from_dict(doc).digest == loose.digest
    doc["profiles"][0]["require_crl"] = True
    assert Policy.from_dict(doc).digest != loose.digest
    doc["profiles"][0]["require_crl"] = "yes"
    with pytest.raises(PolicyFormatError) as bad:
        Policy.from_dict(doc)
    assert bad.value.reason == "policy.invalid"
