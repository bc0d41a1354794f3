"""Short fuzz runs: atheris in a subprocess, plus a seeded random-mutation run in-process."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from tdx_testlib import Q4, Q5, T4, TDX_REASONS
from weightseal.attest._errors import AttestationError
from weightseal.attest._tdx import verify_tdx

HERE = Path(__file__).resolve().parent


@pytest.mark.fuzz
def test_atheris_short_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # seeds: selector byte 0/1 (mutate the v4/v5 quote) and 2 (raw bytes)
    (corpus / "a").write_bytes(b"\x00" * 32)
    (corpus / "b").write_bytes(b"\x01" * 32)
    (corpus / "c").write_bytes(b"\x02" + Q4[:200])
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [
            sys.executable,
            str(HERE / "fuzz_tdx.py"),
            "-runs=3000",
            "-max_total_time=20",
            "-seed=1",
            str(corpus),
        ],
        capture_output=True,
        timeout=240,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    tail = proc.stderr.decode(errors="replace")[-3000:]
    assert proc.returncode == 0, tail
    assert "Done" in tail or "pulse" in tail or "INITED" in tail, tail


def test_random_mutations_only_our_errors() -> None:
    rng = random.Random(20240601)  # noqa: S311 - deterministic test data
    accepted = 0
    for i in range(600):
        q = bytearray(Q4 if i % 2 else Q5)
        for _ in range(rng.randint(1, 4)):
            q[rng.randrange(len(q))] = rng.randrange(256)
        if rng.random() < 0.2:
            del q[rng.randrange(len(q)) :]
        try:
            verify_tdx(bytes(q), now=T4)
            accepted += 1
        except AttestationError as e:
            assert e.reason in TDX_REASONS
    # only mutations of the unsigned trailing bytes (or of PEM-ignored whitespace) can pass
    assert accepted < 30
