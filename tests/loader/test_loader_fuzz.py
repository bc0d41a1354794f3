"""Short fuzz runs of the parsers: atheris in a subprocess, plus hypothesis on random bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import weightseal.loader._format as F
from hypothesis import given, settings
from hypothesis import strategies as st
from weightseal.loader import IntegrityError
from weightseal.loader._manifest import parse_manifest

HARNESS = Path(__file__).resolve().parent / "fuzz_sealed_header.py"


@pytest.mark.fuzz
def test_atheris_short_run(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(HARNESS), "-runs=3000", "-seed=7", "-max_len=4096"],  # noqa: S603
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 3000 runs" in r.stderr


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_manifest_parser_random_bytes(data: bytes) -> None:
    for blob in (data, F.MANIFEST_MAGIC + data):
        try:
            parse_manifest(blob)
        except IntegrityError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=F.PREAMBLE_LEN, max_size=F.PREAMBLE_LEN), st.integers(0, 1 << 40))
def test_preamble_parser_random(data: bytes, size: int) -> None:
    try:
        p = F.parse_preamble(F.SHARD_MAGIC + data[8:], size)
        assert p.data_offset + p.data_len == size
    except IntegrityError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_header_parsers_random(data: bytes) -> None:
    for f in (lambda: F.split_inner(data), lambda: F.parse_st_header(data, None, IntegrityError)):
        try:
            f()
        except IntegrityError:
            pass


def test_parse_st_header_rejects_gaps_and_dupes() -> None:
    ok = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    assert F.parse_st_header(ok, 8, IntegrityError).tensors["a"].shape == (2,)
    for bad in (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
                b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
                b'{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',
                b'{"a":{"dtype":"X9","shape":[2],"data_offsets":[0,8]}}',
                b'{"__metadata__":{"k":1}}', b'[]', b'\xff'):
        with pytest.raises(IntegrityError):
            F.parse_st_header(bad, None, IntegrityError)
