"""The UNSAFE software mock platform: round trips, tamper detection, trust and binding."""

from __future__ import annotations

import logging
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from weightseal.attest import (
    Evidence,
    EvidenceParseError,
    MockNotAllowedError,
    Platform,
    SignatureError,
    UnsafeMockPlatform,
    verify_evidence,
    verify_mock,
)
from weightseal.attest._errors import AttestationError, BindingError
from weightseal.attest._mock import MOCK_REPORT_LEN, parse_mock_report

SEED = bytes(range(32))
PLAT = UnsafeMockPlatform.from_seed(SEED)
RD = bytes(range(64))
MEAS = bytes([0xAB]) * 48


def test_known_answer_layout() -> None:
    ev = PLAT.report(RD, measurement=MEAS, debug=True, tcb=0x0102030405060708)
    r = ev.report
    assert ev.platform is Platform.MOCK and ev.certs == b""
    assert len(r) == MOCK_REPORT_LEN == 232
    assert r[:8] == b"WSMOCKRP"
    assert r[8:10] == b"\x01\x00"  # version 1
    assert r[10:12] == b"\x01\x00"  # debug flag
    assert r[12:16] == bytes(4)
    assert r[0x10:0x40] == MEAS and r[0x40:0x80] == RD
    assert r[0x80:0x88] == bytes.fromhex("0807060504030201")
    assert r[0x88:0xA8] == PLAT.public_key
    # Ed25519 is deterministic: the same seed and fields give the same bytes.
    assert PLAT.report(RD, measurement=MEAS, debug=True, tcb=0x0102030405060708).report == r
    assert PLAT.public_key.hex() == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


@settings(max_examples=60, deadline=None)
@given(rd=st.binary(min_size=64, max_size=64), meas=st.binary(min_size=48, max_size=48),
       tcb=st.integers(0, 2**64 - 1), debug=st.booleans())
def test_round_trip(rd: bytes, meas: bytes, tcb: int, debug: bool) -> None:
    ev = PLAT.report(rd, measurement=meas, tcb=tcb, debug=debug)
    c = verify_mock(ev.report, expected_report_data=rd, trusted_keys=[PLAT.public_key])
    assert (c.report_data, c.measurement, c.tcb, c.debug, c.platform_key) == (rd, meas, tcb, debug, PLAT.public_key)
    assert c.platform is Platform.MOCK
    # reproducible
    assert PLAT.report(rd, measurement=meas, tcb=tcb, debug=debug).report == ev.report


def test_every_single_byte_flip_is_rejected() -> None:
    rep = PLAT.report(RD, measurement=MEAS, tcb=7).report
    for i in range(len(rep)):
        for mask in (0x01, 0x80):
            bad = bytearray(rep)
            bad[i] ^= mask
            with pytest.raises(AttestationError) as ei:
                verify_mock(bytes(bad), expected_report_data=RD, trusted_keys=[PLAT.public_key])
            assert ei.value.reason in {"attest.mock.parse", "attest.mock.signature", "attest.mock.untrusted_key"}, i


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, MOCK_REPORT_LEN - 1), v=st.integers(1, 255))
def test_any_xor_rejected(i: int, v: int) -> None:
    bad = bytearray(PLAT.report(RD).report)
    bad[i] ^= v
    with pytest.raises(AttestationError):
        verify_mock(bytes(bad), trusted_keys=[PLAT.public_key])


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_garbage_raises_only_typed_errors(data: bytes) -> None:
    with pytest.raises(AttestationError) as ei:
        verify_mock(data)
    assert ei.value.reason in {"attest.mock.parse", "attest.mock.signature"}


def test_parse_errors_have_reason() -> None:
    rep = PLAT.report(RD).report
    for bad in (rep[:-1], rep + b"\0", b"XXXXXXXX" + rep[8:], rep[:8] + b"\x02\x00" + rep[10:],
                rep[:10] + b"\x02\x00" + rep[12:], rep[:12] + b"\x01\x00\x00\x00" + rep[16:]):
        with pytest.raises(EvidenceParseError) as ei:
            verify_mock(bad)
        assert ei.value.reason == "attest.mock.parse"


def test_signature_from_other_key_rejected() -> None:
    other = UnsafeMockPlatform.from_seed(bytes(31) + b"\x01")
    rep = bytearray(PLAT.report(RD).report)
    rep[0x88:0xA8] = other.public_key  # claim another key, keep old signature
    with pytest.raises(SignatureError) as ei:
        verify_mock(bytes(rep))
    assert ei.value.reason == "attest.mock.signature"


def test_untrusted_key_rejected() -> None:
    other = UnsafeMockPlatform.generate()
    rep = other.report(RD).report
    assert verify_mock(rep).platform_key == other.public_key  # None = any key (demo only)
    for trusted in ([PLAT.public_key], []):
        with pytest.raises(SignatureError) as ei:
            verify_mock(rep, trusted_keys=trusted)
        assert ei.value.reason == "attest.mock.untrusted_key"


def test_binding_mismatch_rejected() -> None:
    rep = PLAT.report(RD).report
    with pytest.raises(BindingError) as ei:
        verify_mock(rep, expected_report_data=bytes(64))
    assert ei.value.reason == "attest.mock.binding"


def test_allow_mock_false_rejects_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    import weightseal.attest._mock as m

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("parsed although the mock is not allowed")

    monkeypatch.setattr(m, "parse_mock_report", boom)
    monkeypatch.setattr(m, "verify_mock", boom)
    for report in (PLAT.report(RD).report, b"garbage"):
        with pytest.raises(MockNotAllowedError) as ei:
            verify_evidence(Evidence(Platform.MOCK, report), expected_report_data=RD)
        assert ei.value.reason == "attest.mock.not_allowed"


def test_dispatcher_accepts_mock_when_allowed() -> None:
    ev = PLAT.report(RD, measurement=MEAS)
    c = verify_evidence(ev, expected_report_data=RD, allow_mock=True, mock_keys=[PLAT.public_key])
    assert c.measurement == MEAS
    with pytest.raises(BindingError) as ei:
        verify_evidence(ev, expected_report_data=bytes(64), allow_mock=True)
    assert ei.value.reason == "attest.mock.binding"
    with pytest.raises(SignatureError) as ei2:
        verify_evidence(ev, expected_report_data=RD, allow_mock=True, mock_keys=[bytes(32)])
    assert ei2.value.reason == "attest.mock.untrusted_key"


def test_warning_logged_on_make_and_verify(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="weightseal.attest.mock"):
        rep = PLAT.report(RD).report
        assert any("UNSAFE" in r.message and "making" in r.message for r in caplog.records)
        caplog.clear()
        verify_mock(rep)
        assert any("UNSAFE" in r.message and "verifying" in r.message for r in caplog.records)


def test_key_hygiene(tmp_path: pytest.TempPathFactory) -> None:
    assert SEED.hex() not in repr(PLAT)
    with pytest.raises(TypeError):
        pickle.dumps(PLAT)
    path = tmp_path / "mock.key"  # type: ignore[operator]
    PLAT.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "UNSAFE" in path.read_text()
    assert UnsafeMockPlatform.load(path).public_key == PLAT.public_key
    with pytest.raises(FileExistsError):
        PLAT.save(path)


def test_bad_inputs_to_report() -> None:
    from weightseal.attest import WeightsealError

    for kw in ({"report_data": bytes(63)}, {"report_data": RD, "measurement": bytes(47)},
               {"report_data": RD, "tcb": -1}, {"report_data": RD, "tcb": 2**64}):
        rd = kw.pop("report_data")
        with pytest.raises(WeightsealError):
            PLAT.report(rd, **kw)  # type: ignore[arg-type]
    with pytest.raises(WeightsealError):
        UnsafeMockPlatform.from_seed(bytes(31))
    assert parse_mock_report(PLAT.report(RD).report).version == 1
