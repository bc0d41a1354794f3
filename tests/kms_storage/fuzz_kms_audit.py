"""atheris harness for the audit-log verifier (run by hand, not collected by pytest):

    .venv/bin/python tests/kms_storage/fuzz_kms_audit.py -runs=20000
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from weightseal.kms._audit import iter_records, verify_log
    from weightseal.kms._errors import AuditError

PK = bytes(32)
_DIR = tempfile.mkdtemp(prefix="fuzz-audit-")
_PATH = os.path.join(_DIR, "a.log")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris naming
    with open(_PATH, "wb") as f:
        f.write(data)
    verify_log(_PATH, PK)
    try:
        for _ in iter_records(_PATH):
            pass
    except AuditError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
