"""atheris harness for the NVIDIA GPU evidence parser/verifier and the RIM parser.

Run by hand:  python tests/attest_gpu/fuzz_gpu.py -runs=100000
(tests/attest_gpu/test_nvgpu_fuzz.py runs it briefly in a subprocess.)

Seeds: the real Hopper report (raw bytes) and the legacy driver RIM.  The input's first byte
chooses the target: report+real chain, chain PEM with the real report, or a RIM document.
Only ``AttestationError`` may escape the inner functions (no catch-all wrapper is used here,
so an IndexError, struct.error, UnicodeDecodeError ... is reported as a crash).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from weightseal.attest._errors import AttestationError
    from weightseal.attest._nvgpu import _verify
    from weightseal.attest._nvgpu_rim import _verify_rim

_DATA = Path(__file__).resolve().parents[1] / "data" / "attestation" / "nvgpu" / "nvtrust"
_REPORT = bytes.fromhex((_DATA / "hopperAttestationReport.txt").read_text().strip())
_CHAIN = (_DATA / "hopperCertChain.txt").read_bytes()
_NOW = datetime(2024, 1, 15, tzinfo=UTC)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris naming
    if not data:
        return
    sel, body = data[0] % 3, data[1:]
    try:
        if sel == 0:
            _verify(body, _CHAIN, _NOW, None, (), None)
        elif sel == 1:
            _verify(_REPORT, body, _NOW, None, (), None)
        else:
            _verify_rim(body, now=_NOW)
    except AttestationError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
