"""NVIDIA OCSP: is a GPU's device certificate chain still good?

NVIDIA runs an OCSP responder (``https://ocsp.ndis.nvidia.com``; the certificates' AIA names it)
for its device-identity hierarchy.  Like NVIDIA's own verifier, the device chain is checked from
the certificate above the attestation-key leaf (the GPU's BROM certificate) up to the one below
the pinned root: each certificate ``C`` with its issuer ``I`` gets one request (CertID with
SHA-384, a fresh 32-byte nonce unless disabled), and the answer must pass, in order:

O1. Parse: a DER ``OCSPResponse`` of at most ``MAX_OCSP_BYTES``, ``responseStatus`` successful,
    a basic response (``attest.gpu.ocsp``).
O2. Subject: a single response for exactly ``C``: serial number, issuer name hash and issuer key
    hash recomputed with the response's own hash algorithm (``attest.gpu.ocsp``).
O3. Signer: ECDSA (SHA-256/384/512) over ``tbsResponseData`` by ``I`` itself, or by a responder
    certificate carried in the response that one of the CA certificates above ``C`` (``I`` up to
    the pinned root) signed and that is valid now.  A responder signed by ``C`` itself is not
    accepted: a compromised CA could then vouch for itself (``attest.gpu.ocsp``).
O4. Nonce: the response's nonce extension equals the request's (``attest.gpu.ocsp``).
O5. Time: ``thisUpdate`` not in the future (5 minutes of skew) and ``now <= nextUpdate`` when
    given, else ``thisUpdate`` no older than ``max_age_seconds`` (``attest.gpu.ocsp``).
O6. Status: ``good``; ``revoked`` for any reason, certificate hold included, is
    ``attest.gpu.revoked``; ``unknown`` is ``attest.gpu.ocsp``.

A good answer is cached per (issuer key, serial) until ``nextUpdate`` or ``max_age_seconds``,
whichever is first; revocations and failures are never cached.

Tested against responders built for the tests only: no real NVIDIA OCSP response was available
to this project (see README, known limits).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from ._errors import CertificateChainError, CollateralError
from ._nvgpu_x509 import common_name

__all__ = ["NvidiaOcsp", "OCSP_URL", "MAX_OCSP_BYTES"]

OCSP_URL = "https://ocsp.ndis.nvidia.com"
MAX_OCSP_BYTES = 64 * 1024
R_OCSP = "attest.gpu.ocsp"
R_REVOKED = "attest.gpu.revoked"
_SKEW = timedelta(minutes=5)
_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)

HttpPost = Callable[[str, bytes, Mapping[str, str]], bytes]


def _err(msg: str) -> CollateralError:
    return CollateralError(msg, reason=R_OCSP)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _verify_ecdsa(key: object, signature: bytes, data: bytes, algorithm: object) -> bool:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(algorithm, _HASHES):
        return False
    try:
        key.verify(signature, data, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    return cert.issuer == issuer.subject and _verify_ecdsa(
        issuer.public_key(), cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm)


class NvidiaOcsp:
    """Checks device certificate chains with NVIDIA's OCSP responder (or a mirror).
    ``http_post(url, body, headers) -> bytes`` is injectable; the default is HTTPS
    (``ca_file`` for a mirror's private CA).  ``service_key`` is sent as ``Authorization:
    Bearer``.  ``nonce=False`` for responders that do not echo nonces (then replayed answers
    are only bounded by their own validity)."""

    def __init__(
        self,
        *,
        url: str = OCSP_URL,
        http_post: HttpPost | None = None,
        ca_file: str | None = None,
        service_key: str | None = None,
        nonce: bool = True,
        max_age_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith("https://"):
            raise _err("the OCSP responder URL must be https")
        if not max_age_seconds > 0:
            raise ValueError("max_age_seconds must be positive")
        self.url = url
        self._post = http_post
        self._ca_file = ca_file
        self._key = service_key
        self.nonce = nonce
        self._max_age = float(max_age_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._good: dict[tuple[bytes, int], float] = {}  # (issuer key DER, serial) -> good until (unix)

    def __repr__(self) -> str:  # never the service key
        return f"NvidiaOcsp(url={self.url!r}, nonce={self.nonce})"

    def check_chain(self, chain: Sequence[x509.Certificate], *, now: datetime, skip_leaf: bool = True) -> int:
        """``chain``: leaf first, ending with the (pinned) root.  Checks every certificate
        between the leaf (skipped unless ``skip_leaf=False``) and the root; returns how many
        were checked.  Raises ``CollateralError(attest.gpu.ocsp)`` or
        ``CertificateChainError(attest.gpu.revoked)``."""
        certs = list(chain)
        if len(certs) < 2:
            raise _err("a chain needs at least a certificate and its issuer")
        checked = 0
        for i in range(1 if skip_leaf else 0, len(certs) - 1):
            self._check_one(certs[i], certs[i + 1:], now)
            checked += 1
        return checked

    # -- one certificate -----------------------------------------------------------------------

    def _check_one(self, cert: x509.Certificate, above: list[x509.Certificate], now: datetime) -> None:
        issuer = above[0]
        key = (issuer.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo),
               cert.serial_number)
        with self._lock:
            until = self._good.get(key)
        if until is not None and now.timestamp() <= until and self._clock() <= until:
            return
        nonce = secrets.token_bytes(32) if self.nonce else None
        builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA384())
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        body = self._send(builder.build().public_bytes(serialization.Encoding.DER))
        try:
            good_until = self._judge(body, cert, above, now, nonce)
        except (CollateralError, CertificateChainError):
            raise
        except Exception:
            # cryptography parses some fields lazily: anything malformed surfaces here
            raise _err("malformed OCSP response") from None
        with self._lock:
            self._good[key] = min(good_until, self._clock() + self._max_age)

    def _judge(self, body: bytes, cert: x509.Certificate, above: list[x509.Certificate], now: datetime,
               nonce: bytes | None) -> float:
        """O1-O6 on one answer; returns until when a good answer may be reused (unix time)."""
        resp = self._parse(body)
        single = self._single(resp, cert, above[0])
        self._check_signer(resp, cert, above, now)
        if nonce is not None:
            try:
                got = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                raise _err("the OCSP response does not echo the request's nonce") from None
            if not hmac.compare_digest(got, nonce):
                raise _err("the OCSP response's nonce is not the request's")
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        if this_update > now + _SKEW:
            raise _err("the OCSP response's thisUpdate is in the future")
        if next_update is not None:
            if now > next_update:
                raise _err("the OCSP response is past its nextUpdate")
            good_until = min(next_update.timestamp(), now.timestamp() + self._max_age)
        else:
            if now - this_update > timedelta(seconds=self._max_age):
                raise _err("the OCSP response is too old (no nextUpdate)")
            good_until = this_update.timestamp() + self._max_age
        status = single.certificate_status
        name = common_name(cert.subject)
        if status == ocsp.OCSPCertStatus.REVOKED:
            why = single.revocation_reason.name if single.revocation_reason is not None else "unspecified"
            raise CertificateChainError(f"certificate '{name}' is revoked ({why})", reason=R_REVOKED)
        if status != ocsp.OCSPCertStatus.GOOD:
            raise _err(f"the OCSP responder does not know certificate '{name}'")
        return good_until

    def _send(self, request: bytes) -> bytes:
        headers = {"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        from ._http import guarded_fetch, https_request

        def post() -> bytes:
            if self._post is not None:
                return self._post(self.url, request, headers)
            return https_request(self.url, data=request, limit=MAX_OCSP_BYTES, error=_err, headers=headers,
                                 ca_file=self._ca_file)[0]

        return guarded_fetch(post, limit=MAX_OCSP_BYTES, error=_err, what="OCSP request")

    @staticmethod
    def _parse(body: bytes) -> ocsp.OCSPResponse:
        try:
            resp = ocsp.load_der_ocsp_response(body)
            status = resp.response_status
        except Exception:
            raise _err("malformed OCSP response") from None
        if status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _err(f"the OCSP responder answered {status.name}")
        return resp

    @staticmethod
    def _single(resp: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPSingleResponse:
        try:
            singles = list(resp.responses)
        except Exception:
            raise _err("malformed OCSP response") from None
        match = []
        for s in singles:
            try:
                algorithm = s.hash_algorithm
                if not isinstance(algorithm, (hashes.SHA1, *_HASHES)):
                    continue
                want = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
            except Exception:  # noqa: S112 - an entry we cannot read answers for nothing
                continue
            if (s.serial_number == cert.serial_number
                    and hmac.compare_digest(s.issuer_name_hash, want.issuer_name_hash)
                    and hmac.compare_digest(s.issuer_key_hash, want.issuer_key_hash)):
                match.append(s)
        if len(match) != 1:
            raise _err(f"the OCSP response does not answer for certificate '{common_name(cert.subject)}'")
        return match[0]

    @staticmethod
    def _check_signer(resp: ocsp.OCSPResponse, cert: x509.Certificate, above: list[x509.Certificate],
                      now: datetime) -> None:
        try:
            signature, tbs, algorithm = resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm
            carried = list(resp.certificates)
        except Exception:
            raise _err("malformed OCSP response") from None
        if _verify_ecdsa(above[0].public_key(), signature, tbs, algorithm):
            return  # signed by the issuing CA itself
        for responder in carried[:4]:
            if _der(responder) == _der(cert):
                continue  # the certificate in question cannot vouch for itself
            if not any(_issued_by(responder, ca) for ca in above):
                continue
            if not responder.not_valid_before_utc <= now <= responder.not_valid_after_utc:
                continue
            if _verify_ecdsa(responder.public_key(), signature, tbs, algorithm):
                return
        raise _err("the OCSP response is not signed by the issuing CA or a responder it authorised")

