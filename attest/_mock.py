"""The software mock platform: UNSAFE, for tests, demos and development only.

A mock report proves nothing about hardware: anyone can make an Ed25519 key and sign one.  It
exists so the whole release path can run without a TEE.  Every report made or verified logs a
WARNING, the key service accepts mock evidence only with an explicit development flag AND a
policy profile naming the ``mock`` platform, and collectors never fall back to it.

Report layout (version 1, 232 bytes, integers little-endian)::

    off   size  field
    0x00     8  magic  b"WSMOCKRP"
    0x08     2  version u16 (= 1)
    0x0A     2  flags u16: bit 0 = debug; every other bit must be 0
    0x0C     4  reserved, must be 0
    0x10    48  measurement
    0x40    64  report_data
    0x80     8  tcb u64
    0x88    32  platform public key (Ed25519)
    0xA8    64  Ed25519 signature over bytes [0x00, 0xA8)

The length is exact: shorter or longer input is rejected.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import nacl.exceptions
import nacl.signing

from ._binding import check_report_data
from ._claims import Evidence, MockClaims, Platform
from ._errors import EvidenceParseError, SignatureError, WeightsealError

__all__ = [
    "MOCK_MAGIC",
    "MOCK_VERSION",
    "MOCK_REPORT_LEN",
    "UnsafeMockPlatform",
    "MockReport",
    "parse_mock_report",
    "verify_mock",
    "is_mock_report",
]

log = logging.getLogger("weightseal.attest.mock")

MOCK_MAGIC = b"WSMOCKRP"
MOCK_VERSION = 1
_HEADER = struct.Struct("<8sHHI")  # magic, version, flags, reserved
_SIGNED_LEN = 0xA8
MOCK_REPORT_LEN = _SIGNED_LEN + 64
_FLAG_DEBUG = 0x1
_KEYFILE_KIND = "weightseal-unsafe-mock-platform-key"


@dataclass(frozen=True)
class MockReport:
    """The parsed (not yet verified) fields of a mock report."""

    version: int
    debug: bool
    measurement: bytes
    report_data: bytes
    tcb: int
    platform_key: bytes
    signed: bytes
    signature: bytes


def is_mock_report(data: bytes) -> bool:
    return bytes(data[:8]) == MOCK_MAGIC


def _parse_fail(msg: str) -> NoReturn:
    raise EvidenceParseError(msg, reason="attest.mock.parse")


def parse_mock_report(data: bytes) -> MockReport:
    """Parse the layout (bounds, magic, version, flags).  Verifies nothing."""
    if not isinstance(data, bytes | bytearray | memoryview):
        _parse_fail("mock report must be bytes")
    data = bytes(data)
    if len(data) != MOCK_REPORT_LEN:
        _parse_fail(f"mock report is {len(data)} bytes, expected {MOCK_REPORT_LEN}")
    magic, version, flags, reserved = _HEADER.unpack_from(data, 0)
    if magic != MOCK_MAGIC:
        _parse_fail("not a mock report (bad magic)")
    if version != MOCK_VERSION:
        _parse_fail(f"unsupported mock report version {version}")
    if flags & ~_FLAG_DEBUG:
        _parse_fail(f"unknown mock report flags 0x{flags:04x}")
    if reserved != 0:
        _parse_fail("reserved field is not zero")
    (tcb,) = struct.unpack_from("<Q", data, 0x80)
    return MockReport(
        version=version,
        debug=bool(flags & _FLAG_DEBUG),
        measurement=data[0x10:0x40],
        report_data=data[0x40:0x80],
        tcb=tcb,
        platform_key=data[0x88:0xA8],
        signed=data[:_SIGNED_LEN],
        signature=data[_SIGNED_LEN:],
    )


def verify_mock(
    report: bytes,
    *,
    expected_report_data: bytes | None = None,
    trusted_keys: Collection[bytes] | None = None,
) -> MockClaims:
    """Verify an UNSAFE mock report.

    1. Parse the fixed layout (``attest.mock.parse``).
    2. Check the Ed25519 signature with the embedded platform key (``attest.mock.signature``).
    3. If ``trusted_keys`` is given, the platform key must be one of them
       (``attest.mock.untrusted_key``; an empty collection trusts nothing).  ``None`` accepts any
       key, which is only meaningful for demos: a policy may still pin ``platform_keys``.
    4. If ``expected_report_data`` is given, it must equal REPORT_DATA (``attest.mock.binding``).
    """
    log.warning("verifying an UNSAFE software mock attestation report (no hardware security)")
    parsed = parse_mock_report(report)
    try:
        nacl.signing.VerifyKey(parsed.platform_key).verify(parsed.signed, parsed.signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise SignatureError("mock report signature does not verify", reason="attest.mock.signature") from exc
    if trusted_keys is not None and parsed.platform_key not in {bytes(k) for k in trusted_keys}:
        raise SignatureError("mock platform key is not trusted", reason="attest.mock.untrusted_key")
    if expected_report_data is not None:
        check_report_data(parsed.report_data, expected_report_data, "mock")
    return MockClaims(
        platform=Platform.MOCK,
        measurement=parsed.measurement,
        report_data=parsed.report_data,
        debug=parsed.debug,
        tcb=parsed.tcb,
        platform_key=parsed.platform_key,
    )


class UnsafeMockPlatform:
    """An UNSAFE software "TEE" holding an Ed25519 platform key.  Never use in production."""

    __slots__ = ("_key",)

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._key = signing_key

    @classmethod
    def generate(cls) -> UnsafeMockPlatform:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> UnsafeMockPlatform:
        """Deterministic platform for tests: ``seed`` is 32 bytes."""
        if not isinstance(seed, bytes | bytearray) or len(seed) != 32:
            raise WeightsealError("mock platform seed must be 32 bytes", reason="attest.mock.key")
        return cls(nacl.signing.SigningKey(bytes(seed)))

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def report(
        self,
        report_data: bytes,
        *,
        measurement: bytes = bytes(48),
        debug: bool = False,
        tcb: int = 0,
    ) -> Evidence:
        """Sign a mock report binding ``report_data`` (64 bytes)."""
        if len(report_data) != 64:
            raise WeightsealError("report_data must be 64 bytes", reason="attest.mock.report_data")
        if len(measurement) != 48:
            raise WeightsealError("measurement must be 48 bytes", reason="attest.mock.measurement")
        if not 0 <= tcb < 1 << 64:
            raise WeightsealError("tcb must fit in u64", reason="attest.mock.tcb")
        log.warning("making an UNSAFE software mock attestation report (no hardware security)")
        body = (
            _HEADER.pack(MOCK_MAGIC, MOCK_VERSION, _FLAG_DEBUG if debug else 0, 0)
            + bytes(measurement)
            + bytes(report_data)
            + struct.pack("<Q", tcb)
            + self.public_key
        )
        assert len(body) == _SIGNED_LEN
        sig = self._key.sign(body).signature
        return Evidence(platform=Platform.MOCK, report=body + sig)

    # -- key file (development only, clearly marked) -------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key to a 0600 JSON file marked as an unsafe development key."""
        doc = {
            "kind": _KEYFILE_KIND,
            "warning": "UNSAFE development key for the weightseal software mock platform; not a TEE",
            "seed": bytes(self._key).hex(),
            "public_key": self.public_key.hex(),
        }
        data = (json.dumps(doc, indent=2) + "\n").encode()
        fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UnsafeMockPlatform:
        try:
            raw = Path(path).read_bytes()
            if len(raw) > 4096:
                raise ValueError("too large")
            doc: Any = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("kind") != _KEYFILE_KIND:
                raise ValueError("not a weightseal mock platform key file")
            seed = bytes.fromhex(str(doc["seed"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WeightsealError(f"cannot read mock key file: {type(exc).__name__}", reason="attest.mock.key") from exc
        return cls.from_seed(seed)

    def __repr__(self) -> str:
        return f"UnsafeMockPlatform(public_key={self.public_key.hex()[:16]}...)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("UnsafeMockPlatform holds a private key and cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("UnsafeMockPlatform holds a private key and cannot be pickled")
