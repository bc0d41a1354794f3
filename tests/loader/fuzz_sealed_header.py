#!/usr/bin/env python
"""atheris fuzz harness for the sealed header / manifest / key-file parsers.

    python tests/loader/fuzz_sealed_header.py -runs=100000
Only IntegrityError (or KeyFileError for key files) may escape; anything else is a bug.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

# heavy dependencies first, uninstrumented: only our parsers are instrumented
import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
import numpy  # noqa: F401
import torch  # noqa: F401

with atheris.instrument_imports(include=["weightseal.loader"]):
    import weightseal.loader._format as F
    from weightseal.loader import DataKey, IntegrityError, KeyFileError, LocalKey
    from weightseal.loader._manifest import parse_manifest

_LK = LocalKey(bytes(range(32)))


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris naming
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 5)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if which == 0:
            m = parse_manifest(F.MANIFEST_MAGIC + rest)
            try:
                _LK.unwrap_dek(m.key_ref, m.model_id, m.model_version)
            except IntegrityError:
                pass
        elif which == 1:
            parse_manifest(rest)
        elif which == 2:
            pre = rest[:F.PREAMBLE_LEN].ljust(F.PREAMBLE_LEN, b"\0")
            p = F.parse_preamble(F.SHARD_MAGIC + pre[8:], len(rest) + 4096)
            _ = (p.n_chunks, p.chunk_size)
        elif which == 3:
            meta, st = F.split_inner(rest)
            F.parse_st_header(st, None, IntegrityError)
        elif which == 4:
            F.parse_st_header(rest, None, IntegrityError)
        else:
            try:
                LocalKey._parse(bytearray(rest), Path("fuzz"))
            except KeyFileError:
                pass
    except IntegrityError:
        pass
    _ = DataKey


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
