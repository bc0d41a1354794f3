"""report_data / gpu_nonce binding (attest/_binding.py)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from weightseal.attest import BindingError, gpu_nonce, report_data
from weightseal.attest._binding import check_gpu_nonce, check_report_data

NONCE = bytes(range(32))


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def test_known_answer_vector() -> None:
    rd = report_data(NONCE, "llama-3-8b", b"\x42" * 32)
    expected = hashlib.sha512(
        _lp(b"weightseal/v1/report-data") + _lp(NONCE) + _lp(b"llama-3-8b") + _lp(b"\x42" * 32)).digest()
    assert rd == expected
    # pinned bytes: changing the encoding must fail this test
    assert rd.hex() == expected.hex()
    assert rd[:8].hex() == expected[:8].hex()
    gn = gpu_nonce(rd)
    assert gn == hashlib.sha256(_lp(b"weightseal/v1/gpu-nonce") + _lp(rd)).digest()
    assert len(rd) == 64 and len(gn) == 32


def test_golden_hex() -> None:
    # Independent golden value, computed once and pinned.
    rd = report_data(bytes(32), "m", b"\x01")
    assert rd.hex() == GOLDEN_RD
    assert gpu_nonce(rd).hex() == GOLDEN_GN


GOLDEN_RD = ("434fb9d23fa95919484a72a864df4822c2098634009b46818d3370db89760ba7"
             "0173f950ded08966eeaa060a5acc97328192088a933f1d42881a0d84510c5533")
GOLDEN_GN = "6b030e208bc999d0398621856ce82a449720bc07eb11e77e54554aa59828fb5b"


def test_moving_a_byte_between_model_id_and_key_changes_it() -> None:
    a = report_data(NONCE, "modelX", b"\x01\x02")
    b = report_data(NONCE, "model", b"X\x01\x02")
    assert a != b
    # the naive concatenation would have collided
    assert b"modelX" + b"\x01\x02" == b"model" + b"X\x01\x02"


@settings(max_examples=200, deadline=None)
@given(n1=st.binary(min_size=32, max_size=32), n2=st.binary(min_size=32, max_size=32),
       m1=st.text(min_size=1, max_size=20), m2=st.text(min_size=1, max_size=20),
       k1=st.binary(min_size=1, max_size=40), k2=st.binary(min_size=1, max_size=40))
def test_distinct_inputs_distinct_outputs(n1: bytes, n2: bytes, m1: str, m2: str, k1: bytes, k2: bytes) -> None:
    try:
        m1.encode("utf-8")
        m2.encode("utf-8")
    except UnicodeEncodeError:
        assume(False)
    assume((n1, m1, k1) != (n2, m2, k2))
    assert report_data(n1, m1, k1) != report_data(n2, m2, k2)
    assert gpu_nonce(report_data(n1, m1, k1)) != gpu_nonce(report_data(n2, m2, k2))


@settings(max_examples=100, deadline=None)
@given(m=st.text(alphabet="abcdef", min_size=2, max_size=10), k=st.binary(min_size=1, max_size=10),
       split=st.integers(1, 9))
def test_boundary_shift_changes_value(m: str, k: bytes, split: int) -> None:
    assume(split < len(m))
    moved = report_data(NONCE, m[:split], m[split:].encode() + k)
    assert moved != report_data(NONCE, m, k)


def test_bad_inputs() -> None:
    for args in ((bytes(31), "m", b"k"), (bytes(33), "m", b"k"), (NONCE, "", b"k"), (NONCE, "m", b"")):
        with pytest.raises(BindingError) as ei:
            report_data(*args)
        assert ei.value.reason == "attest.binding"
    with pytest.raises(BindingError):
        gpu_nonce(bytes(63))


def test_checks() -> None:
    rd = report_data(NONCE, "m", b"k")
    check_report_data(rd, rd, "snp")
    with pytest.raises(BindingError) as ei:
        check_report_data(rd, bytes(64), "snp")
    assert ei.value.reason == "attest.snp.binding"
    check_gpu_nonce(gpu_nonce(rd), rd)
    with pytest.raises(BindingError) as ei2:
        check_gpu_nonce(bytes(32), rd)
    assert ei2.value.reason == "attest.gpu.nonce"
