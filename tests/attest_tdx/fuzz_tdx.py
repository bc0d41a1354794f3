"""atheris harness for the TDX quote verifier and its collateral parsers.

Run by hand:   python tests/attest_tdx/fuzz_tdx.py -runs=100000
(tests/attest_tdx/test_tdx_fuzz.py runs a short session).  The only exceptions allowed out of
the verifier are ``AttestationError``s with an ``attest.tdx.*`` reason.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from weightseal.attest._errors import AttestationError
    from weightseal.attest._tdx import verify_tdx
    from weightseal.attest._tdx_collateral import (
        TdxCollateral,
        parse_qe_identity,
        parse_tcb_info,
        verify_tdx_collateral,
    )

DATA = Path(__file__).resolve().parents[1] / "data" / "attestation" / "tdx" / "go-tdx-guest"
SEEDS = [
    (DATA / "tdx_prod_quote_SPR_E4.dat").read_bytes(),
    (DATA / "quote_v5_sample.dat").read_bytes(),
]
CHAIN = (DATA / "derived" / "tcbInfoIssuerChain.pem").read_bytes()
NOW = datetime(2023, 7, 1, 1, tzinfo=UTC)


def _check(e: AttestationError) -> None:
    if not e.reason.startswith("attest.tdx."):
        raise AssertionError(f"unexpected reason {e.reason}")


def test_one(data: bytes) -> None:
    if not data:
        return
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode <= 1:
        # mutate a real quote (keeps the fuzzer deep inside the format)
        seed = bytearray(SEEDS[mode])
        for _ in range(fdp.ConsumeIntInRange(1, 8)):
            if fdp.remaining_bytes() < 3:
                break
            pos = fdp.ConsumeIntInRange(0, len(seed) - 1)
            seed[pos] = fdp.ConsumeInt(1) & 0xFF
        blob = (
            bytes(seed[: fdp.ConsumeIntInRange(0, len(seed))]) if fdp.ConsumeBool() else bytes(seed)
        )
    else:
        blob = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if mode == 3:
            for parser in (parse_tcb_info, parse_qe_identity):
                try:
                    parser(blob)
                except AttestationError as e:
                    _check(e)
            verify_tdx_collateral(
                TdxCollateral(tcb_info=blob, tcb_info_issuer_chain=CHAIN, allow_partial=True),
                now=NOW,
            )
        else:
            verify_tdx(blob, now=NOW)
    except AttestationError as e:
        _check(e)


def main() -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
