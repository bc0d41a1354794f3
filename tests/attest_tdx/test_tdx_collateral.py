"""TDX collateral: signed TCB Info / QE Identity, CRLs, freshness and TCB status."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from tdx_testlib import Q4, Q5, T4, T5, T2053, lower_first_tcb_level, read
from weightseal.attest._errors import AttestationError
from weightseal.attest._tdx import _PCK_CA_NAMES, _pck_extension, parse_tdx_quote, verify_tdx
from weightseal.attest._tdx_collateral import (
    IntelPcsFetcher,
    TdxCollateral,
    TdxTcbLevel,
    VerifiedTdxCollateral,
    evaluate_tdx_tcb,
    match_tcb_levels,
    parse_qe_identity,
    parse_tcb_info,
    qe_identity_status,
    verify_tdx_collateral,
)
from weightseal.attest._tdx_pki import parse_pem_chain, verify_raw_p256

TCB4 = read("collateral/sample_tcbInfo_response")
TCB5 = read("collateral/sample_tcbinfo_response_v5")
QEID = read("collateral/sample_qeIdentity_response")
PCKCRL = read("collateral/pckcrl")
ROOTCRL = read("collateral/rootcrl.der")
TCB_CHAIN = read("derived/tcbInfoIssuerChain.pem")
QE_CHAIN = read("derived/qeIdentityIssuerChain.pem")
PCK_CRL_CHAIN = read("derived/pckCrlIssuerChain.pem")


def full(**kw: object) -> TdxCollateral:
    base: dict[str, object] = dict(
        tcb_info=TCB4,
        tcb_info_issuer_chain=TCB_CHAIN,
        qe_identity=QEID,
        qe_identity_issuer_chain=QE_CHAIN,
        pck_crl=PCKCRL,
        root_crl=ROOTCRL,
        pck_crl_issuer_chain=PCK_CRL_CHAIN,
    )
    base.update(kw)
    return TdxCollateral(**base)  # type: ignore[arg-type]


def pck_chain(quote: bytes) -> list:  # type: ignore[type-arg]
    return parse_pem_chain(parse_tdx_quote(quote).pck_chain_pem, reason="x")


def _reason(fn, *a, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return str(ei.value.reason)


def test_collateral_verifies_at_2023() -> None:
    v = verify_tdx_collateral(full(), now=T4, pck_chain=pck_chain(Q4))
    assert v.crls_checked is True
    assert v.tcb_info.fmspc.hex() == "50806f000000" and v.tcb_info.pce_id == b"\0\0"
    assert v.tcb_info.tcb_evaluation_data_number == 15 and len(v.tcb_info.tcb_levels) == 2
    assert v.qe_identity is not None
    assert v.qe_identity.mrsigner.hex().startswith(
        "dc9e2a7c"
    ) and v.qe_identity.mrsigner.hex().endswith("a8c5")
    assert v.qe_identity.isvprodid == 2
    assert v.qe_identity.attributes.hex().startswith("11000")
    assert v.tcb_info.signed_body.startswith(b'{"id":"TDX"') and v.tcb_info.signed_body.endswith(
        b"]}"
    )


def test_v4_unmodified_tcb_info_has_no_matching_level() -> None:
    with pytest.raises(AttestationError, match="no matching TCB level") as ei:
        verify_tdx(Q4, now=T4, collateral=full())
    assert ei.value.reason == "attest.tdx.tcb_status"


def test_level_matching_on_parsed_structure() -> None:
    info = parse_tcb_info(TCB4)
    pck = _pck_extension(pck_chain(Q4)[0])
    tee = parse_tdx_quote(Q4).body.tee_tcb_svn
    assert pck.tcb.comp_svns[:8] == (3, 3, 2, 2, 2, 1, 0, 2)
    assert match_tcb_levels(info.tcb_levels, pck.tcb, tee) == (None, None)
    # go-tdx-guest TestVerifyUsingTcbInfoV4: tcbLevels[0] SVNs set to 0 -> UpToDate
    lv0 = dataclasses.replace(info.tcb_levels[0], sgx_svns=(0,) * 16, tdx_svns=(0,) * 16, pcesvn=0)
    patched = dataclasses.replace(info, tcb_levels=(lv0, *info.tcb_levels[1:]))
    sgx, tdx = match_tcb_levels(patched.tcb_levels, pck.tcb, tee)
    assert sgx is lv0 and tdx is lv0
    ev = evaluate_tdx_tcb(patched, pck.tcb, tee)
    assert (ev.status, ev.tcb_date, ev.advisory_ids) == ("UpToDate", "2023-02-15T00:00:00Z", ())
    # only the TDX components of level 0 too high -> second level (OutOfDate) cannot match
    # either (same TDX components): no match
    lv0b = dataclasses.replace(lv0, tdx_svns=(3, 0, 5) + (0,) * 13)
    patched_b = dataclasses.replace(info, tcb_levels=(lv0b, *info.tcb_levels[1:]))
    assert _reason(evaluate_tdx_tcb, patched_b, pck.tcb, tee) == "attest.tdx.tcb_status"
    # a lower OutOfDate level behind it is selected, with its advisories
    lv1 = dataclasses.replace(
        lv0, status="OutOfDate", tcb_date="2018-01-04T00:00:00Z", advisory_ids=("INTEL-SA-1",)
    )
    ev = evaluate_tdx_tcb(dataclasses.replace(info, tcb_levels=(lv0b, lv1)), pck.tcb, tee)
    assert (ev.status, ev.tcb_date, ev.advisory_ids) == (
        "OutOfDate",
        "2018-01-04T00:00:00Z",
        ("INTEL-SA-1",),
    )
    # Revoked level -> revoked error
    lvr = dataclasses.replace(lv0, status="Revoked")
    assert (
        _reason(evaluate_tdx_tcb, dataclasses.replace(info, tcb_levels=(lvr,)), pck.tcb, tee)
        == "attest.tdx.revoked"
    )


def test_v4_full_path_with_patched_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    # Full verify_tdx path (signatures, CRLs, QE identity) with tcbLevels[0] lowered after
    # the signature check, as go-tdx-guest's test does before re-signing.
    lower_first_tcb_level(monkeypatch)
    c = verify_tdx(Q4, now=T4, collateral=full())
    assert (c.tcb_status, c.tcb_date, c.advisory_ids) == ("UpToDate", "2023-02-15T00:00:00Z", ())


def test_v5_tcb_info_signature_and_status() -> None:
    info = parse_tcb_info(TCB5)
    key = parse_pem_chain(TCB_CHAIN, reason="x")[0].public_key()
    assert verify_raw_p256(key, info.signature, info.signed_body)  # type: ignore[arg-type]
    q = parse_tdx_quote(Q5)
    pck = _pck_extension(pck_chain(Q5)[0])
    assert info.fmspc == pck.fmspc and info.pce_id == pck.pceid
    ev = evaluate_tdx_tcb(info, pck.tcb, q.body.tee_tcb_svn, tee_tcb_svn2=q.body.tee_tcb_svn2)
    assert (
        ev.status == "UpToDate" and ev.tcb_date == "2024-11-13T00:00:00Z" and ev.advisory_ids == ()
    )
    assert ev.tdx_module_status == "UpToDate"  # TDX_01, isvsvn 11 >= 6


def test_v5_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped TCB Signing certificate expired 2025-05-21 (Intel renewed it with the same
    # key), so a verification at 2026 correctly reports expired collateral ...
    c5 = TdxCollateral(tcb_info=TCB5, tcb_info_issuer_chain=TCB_CHAIN, allow_partial=True)
    assert _reason(verify_tdx, Q5, now=T5, collateral=c5) == "attest.tdx.collateral_expired"
    # ... and with the signature checked separately the rest of the appraisal gives UpToDate.
    import weightseal.attest._tdx as tdx

    def fake(collateral, *, now, pck_chain=None):  # type: ignore[no-untyped-def]
        info = parse_tcb_info(collateral.tcb_info)
        key = parse_pem_chain(collateral.tcb_info_issuer_chain, reason="x")[0].public_key()
        assert verify_raw_p256(key, info.signature, info.signed_body)
        return VerifiedTdxCollateral(tcb_info=info, qe_identity=None, crls_checked=False)

    monkeypatch.setattr(tdx, "verify_tdx_collateral", fake)
    c = verify_tdx(Q5, now=T5, collateral=c5)
    assert (c.tcb_status, c.tcb_date) == ("UpToDate", "2024-11-13T00:00:00Z")
    # FMSPC mismatch: the v4 platform's TCB Info for the v5 quote
    assert _reason(verify_tdx, Q5, now=T5, collateral=full()) == "attest.tdx.collateral"


def test_collateral_expired() -> None:
    chain = pck_chain(Q4)
    assert (
        _reason(verify_tdx_collateral, full(), now=T2053, pck_chain=chain)
        == "attest.tdx.collateral_expired"
    )
    # TCB Info nextUpdate 2023-07-18: after that (PCK chain still valid) -> expired collateral
    late = datetime(2023, 7, 20, tzinfo=UTC)
    assert _reason(verify_tdx, Q4, now=late, collateral=full()) == "attest.tdx.collateral_expired"
    # QE identity / PCK CRL nextUpdate 2023-07-08
    mid = datetime(2023, 7, 10, tzinfo=UTC)
    assert (
        _reason(verify_tdx_collateral, full(), now=mid, pck_chain=chain)
        == "attest.tdx.collateral_expired"
    )
    # before issueDate
    early = datetime(2023, 6, 1, tzinfo=UTC)
    assert (
        _reason(verify_tdx_collateral, full(), now=early, pck_chain=chain)
        == "attest.tdx.collateral_expired"
    )
    # at 2053 the quote's own chain is expired first
    assert _reason(verify_tdx, Q4, now=T2053, collateral=full()) == "attest.tdx.expired"


def _tamper(raw: bytes, old: bytes, new: bytes) -> bytes:
    assert raw.count(old) >= 1
    return raw.replace(old, new, 1)


def test_tampered_collateral_fails_signature() -> None:
    chain = pck_chain(Q4)
    bad_tcb = _tamper(TCB4, b'"tcbStatus":"OutOfDate"', b'"tcbStatus":"UpToDate"')
    bad_qe = _tamper(QEID, b'"isvsvn":4', b'"isvsvn":3')
    bad_sig = _tamper(TCB4, b'"signature":"f6', b'"signature":"f7')
    ws = _tamper(TCB4, b'"tcbInfo":{"id"', b'"tcbInfo":{ "id"')  # even whitespace is signed
    for c in (
        full(tcb_info=bad_tcb),
        full(qe_identity=bad_qe),
        full(tcb_info=bad_sig),
        full(tcb_info=ws),
    ):
        r = _reason(verify_tdx_collateral, c, now=T4, pck_chain=chain)
        assert r == "attest.tdx.collateral"


def test_malformed_collateral_json() -> None:
    chain = pck_chain(Q4)
    cases = [
        b"",
        b"[]",
        b"{",
        b'{"tcbInfo":{}}',
        TCB4 + b"x",
        TCB4.replace(b'{"tcbInfo"', b'{"tcbInfo":1,"tcbInfo"', 1),
        TCB4.replace(b'"version":3', b'"version":NaN', 1),
        TCB4.replace(b'"fmspc":"50806f000000"', b'"fmspc":"50806f0000"', 1),
        TCB4.replace(b'"tcbStatus":"UpToDate"', b'"tcbStatus":"Fine"', 1),
        b"\xff\xfe",
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
    ]
    for raw in cases:
        r = _reason(verify_tdx_collateral, full(tcb_info=raw), now=T4, pck_chain=chain)
        assert r == "attest.tdx.collateral", raw[:40]


def test_issuer_chains_and_crls() -> None:
    chain = pck_chain(Q4)
    # TCB Info signed by the TCB Signing key, not by the PCK CA
    assert (
        _reason(
            verify_tdx_collateral,
            full(tcb_info_issuer_chain=PCK_CRL_CHAIN),
            now=T4,
            pck_chain=chain,
        )
        == "attest.tdx.collateral"
    )
    # CRLs swapped: wrong issuer
    assert (
        _reason(verify_tdx_collateral, full(pck_crl=ROOTCRL), now=T4, pck_chain=chain)
        == "attest.tdx.collateral"
    )
    assert (
        _reason(verify_tdx_collateral, full(root_crl=PCKCRL), now=T4, pck_chain=chain)
        == "attest.tdx.collateral"
    )
    # a CRL byte flipped in its signature
    bad = bytearray(PCKCRL)
    bad[-5] ^= 1
    assert (
        _reason(verify_tdx_collateral, full(pck_crl=bytes(bad)), now=T4, pck_chain=chain)
        == "attest.tdx.collateral"
    )
    assert (
        _reason(verify_tdx_collateral, full(pck_crl=b"garbage"), now=T4, pck_chain=chain)
        == "attest.tdx.collateral"
    )
    # PEM and hex encodings of the CRL are accepted
    import base64

    pem = b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(PCKCRL) + b"-----END X509 CRL-----\n"
    assert verify_tdx_collateral(
        full(pck_crl=pem, root_crl=ROOTCRL.hex().encode()), now=T4, pck_chain=chain
    ).crls_checked
    # incomplete collateral is refused unless explicitly partial
    for missing in ("qe_identity", "pck_crl", "root_crl"):
        c = full(**{missing: None})
        assert _reason(verify_tdx_collateral, c, now=T4, pck_chain=chain) == "attest.tdx.collateral"
        assert verify_tdx_collateral(
            dataclasses.replace(c, allow_partial=True), now=T4, pck_chain=chain
        )


def test_revoked_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sample PCK CRL revokes other serials; pretend the PCK leaf had one of them.
    from cryptography import x509

    crl = x509.load_der_x509_crl(PCKCRL)
    revoked_serial = next(iter(crl)).serial_number
    chain = pck_chain(Q4)

    class Leaf:
        def __init__(self, real: x509.Certificate) -> None:
            self._real = real
            self.serial_number = revoked_serial
            self.issuer = real.issuer
            self.subject = real.subject

    fake = [Leaf(chain[0]), chain[1], chain[2]]
    assert _reason(verify_tdx_collateral, full(), now=T4, pck_chain=fake) == "attest.tdx.revoked"
    assert chain[0].serial_number != revoked_serial


def test_qe_identity_status() -> None:
    qe = parse_qe_identity(QEID)
    r = parse_tdx_quote(Q4).qe_report
    kw = dict(
        mrsigner=r.mrsigner,
        isvprodid=r.isvprodid,
        isvsvn=r.isvsvn,
        miscselect=r.miscselect,
        attributes=r.attributes,
    )
    status, level = qe_identity_status(qe, **kw)  # type: ignore[arg-type]
    assert status == "UpToDate" and level is not None and level.isvsvn == 4
    assert qe_identity_status(qe, **{**kw, "isvsvn": 3})[0] == "NotSupported"  # type: ignore[arg-type]
    for bad in (
        {"mrsigner": bytes(32)},
        {"isvprodid": 1},
        {"miscselect": 1},
        {"attributes": b"\x13" + r.attributes[1:]},
    ):
        assert _reason(qe_identity_status, qe, **{**kw, **bad}) == "attest.tdx.tcb_status"
    # attribute bits outside the mask are ignored (mask byte 0 is 0xFB: bit 2 free)
    assert (
        qe_identity_status(
            qe, **{**kw, "attributes": bytes([r.attributes[0] ^ 0x04]) + r.attributes[1:]}
        )[0]
        == "UpToDate"
    )  # type: ignore[arg-type]


def _level(sgx: int, tdx: tuple[int, ...], status: str, date: str) -> TdxTcbLevel:
    return TdxTcbLevel((sgx,) * 16, 0, tdx + (0,) * (16 - len(tdx)), date, status)


def test_status_convergence_and_relaunch() -> None:
    from weightseal.attest._tdx_collateral import TdxModuleIdentity, TdxModuleLevel
    from weightseal.attest._tdx_der import PckTcb

    info = parse_tcb_info(TCB5)
    pck = PckTcb(comp_svns=(9,) * 16, pcesvn=20, cpusvn=bytes(16))
    ident = TdxModuleIdentity(
        "TDX_01", bytes(48), bytes(8), b"\xff" * 8,
        (TdxModuleLevel(6, "2024-11-13T00:00:00Z", "UpToDate"), TdxModuleLevel(2, "2023-08-09T00:00:00Z", "OutOfDate", ("SA-M",))),
    )  # fmt: skip
    latest = _level(0, (5, 0, 3), "UpToDate", "2024")
    older = _level(0, (5, 0, 2), "OutOfDate", "2023")
    info = dataclasses.replace(info, tcb_levels=(latest, older), tdx_module_identities=(ident,))
    tee_new = bytes([6, 1, 3]) + bytes(13)
    assert evaluate_tdx_tcb(info, pck, tee_new).status == "UpToDate"
    # module isvsvn 4 -> module OutOfDate; level UpToDate -> converged OutOfDate
    tee_mod_old = bytes([4, 1, 3]) + bytes(13)
    ev = evaluate_tdx_tcb(info, pck, tee_mod_old)
    assert ev.status == "OutOfDate" and ev.advisory_ids == ("SA-M",)
    # module below every level -> no match; unknown module version -> no match
    assert (
        _reason(evaluate_tdx_tcb, info, pck, bytes([1, 1, 3]) + bytes(13))
        == "attest.tdx.tcb_status"
    )
    assert (
        _reason(evaluate_tdx_tcb, info, pck, bytes([9, 2, 3]) + bytes(13))
        == "attest.tdx.tcb_status"
    )
    # microcode (index 2) old -> second level OutOfDate
    assert evaluate_tdx_tcb(info, pck, bytes([6, 1, 2]) + bytes(13)).status == "OutOfDate"
    # TDX 1.5 relaunch: running TD OutOfDate (module) but TEE_TCB_SVN2 already current
    ev = evaluate_tdx_tcb(info, pck, tee_mod_old, tee_tcb_svn2=tee_new)
    assert ev.status == "TDRelaunchAdvised"
    assert evaluate_tdx_tcb(info, pck, tee_mod_old, tee_tcb_svn2=tee_mod_old).status == "OutOfDate"
    # QE status convergence
    assert evaluate_tdx_tcb(info, pck, tee_new, qe_status="OutOfDate").status == "OutOfDate"
    assert (
        _reason(evaluate_tdx_tcb, info, pck, tee_new, qe_status="Revoked") == "attest.tdx.revoked"
    )
    assert (
        _reason(evaluate_tdx_tcb, info, pck, tee_new, qe_status="NotSupported")
        == "attest.tdx.tcb_status"
    )
    # QE OutOfDate blocks the relaunch advice
    assert (
        evaluate_tdx_tcb(info, pck, tee_mod_old, tee_tcb_svn2=tee_new, qe_status="OutOfDate").status
        == "OutOfDate"
    )
    # PCESVN below every level
    low = PckTcb(comp_svns=(9,) * 16, pcesvn=0, cpusvn=bytes(16))
    info_pce = dataclasses.replace(
        info, tcb_levels=tuple(dataclasses.replace(lv, pcesvn=1) for lv in info.tcb_levels)
    )
    assert _reason(evaluate_tdx_tcb, info_pce, low, tee_new) == "attest.tdx.tcb_status"


def test_tdx_module_identity_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    import weightseal.attest._tdx as tdx

    def fake(collateral, *, now, pck_chain=None):  # type: ignore[no-untyped-def]
        info = parse_tcb_info(TCB5)
        ident = dataclasses.replace(info.tdx_module_identities[1], mrsigner=b"\x01" * 48)
        info = dataclasses.replace(info, tdx_module_identities=(ident,))
        return VerifiedTdxCollateral(tcb_info=info, qe_identity=None, crls_checked=False)

    monkeypatch.setattr(tdx, "verify_tdx_collateral", fake)
    c5 = TdxCollateral(tcb_info=TCB5, tcb_info_issuer_chain=TCB_CHAIN, allow_partial=True)
    with pytest.raises(AttestationError, match="MRSIGNERSEAM") as ei:
        verify_tdx(Q5, now=T5, collateral=c5)
    assert ei.value.reason == "attest.tdx.tcb_status"


def test_pcs_fetcher_is_injectable_and_cached() -> None:
    from urllib.parse import quote

    calls: list[str] = []
    responses = {
        "tcb?fmspc=50806f000000": (TCB4, {"TCB-Info-Issuer-Chain": quote(TCB_CHAIN.decode())}),
        "qe/identity": (QEID, {"SGX-Enclave-Identity-Issuer-Chain": quote(QE_CHAIN.decode())}),
        "pckcrl?ca=platform": (PCKCRL, {"SGX-PCK-CRL-Issuer-Chain": quote(PCK_CRL_CHAIN.decode())}),
        "IntelSGXRootCA.der": (ROOTCRL, {}),
    }

    def get(url: str):  # type: ignore[no-untyped-def]
        calls.append(url)
        for k, v in responses.items():
            if k in url:
                return v
        raise AssertionError(url)

    f = IntelPcsFetcher(http_get=get)
    assert common_ca(Q4) == "platform"
    # no matching level for the unmodified sample (as with offline collateral) ...
    assert _reason(verify_tdx, Q4, now=T4, fetcher=f) == "attest.tdx.tcb_status"
    assert len(calls) == 4 and all(u.startswith("https://") for u in calls)
    # ... fetched once, then served from the cache until nextUpdate
    assert _reason(verify_tdx, Q4, now=T4, fetcher=f) == "attest.tdx.tcb_status"
    assert len(calls) == 4

    # a failing transport is a collateral error
    def boom(url: str):  # type: ignore[no-untyped-def]
        raise OSError("network down")

    assert (
        _reason(verify_tdx, Q4, now=T4, fetcher=IntelPcsFetcher(http_get=boom))
        == "attest.tdx.collateral"
    )


def common_ca(quote: bytes) -> str:
    from weightseal.attest._tdx_pki import common_name

    cn = common_name(pck_chain(quote)[1].subject)
    assert cn in _PCK_CA_NAMES
    return "platform" if cn == _PCK_CA_NAMES[0] else "processor"


def test_collateral_repr_has_no_bulk() -> None:
    r = repr(full())
    assert "tcb_info=2401 bytes" in r and "BEGIN" not in r


def test_json_spans_exact() -> None:
    info = parse_tcb_info(TCB4)
    assert json.loads(info.signed_body)["fmspc"] == "50806f000000"
    assert TCB4.index(info.signed_body) == len(b'{"tcbInfo":')
    _ = T5, Q5
