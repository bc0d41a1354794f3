"""atheris harness: the mock report parser/verifier and the evidence bundle parser.

Run by hand:  python tests/attest_core/fuzz_attest_mock.py -runs=100000
Only our typed errors may escape; anything else is a crash."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from weightseal.attest import UnsafeMockPlatform
    from weightseal.attest._errors import AttestationError
    from weightseal.attest._mock import verify_mock
    from weightseal.attest._verify import loads_bundle

_PLAT = UnsafeMockPlatform.from_seed(bytes(32))
_SEED = _PLAT.report(bytes(64)).report


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris API name
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if mode == 0:
            verify_mock(rest)
        elif mode == 1:  # mutate a valid report in place: must never verify unless unchanged
            buf = bytearray(_SEED)
            for i in range(0, len(rest) - 1, 2):
                buf[rest[i] % len(buf)] ^= rest[i + 1]
            claims = verify_mock(bytes(buf))
            assert bytes(buf) == _SEED, "a modified mock report verified"
            assert claims.report_data == bytes(64)
        else:
            loads_bundle(rest)
    except AttestationError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
