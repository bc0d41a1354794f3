"""NVIDIA Reference Integrity Manifests (RIMs): signed SWID tags with golden measurements.

A RIM is an ISO/IEC 19770-2 SWID tag (``SoftwareIdentity``) with an enveloped W3C XML
signature (xmldsig).  NVIDIA publishes one per driver version (``NV_GPU_DRIVER_GH100_<ver>``,
``NV_GPU_CC_DRIVER_<chip>_<ver>``) and one per VBIOS (``NV_GPU_VBIOS_<project>_<sku>_<chip
sku>_<version>``).  ``Meta/@colloquialVersion`` is the driver or VBIOS version;
``Payload/Resource`` elements carry ``index`` (0-based; runtime SPDM block ``index + 1``),
``active``, ``alternatives``, ``size`` and ``Hash0 .. Hash<alternatives-1>`` (SHA-384
namespace).

Verification (numbered as in the code):
  1. Parse with expat into a small tree; DTDs, entities and processing instructions are
     refused (no entity expansion, no external fetches), size/depth caps.
  2. Exactly one ``ds:Signature``, a child of the root; one ``Reference`` with ``URI=""``
     (the whole document) and transforms ``enveloped-signature`` (+ one canonicalization), so
     the signature covers every golden value.
  3. Signer chain from ``KeyInfo/X509Data`` to the pinned NVIDIA RIM root
     (``roots/nvidia_rim_root.pem``); a supplied root must equal it.
  4. Reference digest over the canonicalized document without the Signature element, then
     the ``SignatureValue`` over the canonicalized ``SignedInfo`` with the leaf key.
     Canonicalization: inclusive C14N 1.0 / 1.1 and exclusive C14N 1.0, implemented here
     (the standard library has only C14N 2.0).  Algorithms: ECDSA / RSA PKCS#1 v1.5 with
     SHA-256/384/512; digests SHA-256/384/512.  SHA-1 is refused.
  5. Validity of the signer chain at ``now`` (``attest.gpu.rim_expired``), checked after the
     signature so a forged RIM is reported as ``attest.gpu.rim``.
  6. The RIM version matches the report's driver or VBIOS version; one driver and one VBIOS
     RIM; no active index claimed by both.
  7. Every active golden index ``i`` must match runtime block ``i + 1`` (one of the
     alternatives, same size); NVIDIA skips index 35 when NVDEC0 is disabled
     (``attest.gpu.measurement``).

Every failure raises ``CollateralError``/``CertificateChainError``/``ClaimsError`` with reason
``attest.gpu.rim``, ``attest.gpu.rim_expired`` or ``attest.gpu.measurement``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from xml.parsers import expat

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._cache import RefreshingCache
from ._errors import AttestationError, ClaimsError, CollateralError
from ._files import read_limited
from ._nvgpu_x509 import check_validity, rim_root, strict_certificate_der, verify_chain

__all__ = ["Rim", "GoldenMeasurement", "RimStore", "parse_rim", "verify_rim", "check_rims", "canonicalize"]

R_RIM = "attest.gpu.rim"
R_EXPIRED = "attest.gpu.rim_expired"
R_MEAS = "attest.gpu.measurement"

NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_SWID = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
NS_SHA384 = "http://www.w3.org/2001/04/xmlenc#sha384"
NS_XML = "http://www.w3.org/XML/1998/namespace"

C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

_DIGESTS: dict[str, str] = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_SIG_ALGS: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ecdsa", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ecdsa", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ecdsa", hashes.SHA512()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512()),
}

MAX_RIM_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32
MAX_ELEMENTS = 20000
MAX_ALTERNATIVES = 64


def _rim_error(msg: str) -> CollateralError:
    return CollateralError(msg, reason=R_RIM)


# ------------------------------------------------------------------ 1. a tiny XML tree


@dataclass
class _El:
    uri: str | None
    local: str
    prefix: str | None
    attrs: list[tuple[str | None, str, str | None, str]]  # (uri, local, prefix, value)
    nsdecl: dict[str, str]  # prefix ('' = default) -> uri ('' = undeclared default)
    parent: _El | None = None
    children: list[_El | str] = field(default_factory=list)

    def inscope(self) -> dict[str, str]:
        chain: list[_El] = []
        e: _El | None = self
        while e is not None:
            chain.append(e)
            e = e.parent
        out: dict[str, str] = {}
        for anc in reversed(chain):
            out.update(anc.nsdecl)
        return out

    def elements(self) -> list[_El]:
        return [c for c in self.children if isinstance(c, _El)]

    def attr(self, local: str, uri: str | None = None) -> str | None:
        for a_uri, a_local, _p, v in self.attrs:
            if a_local == local and a_uri == uri:
                return v
        return None

    def text(self) -> str:
        return "".join(c for c in self.children if isinstance(c, str))

    def iter(self) -> list[_El]:
        out: list[_El] = []
        stack: list[_El] = [self]
        while stack:
            e = stack.pop()
            out.append(e)
            stack.extend(reversed(e.elements()))
        return out


_SEP = "\x01"


def _split(name: str) -> tuple[str | None, str, str | None]:
    parts = name.split(_SEP)
    if len(parts) == 1:
        return None, parts[0], None
    if len(parts) == 2:
        return parts[0], parts[1], None
    return parts[0], parts[1], parts[2]


def _parse_xml(data: bytes) -> _El:
    if len(data) > MAX_RIM_BYTES:
        raise _rim_error("RIM too large")
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.namespace_prefixes = True
    parser.ordered_attributes = True
    try:
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    except AttributeError:  # pragma: no cover
        pass
    state: dict[str, object] = {"root": None, "count": 0}
    stack: list[_El] = []
    pending: dict[str, str] = {}

    def refuse(*_a: object) -> None:
        raise _rim_error("DTDs, entities and processing instructions are not allowed in a RIM")

    def ns_start(prefix: str | None, uri: str | None) -> None:
        pending["" if prefix is None else prefix] = uri or ""

    def start(name: str, attrs: list[str]) -> None:
        count = state["count"]
        assert isinstance(count, int)
        state["count"] = count + 1
        if count + 1 > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise _rim_error("RIM too large or too deeply nested")
        uri, local, prefix = _split(name)
        al: list[tuple[str | None, str, str | None, str]] = []
        for i in range(0, len(attrs), 2):
            a_uri, a_local, a_prefix = _split(attrs[i])
            al.append((a_uri, a_local, a_prefix, attrs[i + 1]))
        el = _El(uri, local, prefix, al, dict(pending), stack[-1] if stack else None)
        pending.clear()
        if stack:
            stack[-1].children.append(el)
        elif state["root"] is None:
            state["root"] = el
        else:  # pragma: no cover - expat rejects a second root
            raise _rim_error("more than one root element")
        stack.append(el)

    def end(_name: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            kids = stack[-1].children
            if kids and isinstance(kids[-1], str):
                kids[-1] = kids[-1] + text
            else:
                kids.append(text)

    parser.StartNamespaceDeclHandler = ns_start
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ProcessingInstructionHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.CommentHandler = lambda _t: None  # comments are not part of the signed content
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise _rim_error(f"RIM is not well-formed XML: {exc}") from None
    except RecursionError:
        raise _rim_error("RIM too deeply nested") from None
    root = state["root"]
    if not isinstance(root, _El):
        raise _rim_error("RIM has no root element")
    return root


# ------------------------------------------------------------------ canonical XML


def _esc_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _esc_attr(s: str) -> str:
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


def _qname(prefix: str | None, local: str) -> str:
    return f"{prefix}:{local}" if prefix else local


def canonicalize(apex: _El, algorithm: str, exclude: _El | None = None) -> bytes:
    """Canonical XML (without comments) of the subtree at ``apex`` minus ``exclude``.

    Inclusive C14N 1.0/1.1: the apex renders every in-scope namespace (inherited ones too),
    descendants render declarations that differ from their output parent's.  Exclusive C14N:
    only visibly utilized namespaces not already rendered by an output ancestor.  Inherited
    ``xml:lang``/``xml:space`` are rendered on the apex for the inclusive forms; ``xml:base``
    and ``xml:id`` on ancestors are refused (no fix-up implemented).
    """
    if algorithm not in (C14N_10, C14N_11, C14N_EXC):
        raise _rim_error(f"unsupported canonicalization {algorithm!r}")
    exclusive = algorithm == C14N_EXC
    out: list[str] = []
    inherited_xml: list[tuple[str | None, str, str | None, str]] = []
    if not exclusive and apex.parent is not None:
        seen: set[str] = set()
        anc: _El | None = apex.parent
        while anc is not None:
            for a in anc.attrs:
                if a[0] == NS_XML and a[1] not in seen:
                    if a[1] in ("base", "id"):
                        raise _rim_error("xml:base / xml:id on ancestors of a signed subtree")
                    seen.add(a[1])
                    inherited_xml.append(a)
            anc = anc.parent
    apex_scope = apex.inscope()

    def render(el: _El, parent_rendered: dict[str, str], scope: dict[str, str], is_apex: bool) -> None:
        scope = {**scope, **el.nsdecl} if not is_apex else apex_scope
        ns_out: list[tuple[str, str]] = []
        rendered = dict(parent_rendered)
        if exclusive:
            used = {el.prefix or ""}
            used.update(a[2] for a in el.attrs if a[2])
            candidates = {p: scope.get(p, "") for p in used}
        else:
            candidates = dict(scope)
        for p, uri in candidates.items():
            if p == "xml":
                continue
            if p == "":
                if uri != rendered.get("", ""):
                    ns_out.append(("", uri))
                    rendered[""] = uri
            elif uri and rendered.get(p) != uri:
                ns_out.append((p, uri))
                rendered[p] = uri
        ns_out.sort(key=lambda t: t[0])
        attrs = list(el.attrs)
        if is_apex and inherited_xml:
            have = {(a[0], a[1]) for a in attrs}
            attrs.extend(a for a in inherited_xml if (a[0], a[1]) not in have)
        attrs.sort(key=lambda a: (a[0] or "", a[1]))
        parts = [_qname(el.prefix, el.local)]
        for p, uri in ns_out:
            parts.append(f'xmlns="{_esc_attr(uri)}"' if p == "" else f'xmlns:{p}="{_esc_attr(uri)}"')
        for a_uri, a_local, a_prefix, v in attrs:
            name = f"xml:{a_local}" if a_uri == NS_XML else _qname(a_prefix, a_local)
            parts.append(f'{name}="{_esc_attr(v)}"')
        out.append("<" + " ".join(parts) + ">")
        for c in el.children:
            if isinstance(c, str):
                out.append(_esc_text(c))
            elif c is not exclude:
                render(c, rendered, scope, False)
        out.append(f"</{_qname(el.prefix, el.local)}>")

    render(apex, {}, {}, True)
    return "".join(out).encode("utf-8")


# ------------------------------------------------------------------ RIM model


@dataclass(frozen=True)
class GoldenMeasurement:
    index: int  # 0-based RIM index (runtime SPDM block index + 1)
    active: bool
    size: int
    values: tuple[bytes, ...]
    name: str


@dataclass(frozen=True)
class Rim:
    colloquial_version: str
    product: str | None
    manufacturer_id: str | None
    tag_id: str | None
    measurements: dict[int, GoldenMeasurement]
    signer: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # signer first, pinned root excluded


def _one(parent: _El, local: str, uri: str = NS_DS) -> _El:
    found = [c for c in parent.elements() if c.local == local and c.uri == uri]
    if len(found) != 1:
        raise _rim_error(f"expected exactly one {local} element")
    return found[0]


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _rim_error(f"{what} is not base64") from None


@dataclass
class _Parsed:
    root: _El
    signature: _El
    signed_info: _El
    c14n: str
    sig_alg: tuple[str, hashes.HashAlgorithm]
    ref_c14n: str
    digest_alg: str
    digest_value: bytes
    signature_value: bytes
    certs: list[x509.Certificate]


def _parse_signature(root: _El) -> _Parsed:
    # 2. Exactly one enveloped signature, child of the root, covering the whole document.
    sigs = [e for e in root.iter() if e.local == "Signature" and e.uri == NS_DS]
    if len(sigs) != 1 or sigs[0].parent is not root:
        raise _rim_error("RIM must carry exactly one enveloped ds:Signature under its root")
    sig = sigs[0]
    kids = sig.elements()
    if not kids or kids[0].local != "SignedInfo" or kids[0].uri != NS_DS:
        raise _rim_error("ds:SignedInfo must be the first child of ds:Signature")
    si = _one(sig, "SignedInfo")
    c14n = _one(si, "CanonicalizationMethod").attr("Algorithm") or ""
    if c14n not in (C14N_10, C14N_11, C14N_EXC):
        raise _rim_error(f"unsupported canonicalization {c14n!r}")
    sm = _one(si, "SignatureMethod").attr("Algorithm") or ""
    if sm not in _SIG_ALGS:
        raise _rim_error(f"unsupported signature method {sm!r}")
    ref = _one(si, "Reference")
    if ref.attr("URI") != "":
        raise _rim_error('the signature Reference must have URI="" (the whole document)')
    transforms = [t.attr("Algorithm") or "" for t in _one(ref, "Transforms").elements()]
    if any(t.local != "Transform" or t.uri != NS_DS or t.elements() for t in _one(ref, "Transforms").elements()):
        raise _rim_error("unsupported transform parameters")
    if not transforms or transforms[0] != ENVELOPED or len(transforms) > 2:
        raise _rim_error("transforms must be enveloped-signature (+ one canonicalization)")
    ref_c14n = transforms[1] if len(transforms) == 2 else C14N_10
    if ref_c14n not in (C14N_10, C14N_11, C14N_EXC):
        raise _rim_error(f"unsupported reference canonicalization {ref_c14n!r}")
    dm = _one(ref, "DigestMethod").attr("Algorithm") or ""
    if dm not in _DIGESTS:
        raise _rim_error(f"unsupported digest method {dm!r}")
    digest_value = _b64(_one(ref, "DigestValue").text(), "DigestValue")
    signature_value = _b64(_one(sig, "SignatureValue").text(), "SignatureValue")
    x509data = _one(_one(sig, "KeyInfo"), "X509Data")
    certs: list[x509.Certificate] = []
    for c in x509data.elements():
        if c.local != "X509Certificate" or c.uri != NS_DS:
            continue
        der = _b64(c.text(), "X509Certificate")
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except Exception:  # ValueError, InvalidVersion, UnsupportedAlgorithm, ...
            raise _rim_error("malformed X509Certificate in the RIM") from None
        strict_certificate_der(der, R_RIM)
    if not certs or len(certs) > 10:
        raise _rim_error("RIM signer certificates missing or too many")
    return _Parsed(root, sig, si, c14n, _SIG_ALGS[sm], ref_c14n, _DIGESTS[dm], digest_value, signature_value, certs)


def _verify_signature_value(p: _Parsed, key: object) -> None:
    kind, h = p.sig_alg
    data = canonicalize(p.signed_info, p.c14n)
    try:
        if kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise _rim_error("signature method is ECDSA but the signer key is not EC")
            n = (key.curve.key_size + 7) // 8
            if len(p.signature_value) != 2 * n:
                raise _rim_error("ECDSA SignatureValue has the wrong length")
            r = int.from_bytes(p.signature_value[:n], "big")
            s = int.from_bytes(p.signature_value[n:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(h))
        else:
            if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
                raise _rim_error("signature method is RSA but the signer key is not RSA >= 2048")
            key.verify(p.signature_value, data, padding.PKCS1v15(), h)
    except (InvalidSignature, ValueError):
        raise _rim_error("RIM signature does not verify") from None


def _parse_payload(root: _El) -> tuple[str, str | None, str | None, str | None, dict[int, GoldenMeasurement]]:
    if root.local != "SoftwareIdentity" or root.uri != NS_SWID:
        raise _rim_error("RIM root is not a SWID SoftwareIdentity")
    meta = _one(root, "Meta", NS_SWID)
    version = meta.attr("colloquialVersion")
    if not version:
        raise _rim_error("RIM Meta has no colloquialVersion")
    manuf = None
    for a_uri, a_local, _p, v in meta.attrs:
        if a_local == "FirmwareManufacturerId" and a_uri:
            manuf = v
    payload = _one(root, "Payload", NS_SWID)
    out: dict[int, GoldenMeasurement] = {}
    for res in payload.elements():
        if res.local != "Resource" or res.uri != NS_SWID:
            raise _rim_error("unexpected element in RIM Payload")
        try:
            index = int(res.attr("index") or "")
            alternatives = int(res.attr("alternatives") or "")
            size = int(res.attr("size") or "")
        except ValueError:
            raise _rim_error("RIM Resource index/alternatives/size is not an integer") from None
        active_s = res.attr("active")
        if active_s not in ("True", "False", "true", "false"):
            raise _rim_error("RIM Resource active must be True or False")
        if not 0 <= index <= 254 or not 1 <= alternatives <= MAX_ALTERNATIVES or not 1 <= size <= 64:
            raise _rim_error("RIM Resource values out of range")
        if index in out:
            raise _rim_error(f"RIM index {index} appears twice")
        values: list[bytes] = []
        for i in range(alternatives):
            hv = res.attr(f"Hash{i}", NS_SHA384)
            if hv is None:
                raise _rim_error(f"RIM index {index} lacks Hash{i}")
            try:
                b = bytes.fromhex(hv)
            except ValueError:
                raise _rim_error(f"RIM index {index} Hash{i} is not hex") from None
            if len(b) != size:
                raise _rim_error(f"RIM index {index} Hash{i} has the wrong size")
            values.append(b)
        out[index] = GoldenMeasurement(index, active_s.lower() == "true", size, tuple(values), res.attr("name") or "")
    if not out:
        raise _rim_error("RIM has no measurements")
    return version, meta.attr("product"), manuf, root.attr("tagId"), out


def verify_rim(data: bytes, *, now: datetime) -> Rim:
    """Steps 1-5 for one RIM document; returns its golden measurements."""
    try:
        return _verify_rim(data, now=now)
    except AttestationError:
        raise
    except Exception as exc:  # defence in depth: only our errors escape
        raise _rim_error(f"malformed RIM ({type(exc).__name__})") from None


def _verify_rim(data: bytes, *, now: datetime) -> Rim:
    if not isinstance(data, bytes | bytearray):
        raise _rim_error("RIM must be bytes")
    # 1. parse
    root = _parse_xml(bytes(data))
    p = _parse_signature(root)
    # 3. signer chain to the pinned RIM root (signatures, constraints; time in 5.)
    try:
        chain = verify_chain(p.certs, rim_root(), reason=R_RIM, require_p384=False)
    except AttestationError as exc:
        raise _rim_error(str(exc)) from None
    signer = chain[0]
    # 4a. reference digest over the document without its Signature
    doc = canonicalize(root, p.ref_c14n, exclude=p.signature)
    if not hmac.compare_digest(hashlib.new(p.digest_alg, doc).digest(), p.digest_value):
        raise _rim_error("RIM digest does not match its content")
    # 4b. SignatureValue over SignedInfo
    _verify_signature_value(p, signer.public_key())
    # 5. validity
    try:
        check_validity([*chain, rim_root()], now, reason=R_EXPIRED)
    except AttestationError as exc:
        raise CollateralError(str(exc), reason=R_EXPIRED) from None
    version, product, manuf, tag_id, measurements = _parse_payload(root)
    return Rim(version, product, manuf, tag_id, measurements, signer, tuple(chain))


def parse_rim(data: bytes, *, now: datetime) -> Rim:
    """Alias of :func:`verify_rim` (a RIM is never returned unverified)."""
    return verify_rim(data, now=now)


def check_rims(
    rims: Sequence[bytes],
    *,
    now: datetime,
    measurements: Mapping[int, bytes],
    driver_version: str,
    vbios_version: str,
    skip_blocks: set[int],
) -> tuple[Rim, Rim]:
    """Steps 6-7: one driver RIM and one VBIOS RIM matching this report; compare."""
    if len(rims) != 2:
        raise _rim_error("exactly one driver RIM and one VBIOS RIM are required")
    parsed = [verify_rim(r, now=now) for r in rims]
    driver = [r for r in parsed if r.colloquial_version.lower() == driver_version.lower()]
    vbios = [r for r in parsed if r.colloquial_version.lower() == vbios_version.lower()]
    if len(driver) != 1 or len(vbios) != 1 or driver[0] is vbios[0]:
        raise _rim_error("the RIMs do not match this GPU's driver and VBIOS versions")
    golden: dict[int, tuple[str, GoldenMeasurement]] = {}
    for src, rim in (("driver", driver[0]), ("vbios", vbios[0])):
        for idx, gm in rim.measurements.items():
            if not gm.active:
                continue
            if idx in golden:
                raise _rim_error(f"driver and VBIOS RIMs both claim measurement index {idx}")
            golden[idx] = (src, gm)
    bad: list[str] = []
    for idx, (src, gm) in sorted(golden.items()):
        block = idx + 1
        if block in skip_blocks:
            continue
        actual = measurements.get(block)
        if actual is None or len(actual) != gm.size or not any(hmac.compare_digest(actual, v) for v in gm.values):
            bad.append(f"{idx}[{src}]")
    if bad:
        raise ClaimsError(f"GPU measurements differ from the RIM golden values at {', '.join(bad)}", reason=R_MEAS)
    return driver[0], vbios[0]


# ------------------------------------------------------------------ where RIMs come from


@dataclass(frozen=True)
class RimQuery:
    """What a RIM source needs to know about one GPU (from its verified report)."""

    architecture: str  # "hopper" | "blackwell"
    driver_version: str  # "550.90.07"
    vbios_version: str  # "96.00.9f.00.01"
    chip: str | None = None  # opaque CHIP_INFO ("GB100"); Blackwell and later
    project: str | None = None  # "1010"
    project_sku: str | None = None  # "0200"
    chip_sku: str | None = None  # "882"


class RimSource(Protocol):
    """Gives ``verify_gpu`` the (unverified) driver RIM and VBIOS RIM for a GPU; they are then
    verified exactly as if passed in.  :class:`RimStore` and :class:`NvidiaRimService`."""

    def rims_for(self, gpu: RimQuery) -> tuple[bytes, bytes]: ...


# ------------------------------------------------------------------ a directory of RIMs


class RimStore:
    """The signed RIMs of a fleet, kept in one directory by the operator (NVIDIA's RIM service
    publishes one per driver version and one per VBIOS version; file names do not matter).

    For each GPU report, :meth:`select` returns the one RIM whose colloquial version is the
    report's driver version and the one whose version is its VBIOS version; ``verify_gpu`` then
    verifies both exactly as if they had been passed in (signature chain to the pinned NVIDIA
    RIM root, validity, golden values).  Versions are read from the files without trusting
    them; a version present in two files is an error rather than a guess, and a file that is
    not a RIM is skipped (it matches nothing).  Files are re-indexed when they change, so new
    RIMs are picked up without a restart."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise _rim_error(f"RIM directory {self.directory} does not exist")
        self._index: dict[str, tuple[tuple[int, int], str | None]] = {}  # name -> (stat key, version)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RimStore({str(self.directory)!r})"

    def _read(self, p: Path) -> bytes:
        return read_limited(p, MAX_RIM_BYTES, what="RIM", error=_rim_error)

    def versions(self) -> dict[str, str]:
        """``{file name: colloquial version}`` of the files that parse as RIMs."""
        entries: dict[str, tuple[int, int]] = {}
        try:
            listing = sorted(self.directory.iterdir())
        except OSError as exc:
            raise _rim_error(f"cannot list RIM directory {self.directory} ({exc.strerror})") from None
        for p in listing:
            if p.name.startswith("."):
                continue
            try:
                st = p.stat()
            except OSError:  # removed meanwhile
                continue
            if stat.S_ISREG(st.st_mode):
                entries[p.name] = (st.st_mtime_ns, st.st_size)
        with self._lock:
            for name in list(self._index):
                if name not in entries:
                    del self._index[name]
            stale = [n for n, key in entries.items() if self._index.get(n, ((-1, -1), None))[0] != key]
        for name in stale:
            try:
                version: str | None = _parse_payload(_parse_xml(self._read(self.directory / name)))[0]
            except AttestationError:
                version = None
            except Exception:  # defence in depth: an odd file never breaks the store
                version = None
            with self._lock:
                self._index[name] = (entries[name], version)
        with self._lock:
            return {n: v for n, (_k, v) in self._index.items() if v is not None and n in entries}

    def not_after(self) -> dict[tuple[str, str], datetime]:
        """``{(file name, colloquial version): end of validity}`` of each RIM: the earliest
        notAfter of its signing chain as the file carries it (not verified: for monitoring)."""
        out: dict[tuple[str, str], datetime] = {}
        for name, version in self.versions().items():
            try:
                certs = _parse_signature(_parse_xml(self._read(self.directory / name))).certs
            except AttestationError:  # e.g. replaced by a non-RIM since it was indexed
                continue
            out[(name, version)] = min(c.not_valid_after_utc for c in certs)
        return out

    def rims_for(self, gpu: RimQuery) -> tuple[bytes, bytes]:
        """``RimSource``: the files for this GPU's driver and VBIOS versions."""
        return self.select(gpu.driver_version, gpu.vbios_version)

    def select(self, driver_version: str, vbios_version: str) -> tuple[bytes, bytes]:
        """The raw driver RIM and VBIOS RIM for these versions (unverified: verify them)."""
        versions = self.versions()
        out: list[bytes] = []
        for what, want in (("driver", driver_version), ("VBIOS", vbios_version)):
            names = [n for n, v in versions.items() if v.lower() == want.lower()]
            if not names:
                raise _rim_error(f"no RIM for {what} version {want} in {self.directory}")
            if len(names) > 1:
                raise _rim_error(f"several RIMs for {what} version {want} in {self.directory}: "
                                 f"{', '.join(sorted(names))}")
            out.append(self._read(self.directory / names[0]))
        return out[0], out[1]


# ------------------------------------------------------------------ NVIDIA's RIM service

RIM_SERVICE_URL = "https://rim.attestation.nvidia.com/v1/rim/"
_RIM_ID = re.compile(r"NV_GPU_[A-Z0-9_.-]{1,120}")
MAX_RIM_RESPONSE = 4 * MAX_RIM_BYTES  # JSON with a base64 RIM


class NvidiaRimService:
    """Fetches RIMs from NVIDIA's RIM service (``GET <base>/<id>`` answers JSON whose ``rim``
    member is the base64 RIM), by the ids NVIDIA's own verifier derives from the report:

    * driver: ``NV_GPU_DRIVER_GH100_<driver version>`` (Hopper),
      ``NV_GPU_CC_DRIVER_<CHIP_INFO>_<driver version>`` (Blackwell and later);
    * VBIOS: ``NV_GPU_VBIOS_<project>_<project SKU>_<chip SKU>_<version without dots>``,
      upper-case (``NV_GPU_VBIOS_1010_0200_882_960074001A``).

    Nothing fetched is trusted: the RIMs are verified like any other (signature chain to the
    pinned RIM root, validity, golden values).  Fetched RIMs are kept in memory and, with
    ``cache_dir``, on disk as ``<id>.xml``; a copy older than ``refresh_seconds`` (default a
    day: NVIDIA re-signs RIMs when their certificates near expiry) is fetched again, and kept
    if the service cannot be reached.  ``service_key`` is sent as ``Authorization: Bearer``.
    ``http_get(url, headers) -> bytes`` is injectable; the default is HTTPS (``ca_file``
    optional)."""

    def __init__(
        self,
        *,
        base_url: str = RIM_SERVICE_URL,
        cache_dir: str | os.PathLike[str] | None = None,
        service_key: str | None = None,
        ca_file: str | None = None,
        http_get: Callable[[str, Mapping[str, str]], bytes] | None = None,
        refresh_seconds: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not base_url.startswith("https://"):
            raise _rim_error("the RIM service URL must be https")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._key = service_key
        self._ca_file = ca_file
        self._get = http_get
        self._cache = RefreshingCache(directory=self.cache_dir, refresh_seconds=refresh_seconds, clock=clock,
                                      limit=MAX_RIM_BYTES)

    def __repr__(self) -> str:  # never the service key
        return f"NvidiaRimService(base_url={self.base_url!r}, cache_dir={str(self.cache_dir) if self.cache_dir else None!r})"

    # -- ids ----------------------------------------------------------------------------------

    @staticmethod
    def driver_rim_id(gpu: RimQuery) -> str:
        if gpu.architecture == "hopper":
            rid = f"NV_GPU_DRIVER_GH100_{gpu.driver_version}"
        elif gpu.chip:
            rid = f"NV_GPU_CC_DRIVER_{gpu.chip.upper()}_{gpu.driver_version}"
        else:
            raise _rim_error("the report has no chip name (CHIP_INFO) to name its driver RIM")
        return NvidiaRimService._checked(rid)

    @staticmethod
    def vbios_rim_id(gpu: RimQuery) -> str:
        if not (gpu.project and gpu.project_sku and gpu.chip_sku):
            raise _rim_error("the report lacks project, project SKU or chip SKU to name its VBIOS RIM")
        version = gpu.vbios_version.replace(".", "").upper()
        rid = f"NV_GPU_VBIOS_{gpu.project.upper()}_{gpu.project_sku.upper()}_{gpu.chip_sku.upper()}_{version}"
        return NvidiaRimService._checked(rid)

    @staticmethod
    def _checked(rid: str) -> str:
        # The parts come from the (signed) report, but they end up in a URL and a file name.
        if not _RIM_ID.fullmatch(rid):
            raise _rim_error("the report's versions do not form a valid RIM id")
        return rid

    # -- fetching -----------------------------------------------------------------------------

    def rims_for(self, gpu: RimQuery) -> tuple[bytes, bytes]:
        """``RimSource``: the driver RIM and the VBIOS RIM for this GPU."""
        return self.fetch(self.driver_rim_id(gpu)), self.fetch(self.vbios_rim_id(gpu))

    def fetch(self, rim_id: str) -> bytes:
        """The RIM document with this id (unverified)."""
        rim_id = self._checked(rim_id)
        return self._cache.get(f"{rim_id}.xml", lambda: self._download(rim_id))

    def _download(self, rim_id: str) -> bytes:
        headers = {"Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        url = self.base_url + rim_id
        from ._http import guarded_fetch, https_get

        def get() -> bytes:
            if self._get is not None:
                return self._get(url, headers)
            return https_get(url, limit=MAX_RIM_RESPONSE, error=_rim_error, headers=headers, ca_file=self._ca_file)[0]

        body = guarded_fetch(get, limit=MAX_RIM_RESPONSE, error=_rim_error, what=f"RIM service request for {rim_id}")
        try:
            doc = json.loads(bytes(body).decode("utf-8"))
            b64 = doc["rim"] if isinstance(doc, dict) else None
            if not isinstance(b64, str):
                raise ValueError("no rim member")
            rim = base64.b64decode(b64.encode("ascii"), validate=True)
        except (ValueError, UnicodeError, KeyError, TypeError, binascii.Error, RecursionError):
            raise _rim_error(f"RIM service answer for {rim_id} is not the expected JSON") from None
        if not rim or len(rim) > MAX_RIM_BYTES:
            raise _rim_error(f"RIM {rim_id} is empty or too large")
        return rim
