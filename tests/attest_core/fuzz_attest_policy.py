"""atheris harness: the policy document parser (JSON and YAML).

Run by hand:  python tests/attest_core/fuzz_attest_policy.py -runs=100000
Only PolicyFormatError may escape parsing; a parsed policy must round-trip to the same digest."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from weightseal.attest._errors import PolicyFormatError
    from weightseal.attest._policy import Policy

_SEEDS = [
    b'{"version":1,"model_versions":[1],"profiles":[{"platform":"snp","measurements":["' + b"00" * 48 + b'"]}]}',
    b"version: 1\nmodel_versions: [1]\nprofiles:\n - platform: tdx\n   mrtd: ['" + b"00" * 48 + b"']\n",
]


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris API name
    if data[:1] == b"\x00" and len(data) > 2:  # splice into a valid seed to get past the JSON layer
        seed = _SEEDS[data[1] % 2]
        pos = data[2] % len(seed)
        data = seed[:pos] + data[3:] + seed[pos:]
    try:
        p = Policy.loads(data)
    except PolicyFormatError:
        return
    again = Policy.loads(p.canonical_json())
    assert again.digest == p.digest, "canonical form does not round-trip"


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
