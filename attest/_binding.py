"""Binding a key-release request to hardware evidence (DESIGN.md "Key release protocol" step 2).

    report_data = SHA-512( lp(DOMAIN) || lp(nonce) || lp(model_id UTF-8) || lp(hpke_public_key) )
    gpu_nonce   = SHA-256( lp(GPU_DOMAIN) || lp(report_data) )

``lp(x)`` is the 4-byte big-endian length of ``x`` followed by ``x``, so no two different inputs
encode to the same byte string.  64 bytes fill SNP REPORT_DATA and TDX REPORTDATA; the GPU
(SPDM) nonce is 32 bytes, derived from report_data so CPU and GPU evidence bind one request.
"""

from __future__ import annotations

import hashlib
import hmac

from ._errors import BindingError

__all__ = ["REPORT_DATA_DOMAIN", "GPU_NONCE_DOMAIN", "report_data", "gpu_nonce", "check_report_data", "check_gpu_nonce"]

REPORT_DATA_DOMAIN = b"weightseal/v1/report-data"
GPU_NONCE_DOMAIN = b"weightseal/v1/gpu-nonce"
NONCE_LEN = 32


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(4, "big") + b


def report_data(nonce: bytes, model_id: str, hpke_public_key: bytes) -> bytes:
    """The 64-byte value a TEE must put in its report for this (nonce, model, HPKE key)."""
    if not isinstance(nonce, bytes | bytearray) or len(nonce) != NONCE_LEN:
        raise BindingError("nonce must be 32 bytes", reason="attest.binding")
    if not isinstance(model_id, str) or not model_id:
        raise BindingError("model id must be a non-empty string", reason="attest.binding")
    if not isinstance(hpke_public_key, bytes | bytearray) or not hpke_public_key:
        raise BindingError("HPKE public key missing", reason="attest.binding")
    h = hashlib.sha512()
    for part in (REPORT_DATA_DOMAIN, bytes(nonce), model_id.encode("utf-8"), bytes(hpke_public_key)):
        h.update(_lp(part))
    return h.digest()


def gpu_nonce(report_data_value: bytes) -> bytes:
    """The 32-byte SPDM nonce GPU evidence must carry for the request whose report_data is given."""
    if len(report_data_value) != 64:
        raise BindingError("report_data must be 64 bytes", reason="attest.binding")
    return hashlib.sha256(_lp(GPU_NONCE_DOMAIN) + _lp(bytes(report_data_value))).digest()


def check_report_data(actual: bytes, expected: bytes, platform: str) -> None:
    """Constant-time comparison; raises ``BindingError(reason="attest.<platform>.binding")``."""
    if not hmac.compare_digest(bytes(actual), bytes(expected)):
        raise BindingError("report_data does not bind this request", reason=f"attest.{platform}.binding")


def check_gpu_nonce(actual: bytes, expected_report_data: bytes) -> None:
    if not hmac.compare_digest(bytes(actual), gpu_nonce(expected_report_data)):
        raise BindingError("GPU nonce does not bind this request", reason="attest.gpu.nonce")
