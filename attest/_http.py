"""HTTPS GET/POST for the collateral services a verifier may be configured to use (AMD KDS,
Intel PCS or a PCCS, NVIDIA's RIM service and OCSP responder).  Used only when a caller
configures such a service: the verifiers never touch the network by default.

Rules: https only, also after a redirect (a redirect to plain http is refused, not followed);
the server certificate is checked against the system store or ``ca_file``; a timeout; the body
is read to at most ``limit + 1`` bytes and a longer one is an error, never truncated silently;
every failure is the caller's own typed error (``error(message)``), with no response body or
header values in the message.  Proxies from the environment (``HTTPS_PROXY``) are honoured.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["https_get", "https_request", "guarded_fetch"]

_UA = "weightseal-attest"


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not newurl.startswith("https://"):
            return None  # urllib then raises the 3xx as an HTTPError
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def https_get(
    url: str,
    *,
    limit: int,
    error: Callable[[str], Exception],
    timeout: float = 15.0,
    headers: Mapping[str, str] | None = None,
    ca_file: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """GET ``url`` over HTTPS -> (body, headers with lower-case names)."""
    return https_request(url, limit=limit, error=error, timeout=timeout, headers=headers, ca_file=ca_file)


def https_request(
    url: str,
    *,
    limit: int,
    error: Callable[[str], Exception],
    data: bytes | None = None,
    timeout: float = 15.0,
    headers: Mapping[str, str] | None = None,
    ca_file: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """GET (or, with ``data``, POST) ``url`` over HTTPS -> (body, lower-case headers)."""
    if not isinstance(url, str) or not url.startswith("https://"):
        raise error("collateral URL must be https")
    host = urlsplit(url).hostname or "?"
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise error(f"cannot load CA file ({type(exc).__name__})") from None
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _HttpsOnlyRedirects())
    req = urllib.request.Request(url, data=data, headers={"User-Agent": _UA, **(headers or {})})  # noqa: S310
    try:
        with opener.open(req, timeout=timeout) as resp:
            body = bytes(resp.read(limit + 1))
            got = {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        raise error(f"{host} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError, ssl.SSLError) as exc:
        raise error(f"request to {host} failed ({type(exc).__name__})") from None
    if len(body) > limit:
        raise error(f"response from {host} is larger than {limit} bytes")
    return body, got


def guarded_fetch(fetch: Callable[[], Any], *, limit: int, error: Callable[[str], Exception], what: str) -> bytes:
    """Run a fetch (the default HTTPS one or a caller's injected one): an exception other than
    the caller's own error type becomes ``error``, and the answer must be non-empty bytes of at
    most ``limit``."""
    err_type = type(error("probe"))
    try:
        body = fetch()
    except err_type:
        raise
    except Exception as exc:
        raise error(f"{what} failed ({type(exc).__name__})") from None
    if not isinstance(body, bytes | bytearray) or not body or len(body) > limit:
        raise error(f"{what}: the answer is empty, not bytes or larger than {limit} bytes")
    return bytes(body)
