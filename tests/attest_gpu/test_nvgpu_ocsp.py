"""NvidiaOcsp (attest/_nvgpu_ocsp.py): revocation of GPU device chains by OCSP.

No real NVIDIA OCSP response was available, so the responder here is built for the tests: a real
HTTPS server on loopback (test CA) that answers DER OCSP requests for a synthetic NVIDIA-like
hierarchy (root -> identity CA -> BROM -> AK leaf) whose root replaces the pinned one where the
verifier needs it.  The REAL Blackwell chain is used for what a test responder can show about
it: the requests name its certificates exactly, and an answer its CAs did not authorise is
refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from https_testserver import https_server
from nvgpu_testlib import BLACKWELL_NONCE, blackwell
from test_nvgpu_synthetic import FWID, NONCE, ReportSpec, blackwell_tcbinfo, make_report
from weightseal.attest import (
    AttestationError,
    NvidiaOcsp,
    Policy,
    PolicyDenied,
    _nvgpu,
    evaluate,
    verify_gpu,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)  # test_nvgpu_synthetic's report time


def _issue(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           *, ca: bool, serial: int, ext: tuple[str, bytes] | None = None, eku: bool = False,
           expired: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer[0].subject if issuer else name).public_key(key.public_key()).serial_number(serial)
         .not_valid_before(NOW - timedelta(days=60 if expired else 30))
         .not_valid_after(NOW - timedelta(days=30) if expired else NOW + timedelta(days=30)))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if ext is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(ext[0]), ext[1]), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return b.sign(issuer[1] if issuer else key, hashes.SHA384())


@dataclass
class Hierarchy:
    keys: dict[str, ec.EllipticCurvePrivateKey]
    certs: dict[str, x509.Certificate]

    def chain(self) -> list[x509.Certificate]:  # leaf first, root last
        return [self.certs[n] for n in ("leaf", "brom", "ica", "root")]

    def pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain())


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    keys = {n: ec.generate_private_key(ec.SECP384R1()) for n in ("root", "ica", "brom", "leaf", "resp", "other")}
    c: dict[str, x509.Certificate] = {}
    c["root"] = _issue("NVIDIA Device Identity CA", keys["root"], None, ca=True, serial=1)
    c["ica"] = _issue("NVIDIA GB20X Identity", keys["ica"], (c["root"], keys["root"]), ca=True, serial=2)
    c["brom"] = _issue("GB100 A01 GSP BROM", keys["brom"], (c["ica"], keys["ica"]), ca=True, serial=3)
    c["leaf"] = _issue("GB100 A01 GSP FMC LF", keys["leaf"], (c["brom"], keys["brom"]), ca=False, serial=4,
                       ext=("2.23.133.5.4.1.1", blackwell_tcbinfo([FWID])))
    return Hierarchy(keys, c)


@dataclass
class Responder:
    """What the test OCSP responder answers: status per serial, who signs, and knobs."""

    h: Hierarchy
    status: dict[int, Any] = field(default_factory=dict)  # serial -> "good" | "unknown" | ReasonFlags
    signer: str = "issuer"  # "issuer" | a key name; with `carry` the responder certificate sent along
    carry: x509.Certificate | None = None
    echo_nonce: bool = True
    wrong_nonce: bool = False
    this_update: timedelta = timedelta(minutes=-1)
    next_update: timedelta | None = timedelta(hours=1)
    response_status: ocsp.OCSPResponseStatus = ocsp.OCSPResponseStatus.SUCCESSFUL
    raw: bytes | None = None
    answer_for_serial: int | None = None
    requests: list[ocsp.OCSPRequest] = field(default_factory=list)
    url: str = ""
    ca_file: str = ""

    def answer(self, body: bytes) -> bytes:
        req = ocsp.load_der_ocsp_request(body)
        self.requests.append(req)
        if self.raw is not None:
            return self.raw
        if self.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(self.response_status).public_bytes(serialization.Encoding.DER)
        by_serial = {c.serial_number: (n, c) for n, c in self.h.certs.items()}
        serial = self.answer_for_serial or req.serial_number
        name, cert = by_serial[serial]
        issuer_name = {"leaf": "brom", "brom": "ica", "ica": "root", "root": "root"}[name]
        issuer = self.h.certs[issuer_name]
        st = self.status.get(req.serial_number, "good")
        now = NOW
        b = ocsp.OCSPResponseBuilder()
        if st == "good" or st == "unknown":
            b = b.add_response(cert=cert, issuer=issuer, algorithm=hashes.SHA384(),
                               cert_status=ocsp.OCSPCertStatus.GOOD if st == "good" else ocsp.OCSPCertStatus.UNKNOWN,
                               this_update=now + self.this_update,
                               next_update=now + self.next_update if self.next_update is not None else None,
                               revocation_time=None, revocation_reason=None)
        else:
            b = b.add_response(cert=cert, issuer=issuer, algorithm=hashes.SHA384(),
                               cert_status=ocsp.OCSPCertStatus.REVOKED, this_update=now + self.this_update,
                               next_update=now + self.next_update if self.next_update is not None else None,
                               revocation_time=now - timedelta(days=1), revocation_reason=st)
        if self.signer == "issuer":
            key, responder_cert = self.h.keys[issuer_name], issuer
        else:
            key, responder_cert = self.h.keys[self.signer], self.carry or issuer
        b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)
        if self.carry is not None:
            b = b.certificates([self.carry])
        if self.echo_nonce:
            try:
                n = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                b = b.add_extension(x509.OCSPNonce(b"\x00" * 32 if self.wrong_nonce else n), critical=False)
            except x509.ExtensionNotFound:
                pass
        return b.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def responder(h: Hierarchy, tmp_path: Path) -> Iterator[Responder]:
    r = Responder(h)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                out, code = r.answer(body), 200
            except Exception:  # noqa: BLE001 - a test server answering garbage with 400
                out, code = b"bad request", 400
            self.send_response(code)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: Any) -> None:
            pass

    with https_server(Handler, tmp_path / "tls") as srv:
        r.url, r.ca_file = srv.url("/"), srv.ca_file
        yield r


def _client(r: Responder, **kw: Any) -> NvidiaOcsp:
    kw.setdefault("clock", lambda: NOW.timestamp())
    return NvidiaOcsp(url=r.url, ca_file=r.ca_file, **kw)


def _reason(fn: Callable[..., Any], *a: Any, **kw: Any) -> str:
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return ei.value.reason


def test_good_chain_checks_every_ca_below_the_root(responder: Responder, h: Hierarchy) -> None:
    client = _client(responder)
    assert client.check_chain(h.chain(), now=NOW) == 2  # BROM and identity CA; not the leaf, not the root
    assert [q.serial_number for q in responder.requests] == [3, 2]
    for q, issuer in zip(responder.requests, (h.certs["ica"], h.certs["root"]), strict=True):
        assert isinstance(q.hash_algorithm, hashes.SHA384)
        want = ocsp.OCSPRequestBuilder().add_certificate(h.certs["brom"] if q.serial_number == 3 else h.certs["ica"],
                                                         issuer, hashes.SHA384()).build()
        assert (q.issuer_key_hash, q.issuer_name_hash) == (want.issuer_key_hash, want.issuer_name_hash)
        assert len(q.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce) == 32
    nonces = {q.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce for q in responder.requests}
    assert len(nonces) == 2  # fresh per request
    # good answers are cached until nextUpdate / max age
    assert client.check_chain(h.chain(), now=NOW) == 2 and len(responder.requests) == 2
    later = NvidiaOcsp(url=responder.url, ca_file=responder.ca_file, max_age_seconds=60,
                       clock=lambda: NOW.timestamp() + 61)
    assert later.check_chain(h.chain(), now=NOW) == 2 and len(responder.requests) == 4
    assert _client(responder).check_chain(h.chain(), now=NOW, skip_leaf=False) == 3


@pytest.mark.parametrize("reason", [x509.ReasonFlags.key_compromise, x509.ReasonFlags.certificate_hold,
                                    x509.ReasonFlags.unspecified])
def test_revoked_is_denied_whatever_the_reason(responder: Responder, h: Hierarchy, reason: x509.ReasonFlags) -> None:
    responder.status[2] = reason  # the identity CA
    client = _client(responder)
    with pytest.raises(AttestationError) as ei:
        client.check_chain(h.chain(), now=NOW)
    assert ei.value.reason == "attest.gpu.revoked" and "NVIDIA GB20X Identity" in str(ei.value)
    assert reason.name in str(ei.value)
    # never cached: asked again, and a recovery is seen
    responder.status.clear()
    assert client.check_chain(h.chain(), now=NOW) == 2


def test_answers_that_prove_nothing_are_refused(responder: Responder, h: Hierarchy) -> None:
    def reason(**knobs: Any) -> str:
        saved = {k: getattr(responder, k) for k in knobs}
        for k, v in knobs.items():
            setattr(responder, k, v)
        try:
            return _reason(_client(responder).check_chain, h.chain(), now=NOW)
        finally:
            for k, v in saved.items():
                setattr(responder, k, v)

    responder.status[3] = "unknown"
    assert reason() == "attest.gpu.ocsp"
    responder.status.clear()
    assert reason(signer="other") == "attest.gpu.ocsp"  # a key nobody authorised
    assert reason(echo_nonce=False) == "attest.gpu.ocsp"
    assert reason(wrong_nonce=True) == "attest.gpu.ocsp"
    assert reason(next_update=timedelta(seconds=-1), this_update=timedelta(hours=-2)) == "attest.gpu.ocsp"
    assert reason(this_update=timedelta(minutes=10)) == "attest.gpu.ocsp"  # from the future
    assert reason(next_update=None, this_update=timedelta(hours=-2)) == "attest.gpu.ocsp"  # old, no nextUpdate
    assert reason(answer_for_serial=2) == "attest.gpu.ocsp"  # an answer about another certificate
    assert reason(response_status=ocsp.OCSPResponseStatus.UNAUTHORIZED) == "attest.gpu.ocsp"
    assert reason(response_status=ocsp.OCSPResponseStatus.TRY_LATER) == "attest.gpu.ocsp"
    assert reason(raw=b"\x30\x03\x0a\x01\x00") == "attest.gpu.ocsp"
    assert reason(raw=b"not der at all") == "attest.gpu.ocsp"
    # without nonces (a responder that does not echo them) the rest still applies
    assert NvidiaOcsp(url=responder.url, ca_file=responder.ca_file, nonce=False,
                      clock=lambda: NOW.timestamp()).check_chain(h.chain(), now=NOW) == 2
    assert [len(list(q.extensions)) for q in responder.requests[-2:]] == [0, 0]  # no nonce was sent


def test_delegated_responders(responder: Responder, h: Hierarchy) -> None:
    # a responder certificate issued by the root may answer for every CA below it ...
    delegated = _issue("NVIDIA OCSP responder", h.keys["resp"], (h.certs["root"], h.keys["root"]), ca=False,
                       serial=90, eku=True)
    responder.signer, responder.carry = "resp", delegated
    chain = h.chain()
    assert _client(responder).check_chain(chain, now=NOW) == 2
    # ... one issued by the identity CA answers for the BROM it issued, but not for the
    # identity CA itself: a certificate cannot vouch for its own issuer's key
    by_ica = _issue("ICA responder", h.keys["resp"], (h.certs["ica"], h.keys["ica"]), ca=False, serial=95, eku=True)
    responder.carry = by_ica
    client = _client(responder)
    with pytest.raises(AttestationError) as ei:
        client.check_chain(chain, now=NOW)
    assert ei.value.reason == "attest.gpu.ocsp"
    assert [q.serial_number for q in responder.requests[-2:]] == [3, 2]  # BROM accepted, then the ICA refused
    # ... one issued by the BROM (the certificate in question) may not vouch for the BROM
    self_issued = _issue("self vouching", h.keys["resp"], (h.certs["brom"], h.keys["brom"]), ca=False,
                         serial=91, eku=True)
    responder.carry = self_issued
    assert _reason(_client(responder).check_chain, chain, now=NOW) == "attest.gpu.ocsp"
    # ... nor one from outside the hierarchy, nor an expired one
    outsider_ca = _issue("Some CA", h.keys["other"], None, ca=True, serial=92)
    responder.carry = _issue("outsider", h.keys["resp"], (outsider_ca, h.keys["other"]), ca=False, serial=93)
    assert _reason(_client(responder).check_chain, chain, now=NOW) == "attest.gpu.ocsp"
    responder.carry = _issue("old responder", h.keys["resp"], (h.certs["ica"], h.keys["ica"]), ca=False,
                             serial=94, expired=True)
    assert _reason(_client(responder).check_chain, chain, now=NOW) == "attest.gpu.ocsp"


def test_transport_failures(responder: Responder, h: Hierarchy, tmp_path: Path) -> None:
    assert _reason(NvidiaOcsp(url=responder.url).check_chain, h.chain(), now=NOW) == "attest.gpu.ocsp"  # unknown CA
    assert _reason(NvidiaOcsp(url="https://127.0.0.1:9/").check_chain, h.chain(), now=NOW) == "attest.gpu.ocsp"
    with pytest.raises(AttestationError):
        NvidiaOcsp(url="http://ocsp.ndis.nvidia.com")
    assert _reason(_client(responder).check_chain, h.chain()[:1], now=NOW) == "attest.gpu.ocsp"


def test_verify_gpu_with_ocsp(responder: Responder, h: Hierarchy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_nvgpu, "device_root", lambda: h.certs["root"])
    report = make_report(h.keys["leaf"], ReportSpec())
    g = verify_gpu(report, h.pem(), now=NOW, expected_nonce=NONCE, ocsp=_client(responder))
    assert g.ocsp_checked is True and [q.serial_number for q in responder.requests] == [3, 2]
    assert verify_gpu(report, h.pem(), now=NOW).ocsp_checked is False
    responder.status[3] = x509.ReasonFlags.key_compromise
    assert _reason(verify_gpu, report, h.pem(), now=NOW, ocsp=_client(responder)) == "attest.gpu.revoked"
    # evidence that fails locally never reaches the responder
    asked = len(responder.requests)
    assert _reason(verify_gpu, report, h.pem(), now=NOW, expected_nonce=bytes(32),
                   ocsp=_client(responder)) == "attest.gpu.nonce"
    assert len(responder.requests) == asked
    # policy: require_ocsp
    responder.status.clear()
    checked = verify_gpu(report, h.pem(), now=NOW, ocsp=_client(responder))
    unchecked = verify_gpu(report, h.pem(), now=NOW)
    from weightseal.attest import UnsafeMockPlatform, verify_mock

    cpu = verify_mock(UnsafeMockPlatform.generate().report(bytes(64), measurement=b"\x01" * 48).report)
    pol = Policy.from_dict({"version": 1, "model_versions": [1], "profiles": [
        {"platform": "mock", "measurements": ["01" * 48],
         "gpu": {"required": True, "measurements_verified_required": False, "cc_required": False,
                 "require_ocsp": True}}]})
    assert evaluate(pol, [cpu, checked], model_version=1, allow_mock=True).allowed is True
    with pytest.raises(PolicyDenied) as ei:
        evaluate(pol, [cpu, unchecked], model_version=1, allow_mock=True)
    assert (ei.value.reason, ei.value.rule) == ("policy.gpu.ocsp", "profiles[0].gpu.require_ocsp")
    # a golden policy from OCSP-checked evidence demands the check; from unchecked, it does not
    from weightseal.attest import policy_from_claims

    assert policy_from_claims([cpu, checked], model_versions=[1]).to_dict()["profiles"][0]["gpu"]["require_ocsp"] is True
    assert "require_ocsp" not in policy_from_claims([cpu, unchecked], model_versions=[1]).to_dict()["profiles"][0]["gpu"]


def test_real_blackwell_chain_is_asked_for_exactly_and_not_vouched_for_by_others(responder: Responder) -> None:
    rep, pem = blackwell()
    real = x509.load_pem_x509_certificates(pem)
    with pytest.raises(AttestationError) as ei:
        verify_gpu(rep, pem, expected_nonce=BLACKWELL_NONCE, ocsp=_client(responder, nonce=True))
    # our test responder cannot answer for NVIDIA's certificates: its handler fails on the
    # unknown serial (HTTP 400) -> no usable answer
    assert ei.value.reason == "attest.gpu.ocsp"
    [q] = responder.requests
    want = ocsp.OCSPRequestBuilder().add_certificate(real[1], real[2], hashes.SHA384()).build()
    assert q.serial_number == real[1].serial_number  # the BROM certificate, the leaf is skipped
    assert (q.issuer_key_hash, q.issuer_name_hash) == (want.issuer_key_hash, want.issuer_name_hash)


def test_cli_gpu_ocsp(responder: Responder, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from nvgpu_testlib import BLACKWELL

    import weightseal_cli

    base = [str(BLACKWELL / "blackwellAttestationReport.txt"), "--certs", str(BLACKWELL / "blackwell_cert_chain_case1.txt"),
            "--gpu-nonce", BLACKWELL_NONCE.hex(), "--json"]
    rc = weightseal_cli.main(["attest", "verify", *base])
    assert rc == 0 and json.loads(capsys.readouterr().out)["claims"][0]["ocsp_checked"] is False
    rc = weightseal_cli.main(["attest", "verify", *base, "--gpu-ocsp", responder.url, "--gpu-ocsp-ca", responder.ca_file])
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and (res["verdict"], res["reason"]) == ("invalid", "attest.gpu.ocsp")
    assert len(responder.requests) == 1  # it asked, about the BROM certificate
    rc = weightseal_cli.main(["attest", "verify", *base, "--gpu-ocsp-ca", responder.ca_file])
    assert rc == 1 and "--gpu-ocsp-ca needs --gpu-ocsp" in capsys.readouterr().err


def test_mutated_answers_fail_with_ocsp_reasons_only(h: Hierarchy) -> None:
    # a valid answer, byte-edited at random (fixed seed, through an injected transport): every
    # edit is refused with a GPU reason, never another exception, never accepted unless the
    # edit left the signed bytes and the nonce intact
    import random

    rnd = random.Random(1234)  # noqa: S311 - reproducible test mutations, not cryptography
    good = Responder(h)
    unedited = NvidiaOcsp(url="https://ocsp.test", http_post=lambda url, body, headers: good.answer(body),
                          clock=lambda: NOW.timestamp())
    assert unedited.check_chain(h.chain(), now=NOW) == 2
    accepted = refused = 0
    for _ in range(300):
        def post(url: str, body: bytes, headers: Any) -> bytes:
            answer = bytearray(good.answer(body))
            for _k in range(rnd.randint(1, 3)):
                answer[rnd.randrange(len(answer))] = rnd.randrange(256)
            return bytes(answer)

        client = NvidiaOcsp(url="https://ocsp.test", http_post=post, clock=lambda: NOW.timestamp())
        try:
            client.check_chain(h.chain(), now=NOW)
            accepted += 1
        except AttestationError as exc:
            assert exc.reason in {"attest.gpu.ocsp", "attest.gpu.revoked"}, exc.reason
            refused += 1
    assert refused > 280 and accepted + refused == 300
