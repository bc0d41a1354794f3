"""More REAL Intel TDX quotes, from confidential-containers/trustee's verifier test data
(tests/data/attestation/PROVENANCE.md, ``tdx/trustee``): a v4 quote from a DEBUG TD whose every
body field trustee's own parser test lists (parse_tdx_claims_expected.json), a v5 quote, a v4
quote from another platform family, and an Azure TD quote whose REPORT_DATA binds the vTPM HCL
report (recomputed here from the HCL report's bytes)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from weightseal.attest import (
    AttestationError,
    Policy,
    PolicyDenied,
    evaluate,
    report_data,
    verify_tdx,
)

T = Path(__file__).resolve().parents[1] / "data" / "attestation" / "tdx" / "trustee"


def rd(rel: str) -> bytes:
    return (T / rel).read_bytes()


def _reason(fn, *a, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return ei.value.reason


def test_quote_4_matches_trustees_parsed_claims() -> None:
    want = json.loads(rd("parse_tdx_claims_expected.json"))
    body, header = want["quote"]["body"], want["quote"]["header"]
    c = verify_tdx(rd("tdx_quote_4.dat"))
    assert (c.quote_version, c.body_type) == (4, 2) and header["version"] == "0400"
    got = {
        "mr_config_id": c.mr_config_id, "mr_owner": c.mr_owner, "mr_owner_config": c.mr_owner_config,
        "mr_seam": c.mr_seam, "mr_td": c.mr_td, "mrsigner_seam": c.mr_signer_seam, "report_data": c.report_data,
        "rtmr_0": c.rtmrs[0], "rtmr_1": c.rtmrs[1], "rtmr_2": c.rtmrs[2], "rtmr_3": c.rtmrs[3],
        "seam_attributes": c.seam_attributes, "tcb_svn": c.tee_tcb_svn, "td_attributes": c.td_attributes,
        "xfam": c.xfam,
    }
    assert {k: v.hex() for k, v in got.items()} == {k: body[k] for k in got}
    assert set(body) == set(got)  # every body field trustee lists is compared
    assert c.qe_vendor_id.hex() == header["vendor_id"]
    assert c.report_data.hex() == want["report_data"]
    # td_attributes: DEBUG (bit 0) and SEPT_VE_DISABLE (bit 28) set, as trustee decodes them
    assert want["td_attributes"]["debug"] is True and c.debug is True
    assert want["td_attributes"]["septve_disable"] is True
    assert int.from_bytes(c.td_attributes, "little") >> 28 & 1 == 1
    assert c.fmspc.hex() == "50806f000000"


def test_a_debug_td_is_denied_by_default() -> None:
    c = verify_tdx(rd("tdx_quote_4.dat"))
    profile = {"platform": "tdx", "mrtd": [c.mr_td.hex()]}
    with pytest.raises(PolicyDenied) as ei:
        evaluate(Policy.from_dict({"version": 1, "model_versions": [1], "profiles": [profile]}), [c],
                 model_version=1, allow_mock=False)
    assert (ei.value.reason, ei.value.rule) == ("policy.debug", "profiles[0].allow_debug")
    allowed = {**profile, "allow_debug": True}
    d = evaluate(Policy.from_dict({"version": 1, "model_versions": [1], "profiles": [allowed]}), [c],
                 model_version=1, allow_mock=False)
    assert d.allowed is True


@pytest.mark.parametrize("name,version,body_type,fmspc,debug", [
    ("tdx_quote_5.dat", 5, 3, "90c06f000000", False),
    ("tdx_quote_6.dat", 4, 2, "00a06d080000", False),
    ("az-tdx-vtpm/td-quote.bin", 4, 2, "00806f050000", False),
])
def test_more_quotes_verify(name: str, version: int, body_type: int, fmspc: str, debug: bool) -> None:
    c = verify_tdx(rd(name))
    assert (c.quote_version, c.body_type, c.fmspc.hex(), c.debug) == (version, body_type, fmspc, debug)
    assert (c.tee_tcb_svn_2 is not None) == (body_type == 3)
    # one flipped bit in the TD report body is caught by the quote signature
    bad = bytearray(rd(name))
    bad[48 + 200] ^= 1
    assert _reason(verify_tdx, bytes(bad)) == "attest.tdx.signature"


def test_azure_td_quote_binds_the_hcl_report() -> None:
    hcl = rd("az-tdx-vtpm/hcl-report.bin")
    assert hcl[:4] == b"HCLA"
    off = 0x20 + 1184
    _size, _ver, report_type, hash_type, vsize = struct.unpack_from("<5I", hcl, off)
    assert (report_type, hash_type) == (4, 1)  # TDX, SHA-256
    expected = hashlib.sha256(hcl[off + 20: off + 20 + vsize]).digest() + bytes(32)
    c = verify_tdx(rd("az-tdx-vtpm/td-quote.bin"), expected_report_data=expected)
    assert c.report_data == expected
    # so a weightseal release binding cannot be met on such a VM (README: Azure)
    ours = report_data(b"\x01" * 32, "llama", b"\x02" * 32)
    assert _reason(verify_tdx, rd("az-tdx-vtpm/td-quote.bin"), expected_report_data=ours) == "attest.tdx.binding"
    # trustee's negative case: HCL byte 0x880 changed -> the binding no longer holds
    bad = bytearray(hcl)
    bad[0x0880] += 1
    wrong = hashlib.sha256(bytes(bad)[off + 20: off + 20 + vsize]).digest() + bytes(32)
    assert _reason(verify_tdx, rd("az-tdx-vtpm/td-quote.bin"), expected_report_data=wrong) == "attest.tdx.binding"
