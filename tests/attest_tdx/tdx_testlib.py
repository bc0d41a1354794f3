"""Shared helpers for the TDX verifier tests (imported by the test modules in this folder)."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data" / "attestation" / "tdx" / "go-tdx-guest"
Q4 = (DATA / "tdx_prod_quote_SPR_E4.dat").read_bytes()
Q5 = (DATA / "quote_v5_sample.dat").read_bytes()
T4 = datetime(2023, 7, 1, 1, 0, tzinfo=UTC)  # go-tdx-guest verify_test.go
T5 = datetime(2026, 2, 3, 1, 0, tzinfo=UTC)
T2053 = datetime(2053, 7, 1, 1, 0, tzinfo=UTC)

TDX_REASONS = {
    "attest.tdx.parse",
    "attest.tdx.chain",
    "attest.tdx.qe_report",
    "attest.tdx.qe_binding",
    "attest.tdx.signature",
    "attest.tdx.binding",
    "attest.tdx.expired",
    "attest.tdx.collateral",
    "attest.tdx.collateral_expired",
    "attest.tdx.tcb_status",
    "attest.tdx.revoked",
}

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", re.DOTALL)


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


def pem_blocks(quote: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end, DER) of every base64 body of the PCK chain inside the quote."""
    out = []
    for m in _PEM.finditer(quote):
        body = m.group(1)
        out.append((m.start(1), m.end(1), base64.b64decode(body.replace(b"\n", b""))))
    return out


def reencode(der: bytes, like: bytes) -> bytes:
    """base64 of ``der`` laid out in lines exactly like the original body ``like``."""
    b64 = base64.b64encode(der)
    lines = like.split(b"\n")
    out = []
    pos = 0
    for line in lines:
        out.append(b64[pos : pos + len(line)])
        pos += len(line)
    assert pos == len(b64)
    return b"\n".join(out)


def replace_der(quote: bytes, index: int, new_der: bytes) -> bytes:
    start, end, _ = pem_blocks(quote)[index]
    return quote[:start] + reencode(new_der, quote[start:end]) + quote[end:]


def lower_first_tcb_level(monkeypatch: Any) -> None:
    """Lower tcbLevels[0] of every parsed TCB Info after its signature check, as go-tdx-guest's
    own test does before re-signing: the sample TCB Info has no level the sample quote reaches,
    so this is how the full collateral path reaches a status with real, signed data."""
    import weightseal.attest._tdx_collateral as col

    real = col.parse_tcb_info

    def patched(raw: bytes) -> Any:
        info = real(raw)
        lv0 = dataclasses.replace(info.tcb_levels[0], sgx_svns=(0,) * 16, tdx_svns=(0,) * 16)
        return dataclasses.replace(info, tcb_levels=(lv0, *info.tcb_levels[1:]))

    monkeypatch.setattr(col, "parse_tcb_info", patched)
