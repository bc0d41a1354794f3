"""atheris fuzz harness for the SEV-SNP verifier.

Run by hand for as long as you like::

    python tests/attest_snp/fuzz_snp.py -max_total_time=600
    python tests/attest_snp/fuzz_snp.py -runs=20000

The property: for any input, ``verify_snp`` (and the report / certificate-table parsers) either
return claims for genuinely valid evidence or raise an ``AttestationError`` with an
``attest.snp.*`` reason -- never another exception, and never via the catch-all net.
Inputs are steered by the first byte: 0 = raw report bytes (with the real VCEK), 1 = the real
report with fuzz-chosen byte edits, 2 = a fuzzed certificate blob with the real report,
3 = the real VCEK with byte edits, 4 = the certificate-table parser alone, 5 = AMD's real Milan
ARK CRL with byte edits (``check_snp_crl``, ``load_snp_crl``), 6 = arbitrary CRL bytes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports():
    from weightseal.attest._errors import AttestationError
    from weightseal.attest._snp import verify_snp
    from weightseal.attest._snp_certs import parse_snp_cert_table
    from weightseal.attest._snp_crl import check_snp_crl, load_snp_crl
    from weightseal.attest._snp_report import parse_snp_report

import snp_testlib  # noqa: E402

REPORT = snp_testlib.gsg_report()
VCEK = snp_testlib.gsg_vcek()
NOW = datetime(2022, 9, 24, 1, 0, tzinfo=UTC)
CRL = (snp_testlib.DATA / "openpcc" / "amd_milan_crl.pem").read_bytes()
CRL_NOW = datetime(2025, 6, 1, tzinfo=UTC)


def _edit(base: bytes, fdp: atheris.FuzzedDataProvider) -> bytes:
    buf = bytearray(base)
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        if not buf:
            break
        pos = fdp.ConsumeIntInRange(0, len(buf) - 1)
        buf[pos] = fdp.ConsumeIntInRange(0, 255)
    if fdp.ConsumeBool():
        cut = fdp.ConsumeIntInRange(0, len(buf))
        buf = buf[:cut]
    return bytes(buf)


def _check(fn: object, *args: object, **kw: object) -> None:
    try:
        fn(*args, **kw)  # type: ignore[operator]
    except AttestationError as exc:
        if not exc.reason.startswith("attest.snp.") or "unexpected" in str(exc):
            raise AssertionError(f"bad error: {exc.reason}: {exc}") from exc


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris entry point name
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 6)
    if mode == 0:
        rep = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2500))
        _check(parse_snp_report, rep)
        _check(verify_snp, rep, VCEK, now=NOW)
    elif mode == 1:
        _check(verify_snp, _edit(REPORT, fdp), VCEK, now=NOW)
    elif mode == 2:
        _check(verify_snp, REPORT, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4000)), now=NOW)
    elif mode == 3:
        _check(verify_snp, REPORT, _edit(VCEK, fdp), now=NOW)
    elif mode == 4:
        _check(parse_snp_cert_table, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 600)))
    else:
        crl = _edit(CRL, fdp) if mode == 5 else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2000))
        _check(load_snp_crl, crl)
        _check(check_snp_crl, crl, "Milan", "vcek", now=CRL_NOW)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
