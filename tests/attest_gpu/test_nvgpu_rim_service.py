"""NvidiaRimService: RIMs fetched from NVIDIA's RIM service API, here served by a real HTTPS
server on loopback (TLS from a test CA) with the REAL nvtrust RIMs in the service's JSON
envelope; the real legacy report then verifies exactly as with local files.  Also the shared
HTTPS getter (attest/_http.py) that AMD KDS and Intel PCS use by default."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from https_testserver import https_server
from nvgpu_testlib import (
    COCO_NONCE,
    LEGACY_NONCE,
    RIM_VALID_AT,
    TRUSTEE,
    hopper,
    legacy,
    legacy_rims,
    rd,
)
from weightseal.attest import (
    AttestationError,
    CollateralError,
    NvidiaRimService,
    RimQuery,
    verify_gpu,
)
from weightseal.attest._http import https_get
from weightseal.attest._snp_kds import urllib_fetcher
from weightseal.kms._devcerts import DevPki

DRIVER_ID = "NV_GPU_DRIVER_GH100_545.00"
VBIOS_ID = "NV_GPU_VBIOS_1010_0200_882_96005E0001"  # the legacy report: project 1010, SKU 0200, chip SKU 882


@dataclass
class Service:
    """What the fake RIM service serves and what it was asked."""

    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""
    ca_file: str = ""
    port: int = 0

    def rim(self, rim_id: str, body: bytes) -> None:
        doc = {"id": rim_id, "rim": base64.b64encode(body).decode(), "sha256": "", "last_updated": "2024-01-01",
               "rim_format": "SWID"}
        self.routes[f"/v1/rim/{rim_id}"] = (200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def ids(self) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p, _h in self.requests]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            svc.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            code, body, headers = svc.routes.get(self.path, (404, b'{"error": "not found"}', {}))
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    with https_server(Handler, tmp_path / "tls") as srv:
        svc.ca_file, svc.port = srv.ca_file, srv.port
        svc.base = srv.url("/v1/rim/")
        yield svc


def _reason(fn: Any, *a: Any, **kw: Any) -> str:
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return ei.value.reason


def test_rim_ids_as_nvidias_verifier_names_them() -> None:
    # from the real reports' opaque data
    r, c = legacy()
    g = verify_gpu(r, c, now=RIM_VALID_AT)
    q = RimQuery(g.architecture, g.driver_version, g.vbios_version, None, g.project, g.project_sku, g.chip_sku)
    assert (NvidiaRimService.driver_rim_id(q), NvidiaRimService.vbios_rim_id(q)) == (DRIVER_ID, VBIOS_ID)
    coco = verify_gpu(bytes.fromhex(rd(TRUSTEE / "hopper_coco_report1.txt").decode().strip()),
                      rd(TRUSTEE / "hopper_coco_certs1.txt"), expected_nonce=COCO_NONCE)
    q = RimQuery(coco.architecture, coco.driver_version, coco.vbios_version, None, coco.project, coco.project_sku,
                 coco.chip_sku)
    assert NvidiaRimService.driver_rim_id(q) == "NV_GPU_DRIVER_GH100_580.95.05"
    assert NvidiaRimService.vbios_rim_id(q) == "NV_GPU_VBIOS_1010_0200_882_960074001A"
    # Blackwell: the driver RIM is named after the chip in the opaque CHIP_INFO
    bw = RimQuery("blackwell", "575.51.02", "97.00.88.00.0f", "gb100", "G525", "0200", "888")
    assert NvidiaRimService.driver_rim_id(bw) == "NV_GPU_CC_DRIVER_GB100_575.51.02"
    assert NvidiaRimService.vbios_rim_id(bw) == "NV_GPU_VBIOS_G525_0200_888_970088000F"
    assert _reason(NvidiaRimService.driver_rim_id, RimQuery("blackwell", "575.51.02", "97.00")) == "attest.gpu.rim"
    assert _reason(NvidiaRimService.vbios_rim_id, RimQuery("hopper", "550.90.07", "96.00.9f.00.01")) == "attest.gpu.rim"
    # whatever the report says ends up in a URL and a file name: only a narrow alphabet passes
    for bad in ("../../etc/passwd", "550 90", "550/90", "550?x=1", "x" * 200):
        assert _reason(NvidiaRimService.driver_rim_id, RimQuery("hopper", bad, "96.00")) == "attest.gpu.rim"


def test_real_report_verifies_with_rims_from_the_service(service: Service, tmp_path: Path) -> None:
    drv, vb = legacy_rims()
    service.rim(DRIVER_ID, drv)
    service.rim(VBIOS_ID, vb)
    clock = [1000.0]
    rims = NvidiaRimService(base_url=service.base, ca_file=service.ca_file, service_key="sekret-123",
                            cache_dir=tmp_path / "cache", clock=lambda: clock[0])
    r, c = legacy()
    g = verify_gpu(r, c, now=RIM_VALID_AT, expected_nonce=LEGACY_NONCE, rims=rims)
    assert g.measurements_verified is True and g.cc_enabled is True
    assert service.ids() == [DRIVER_ID, VBIOS_ID]
    assert all(h["authorization"] == "Bearer sekret-123" for _p, h in service.requests)
    assert "sekret" not in repr(rims)
    # cached: in memory, and on disk byte-identical to the documents
    assert verify_gpu(r, c, now=RIM_VALID_AT, rims=rims).measurements_verified is True
    assert len(service.requests) == 2
    assert (tmp_path / "cache" / f"{DRIVER_ID}.xml").read_bytes() == drv
    assert (tmp_path / "cache" / f"{VBIOS_ID}.xml").read_bytes() == vb
    # after a day: asked again; when the service is gone the copies held are used
    clock[0] += 86401
    service.routes.clear()
    assert verify_gpu(r, c, now=RIM_VALID_AT, rims=rims).measurements_verified is True
    assert len(service.requests) == 4
    # a restarted service client finds the disk copies (no key, no network needed)
    again = NvidiaRimService(base_url="https://127.0.0.1:9/v1/rim/", cache_dir=tmp_path / "cache")
    assert verify_gpu(r, c, now=RIM_VALID_AT, rims=again).measurements_verified is True


def test_the_service_adds_no_trust(service: Service) -> None:
    drv, vb = legacy_rims()
    service.rim(DRIVER_ID, drv)
    tampered = vb.replace(b'active="True"', b'active="False"', 1)
    assert tampered != vb
    service.rim(VBIOS_ID, tampered)
    r, c = legacy()
    rims = NvidiaRimService(base_url=service.base, ca_file=service.ca_file)
    assert _reason(verify_gpu, r, c, now=RIM_VALID_AT, rims=rims) == "attest.gpu.rim"  # signature
    # a genuine RIM, but for another version than the id asked for (here the VBIOS RIM under
    # the driver's id): the versions in the documents decide, so there is no driver RIM
    service.rim(DRIVER_ID, vb)
    service.rim(VBIOS_ID, vb)
    rims = NvidiaRimService(base_url=service.base, ca_file=service.ca_file)
    assert _reason(verify_gpu, r, c, now=RIM_VALID_AT, rims=rims) == "attest.gpu.rim"


@pytest.mark.parametrize("status,body", [
    (404, b'{"error": "not found"}'),
    (500, b"oops"),
    (200, b"<html>not json</html>"),
    (200, b'{"id": "x"}'),  # no rim member
    (200, b'{"rim": 5}'),
    (200, b'{"rim": "!!!not base64!!!"}'),
    (200, b'{"rim": ""}'),
    (200, b"[1, 2]"),
    (200, b'{"rim": "' + b"A" * (9 * 1024 * 1024) + b'"}'),  # larger than any RIM answer
])
def test_bad_answers_are_denials(service: Service, status: int, body: bytes) -> None:
    service.routes[f"/v1/rim/{DRIVER_ID}"] = (status, body, {})
    rims = NvidiaRimService(base_url=service.base, ca_file=service.ca_file)
    assert _reason(rims.fetch, DRIVER_ID) == "attest.gpu.rim"
    r, c = legacy()
    assert _reason(verify_gpu, r, c, now=RIM_VALID_AT, rims=rims) == "attest.gpu.rim"


def test_tls_and_redirect_rules(service: Service, tmp_path: Path) -> None:
    drv, _vb = legacy_rims()
    service.rim(DRIVER_ID, drv)
    # the system store does not know the test CA: the TLS handshake fails
    assert _reason(NvidiaRimService(base_url=service.base).fetch, DRIVER_ID) == "attest.gpu.rim"
    # another CA: refused as well
    other = DevPki("other CA").write_ca(tmp_path / "other")
    assert _reason(NvidiaRimService(base_url=service.base, ca_file=str(other)).fetch, DRIVER_ID) == "attest.gpu.rim"
    # a redirect to plain http is not followed; one to https is
    service.routes["/v1/rim/NV_GPU_MOVED"] = (302, b"", {"Location": f"http://127.0.0.1:{service.port}/v1/rim/{DRIVER_ID}"})
    assert _reason(NvidiaRimService(base_url=service.base, ca_file=service.ca_file).fetch, "NV_GPU_MOVED") == "attest.gpu.rim"
    service.routes["/v1/rim/NV_GPU_MOVED"] = (302, b"", {"Location": f"{service.base}{DRIVER_ID}"})
    assert NvidiaRimService(base_url=service.base, ca_file=service.ca_file).fetch("NV_GPU_MOVED") == drv
    assert [p for p, _h in service.requests[-2:]] == ["/v1/rim/NV_GPU_MOVED", f"/v1/rim/{DRIVER_ID}"]
    with pytest.raises(CollateralError):
        NvidiaRimService(base_url="http://rim.example/v1/rim/")


def test_https_get_limits_and_errors(service: Service) -> None:
    service.routes["/blob"] = (200, b"x" * 100, {"X-Thing": "1"})
    body, headers = https_get(service.base.replace("/v1/rim/", "/blob"), limit=100, ca_file=service.ca_file,
                              error=lambda m: CollateralError(m, reason="t.err"))
    assert body == b"x" * 100 and headers["x-thing"] == "1"
    with pytest.raises(CollateralError) as ei:
        https_get(service.base.replace("/v1/rim/", "/blob"), limit=99, ca_file=service.ca_file,
                  error=lambda m: CollateralError(m, reason="t.err"))
    assert ei.value.reason == "t.err" and "larger than 99" in str(ei.value)
    for url in ("http://127.0.0.1/x", "ftp://x", "file:///etc/passwd"):
        with pytest.raises(CollateralError):
            https_get(url, limit=10, error=lambda m: CollateralError(m, reason="t.err"))
    with pytest.raises(CollateralError) as ei:
        https_get("https://127.0.0.1:9/", limit=10, timeout=2, error=lambda m: CollateralError(m, reason="t.err"))
    assert "failed" in str(ei.value)
    # AMD KDS's default fetcher is the same getter: https only, typed errors
    assert _reason(urllib_fetcher, "http://kdsintf.amd.com/vcek/v1/Milan/cert_chain") == "attest.snp.kds"
    assert _reason(urllib_fetcher, f"https://127.0.0.1:{service.port}/blob") == "attest.snp.kds"  # unknown CA


def test_a_failing_source_is_a_rim_denial() -> None:
    class Broken:
        def rims_for(self, gpu: RimQuery) -> tuple[bytes, bytes]:
            raise RuntimeError("boom")

    r, c = hopper()
    assert _reason(verify_gpu, r, c, now=RIM_VALID_AT, rims=Broken()) == "attest.gpu.rim"


def test_cli_rim_service(service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    from nvgpu_testlib import LEGACY

    import weightseal_cli

    drv, vb = legacy_rims()
    service.rim(DRIVER_ID, drv)
    service.rim(VBIOS_ID, vb)
    base = [str(LEGACY / "attestationReport.txt"), "--certs", str(LEGACY / "gpuAkCertChain.txt"),
            "--now", "2024-01-15T00:00:00Z", "--gpu-nonce", LEGACY_NONCE.hex(), "--json"]
    rc = weightseal_cli.main(["attest", "verify", *base, "--rim-service", service.base, "--rim-service-ca",
                              service.ca_file])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["claims"][0]["measurements_verified"] is True
    assert service.ids() == [DRIVER_ID, VBIOS_ID]
    rc = weightseal_cli.main(["attest", "verify", *base, "--rim-service", service.base])  # system CAs only
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and res["reason"] == "attest.gpu.rim"
    rc = weightseal_cli.main(["attest", "verify", *base, "--rim-service", service.base, "--rim", "x"])
    assert rc == 1 and "alternatives" in capsys.readouterr().err
