"""TdxCollateralDir: collateral for a fleet kept on disk, one set per FMSPC, with the real
go-tdx-guest collateral (FMSPC 50806f000000) and quotes."""

from __future__ import annotations

from pathlib import Path

import pytest
from tdx_testlib import Q4, Q5, T4, T5, lower_first_tcb_level, read
from weightseal.attest._errors import AttestationError
from weightseal.attest._tdx import verify_tdx
from weightseal.attest._tdx_collateral import TdxCollateralDir, load_tdx_collateral_dir

FMSPC4 = "50806f000000"  # Q4's PCK certificate (Platform CA)
FMSPC5 = "90c06f000000"  # Q5's

FULL = {
    "tcb_info.json": "collateral/sample_tcbInfo_response",
    "tcb_info_issuer_chain.pem": "derived/tcbInfoIssuerChain.pem",
    "qe_identity.json": "collateral/sample_qeIdentity_response",
    "qe_identity_issuer_chain.pem": "derived/qeIdentityIssuerChain.pem",
    "pck_crl.der": "collateral/pckcrl",
    "root_crl.der": "collateral/rootcrl.der",
    "pck_crl_issuer_chain.pem": "derived/pckCrlIssuerChain.pem",
}


def _fleet(root: Path, files: dict[str, str] = FULL, fmspc: str = FMSPC4) -> Path:
    d = root / fmspc
    d.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        (d / name).write_bytes(read(src))
    return d


def _reason(fn, *a, **kw) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return str(ei.value.reason), str(ei.value)


@pytest.fixture
def lowered_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_first_tcb_level(monkeypatch)


def test_quote_is_appraised_with_the_set_for_its_fmspc(tmp_path: Path, lowered_levels: None) -> None:
    _fleet(tmp_path)
    store = TdxCollateralDir(tmp_path)
    assert store.platforms() == [FMSPC4]
    c = verify_tdx(Q4, now=T4, fetcher=store)
    assert (c.tcb_status, c.tcb_date, c.advisory_ids, c.fmspc.hex()) == ("UpToDate", "2023-02-15T00:00:00Z", (), FMSPC4)


def test_unpatched_real_collateral_runs_the_full_appraisal(tmp_path: Path) -> None:
    # the same outcome as TdxCollateral passed directly: signatures, chains, CRLs and QE identity
    # all verify, and the TCB level match is what fails
    _fleet(tmp_path)
    reason, msg = _reason(verify_tdx, Q4, now=T4, fetcher=TdxCollateralDir(tmp_path))
    assert reason == "attest.tdx.tcb_status" and "no matching TCB level" in msg


def test_a_platform_without_a_set_is_an_error(tmp_path: Path) -> None:
    _fleet(tmp_path)  # 50806f000000 only
    (tmp_path / "not-an-fmspc").mkdir()
    store = TdxCollateralDir(tmp_path)
    assert store.platforms() == [FMSPC4]
    reason, msg = _reason(verify_tdx, Q5, now=T5, fetcher=store)
    assert reason == "attest.tdx.collateral" and FMSPC5 in msg
    # without any collateral source the quote verifies, with no TCB status
    assert verify_tdx(Q5, now=T5).tcb_status is None


def test_files_are_read_per_call(tmp_path: Path, lowered_levels: None) -> None:
    d = _fleet(tmp_path, {k: v for k, v in FULL.items() if not k.startswith("qe_identity")})
    store = TdxCollateralDir(tmp_path)
    reason, _ = _reason(verify_tdx, Q4, now=T4, fetcher=store)  # QE identity is required ...
    assert reason == "attest.tdx.collateral"
    assert verify_tdx(Q4, now=T4, fetcher=TdxCollateralDir(tmp_path, allow_partial=True)).tcb_status == "UpToDate"
    _fleet(tmp_path)  # ... until the operator drops it in: no new object needed
    assert verify_tdx(Q4, now=T4, fetcher=store).tcb_status == "UpToDate"
    (d / "tcb_info.json").write_bytes(read(FULL["tcb_info.json"]).replace(b'"TDX"', b'"TDY"', 1))
    reason, _ = _reason(verify_tdx, Q4, now=T4, fetcher=store)  # an edited file is caught
    assert reason == "attest.tdx.collateral"


def test_ca_specific_pck_crl_is_preferred(tmp_path: Path, lowered_levels: None) -> None:
    d = _fleet(tmp_path)
    (d / "pck_crl.der").write_bytes(b"\x30\x03\x02\x01\x00")  # junk under the generic name
    (d / "pck_crl_platform.der").write_bytes(read("collateral/pckcrl"))
    assert verify_tdx(Q4, now=T4, fetcher=TdxCollateralDir(tmp_path)).tcb_status == "UpToDate"
    (d / "pck_crl_platform.der").unlink()
    reason, _ = _reason(verify_tdx, Q4, now=T4, fetcher=TdxCollateralDir(tmp_path))
    assert reason.startswith("attest.tdx.")  # the junk CRL is used, and refused
    assert reason != "attest.tdx.tcb_status"


def test_layout_errors(tmp_path: Path) -> None:
    reason, msg = _reason(TdxCollateralDir, tmp_path / "absent")
    assert reason == "attest.tdx.collateral" and "does not exist" in msg
    d = _fleet(tmp_path, {"tcb_info.json": FULL["tcb_info.json"]})
    reason, msg = _reason(load_tdx_collateral_dir, d)
    assert reason == "attest.tdx.collateral" and "tcb_info_issuer_chain.pem" in msg
    reason, _ = _reason(TdxCollateralDir(tmp_path).collateral, bytes(5), "platform", now=T4)
    assert reason == "attest.tdx.collateral"
    (d / "tcb_info_issuer_chain.pem").write_bytes(read(FULL["tcb_info_issuer_chain.pem"]))
    got = load_tdx_collateral_dir(d, partial=True)
    assert got.tcb_info == read(FULL["tcb_info.json"]) and got.qe_identity is None and got.allow_partial
