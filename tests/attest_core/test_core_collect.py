"""Collectors against simulated kernels.

Limitation: a real configfs-tsm entry is produced by the kernel (writing ``inblob`` makes the
firmware fill ``outblob``); a plain directory cannot react to a write.  We therefore simulate
the kernel with (a) an in-memory ``FsOps`` fake and (b) a ``RealFs`` subclass over a temp
directory whose ``write`` of ``inblob`` also writes the attribute files the kernel would.  The
``/dev/sev-guest`` ioctl is exercised with a fake ioctl that decodes our structs from memory and
writes the response the way the kernel does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _attest_core_helpers import T_SNP_GO, snp_go_evidence
from weightseal.attest import (
    CollectorError,
    Platform,
    UnsafeMockPlatform,
    collect,
    detect,
    gpu_nonce,
    verify_evidence,
)
from weightseal.attest._collect import (
    SNP_GET_EXT_REPORT,
    RealFs,
    collect_configfs,
    collect_nvml,
    collect_sev_guest,
)

RD = bytes(range(64))
GO_RD = bytes.fromhex("0102030405") + bytes(59)


class FakeTsm:
    """In-memory configfs-tsm: entries appear on mkdir; writing inblob produces a report."""

    def __init__(self, root: Path, provider: str = "sev_guest", *, race: int = 0, report: bytes | None = None,
                 aux: bytes = b"AUX", aux_error: int | None = None) -> None:
        self.root, self.provider, self.race = root, provider, race
        self.report, self.aux, self.aux_error = report, aux, aux_error
        self.entries: dict[Path, dict[str, bytes]] = {}
        self.removed: list[Path] = []
        self.reads: list[str] = []

    def exists(self, path: Path) -> bool:
        if path == self.root:
            return True
        e = self.entries.get(path.parent)
        return e is not None and path.name in e

    def mkdir(self, path: Path) -> None:
        assert path.parent == self.root and path not in self.entries
        self.entries[path] = {"provider": self.provider.encode() + b"\n", "generation": b"0\n"}

    def rmdir(self, path: Path) -> None:
        del self.entries[path]
        self.removed.append(path)

    def write(self, path: Path, data: bytes) -> None:
        e = self.entries[path.parent]
        assert path.name == "inblob" and len(data) == 64
        e["generation"] = str(int(e["generation"]) + 1).encode() + b"\n"
        e["outblob"] = self.report if self.report is not None else b"REPORT:" + data
        if self.provider == "sev_guest":
            e["auxblob"] = self.aux

    def read(self, path: Path) -> bytes:
        e = self.entries[path.parent]
        self.reads.append(path.name)
        if path.name == "auxblob" and self.aux_error is not None:
            raise OSError(self.aux_error, "no certs")
        if path.name == "outblob" and self.race > 0:  # another writer sneaks in
            self.race -= 1
            e["generation"] = str(int(e["generation"]) + 1).encode()
        if path.name not in e:
            raise OSError(errno.ENOENT, "no such attribute")
        return e[path.name]


def test_configfs_snp(tmp_path: Path) -> None:
    fs = FakeTsm(tmp_path)
    ev = collect_configfs(RD, root=tmp_path, fs=fs)
    assert (ev.platform, ev.report, ev.certs) == (Platform.SNP, b"REPORT:" + RD, b"AUX")
    assert not fs.entries and len(fs.removed) == 1  # entry removed afterwards
    assert fs.reads[0] == "generation" and fs.reads[-1] == "generation"


def test_configfs_tdx_has_no_aux(tmp_path: Path) -> None:
    ev = collect_configfs(RD, root=tmp_path, fs=FakeTsm(tmp_path, "tdx_guest"))
    assert (ev.platform, ev.certs) == (Platform.TDX, b"")


def test_configfs_race_retries_then_gives_up(tmp_path: Path) -> None:
    fs = FakeTsm(tmp_path, race=1)
    assert collect_configfs(RD, root=tmp_path, fs=fs).report == b"REPORT:" + RD
    assert len(fs.removed) == 2
    fs2 = FakeTsm(tmp_path, race=10)
    with pytest.raises(CollectorError) as ei:
        collect_configfs(RD, root=tmp_path, fs=fs2)
    assert ei.value.reason == "attest.collect.race"
    assert not fs2.entries


def test_configfs_provider_checks(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as ei:
        collect_configfs(RD, root=tmp_path, fs=FakeTsm(tmp_path, "tdx_guest"), expect=Platform.SNP)
    assert ei.value.reason == "attest.collect.provider"
    with pytest.raises(CollectorError) as ei2:
        collect_configfs(RD, root=tmp_path, fs=FakeTsm(tmp_path, "arm_cca_guest"))
    assert ei2.value.reason == "attest.collect.provider"


def test_configfs_aux_missing_is_not_fatal(tmp_path: Path) -> None:
    ev = collect_configfs(RD, root=tmp_path, fs=FakeTsm(tmp_path, aux_error=errno.ENOENT))
    assert ev.certs == b""
    with pytest.raises(CollectorError) as ei:
        collect_configfs(RD, root=tmp_path, fs=FakeTsm(tmp_path, aux_error=errno.EIO))
    assert ei.value.reason == "attest.collect.configfs"


def test_configfs_empty_report_and_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as ei:
        collect_configfs(RD, root=tmp_path, fs=FakeTsm(tmp_path, report=b""))
    assert ei.value.reason == "attest.collect.configfs"
    with pytest.raises(CollectorError) as ei2:
        collect_configfs(RD[:63], root=tmp_path, fs=FakeTsm(tmp_path))
    assert ei2.value.reason == "attest.collect.report_data"
    with pytest.raises(CollectorError) as ei3:
        collect_configfs(RD, root=tmp_path / "nope")
    assert ei3.value.reason == "attest.collect.no_tee"


class KernelDir(RealFs):
    """RealFs over a temp dir, plus the one thing the kernel does: fill the blobs on write."""

    def __init__(self, report: bytes, aux: bytes) -> None:
        self.report, self.aux = report, aux

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        (path / "provider").write_bytes(b"sev_guest\n")
        (path / "generation").write_bytes(b"0\n")

    def rmdir(self, path: Path) -> None:  # configfs removes attributes with the dir
        for f in path.iterdir():
            f.unlink()
        super().rmdir(path)

    def write(self, path: Path, data: bytes) -> None:
        super().write(path, data)
        if path.name == "inblob":
            (path.parent / "outblob").write_bytes(self.report)
            (path.parent / "auxblob").write_bytes(self.aux)
            (path.parent / "generation").write_bytes(b"1\n")


def test_collect_real_snp_sample_through_a_directory_then_verify(tmp_path: Path) -> None:
    """End to end: the real go-sev-guest report + VCEK (as a cert table in auxblob) comes out of
    a simulated configfs directory and verifies with its report_data binding."""
    from weightseal.attest._snp_certs import build_snp_cert_table

    sample = snp_go_evidence()
    vcek = (Path(__file__).parents[1] / "data/attestation/snp/go-sev-guest/vcek.testcer").read_bytes()
    table = build_snp_cert_table({"vcek": vcek})
    evs = collect(GO_RD, configfs_root=tmp_path, fs=KernelDir(sample.report, table), gpus="none")
    assert [e.platform for e in evs] == [Platform.SNP]
    assert evs[0].report == sample.report and evs[0].certs == table
    assert list(tmp_path.iterdir()) == []  # entry cleaned up
    claims = verify_evidence(evs[0], expected_report_data=GO_RD, now=T_SNP_GO)
    assert claims.report_data == GO_RD


# ---------------------------------------------------------------------------------------------
# /dev/sev-guest


class FakeSevGuest:
    def __init__(self, *, need_certs: int | None = None, status: int = 0, size: int = 0x4A0, fail: bool = False) -> None:
        self.need_certs, self.status, self.size, self.fail = need_certs, status, size, fail
        self.calls: list[dict[str, Any]] = []

    def __call__(self, fd: int, request: int, buf: bytearray) -> int:
        assert request == SNP_GET_EXT_REPORT == 0xC0205302
        msg_version, req_addr, resp_addr, _ = struct.unpack("<B7xQQQ", bytes(buf))
        assert msg_version == 1 and len(buf) == 32
        req = ctypes.string_at(req_addr, 112)
        user_data, vmpl, rsvd, certs_addr, certs_len = struct.unpack("<64sI28sQI4x", req)
        self.calls.append({"user_data": user_data, "vmpl": vmpl, "certs_len": certs_len})
        assert rsvd == bytes(28)
        if self.fail:
            struct.pack_into("<Q", buf, 24, 0x16)  # fw_error
            raise OSError(errno.EIO, "firmware error")
        if self.need_certs and certs_len < self.need_certs:
            ctypes.memmove(req_addr + 104, struct.pack("<I", self.need_certs), 4)
            struct.pack_into("<Q", buf, 24, 1 << 32)  # vmm_error = INVALID_LEN
            raise OSError(errno.EIO, "certificate buffer too small")
        report = b"R" * 0x20 + user_data + b"S" * (0x4A0 - 0x60)
        resp = struct.pack("<II24x", self.status, self.size) + report
        ctypes.memmove(resp_addr, resp, len(resp))
        table = struct.pack("<16sII", b"G" * 16, 48, 5) + bytes(24) + b"CERTS"
        ctypes.memmove(certs_addr, table, len(table))
        return 0


def _opener(_: Path) -> int:
    return os.open(os.devnull, os.O_RDONLY)


def test_sev_guest_ioctl() -> None:
    fake = FakeSevGuest()
    ev = collect_sev_guest(RD, ioctl=fake, opener=_opener, vmpl=1)
    assert ev.platform is Platform.SNP and len(ev.report) == 0x4A0 and ev.report[0x20:0x60] == RD
    assert ev.certs == struct.pack("<16sII", b"G" * 16, 48, 5) + bytes(24) + b"CERTS"
    assert fake.calls == [{"user_data": RD, "vmpl": 1, "certs_len": 4 * 4096}]


def test_sev_guest_grows_cert_buffer() -> None:
    fake = FakeSevGuest(need_certs=5 * 4096 + 10)
    ev = collect_sev_guest(RD, ioctl=fake, opener=_opener)
    assert [c["certs_len"] for c in fake.calls] == [4 * 4096, 6 * 4096]
    assert ev.certs.endswith(b"CERTS")


@pytest.mark.parametrize("fake", [FakeSevGuest(fail=True), FakeSevGuest(status=0x16), FakeSevGuest(size=4000),
                                  FakeSevGuest(need_certs=1 << 30)])
def test_sev_guest_errors(fake: FakeSevGuest) -> None:
    with pytest.raises(CollectorError) as ei:
        collect_sev_guest(RD, ioctl=fake, opener=_opener)
    assert ei.value.reason == "attest.collect.sev_guest"


def test_sev_guest_missing_device(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as ei:
        collect_sev_guest(RD, device=tmp_path / "sev-guest")
    assert ei.value.reason == "attest.collect.no_tee"


def test_collect_auto_falls_back_to_sev_guest(tmp_path: Path) -> None:
    dev = tmp_path / "sev-guest"
    dev.write_bytes(b"")
    evs = collect(RD, configfs_root=tmp_path / "no-configfs", sev_device=dev, gpus="none",
                  ioctl=FakeSevGuest(), sev_opener=_opener)
    assert [e.platform for e in evs] == [Platform.SNP]


# ---------------------------------------------------------------------------------------------
# NVML


class FakeNvml:
    def __init__(self, count: int = 2, fail: bool = False) -> None:
        self.count, self.fail, self.nonces, self.shutdown = count, fail, [], False

    def nvmlInit(self) -> None:
        if self.fail:
            raise RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED")

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlSystemGetConfComputeState(self) -> Any:
        return SimpleNamespace(ccFeature=1)

    def nvmlDeviceGetConfComputeGpuAttestationReport(self, h: int, nonce: bytes) -> Any:
        self.nonces.append(bytes(nonce))
        data = b"\x11\xe0\x01\xff" + bytes(nonce) + bytes([h])
        return SimpleNamespace(attestationReport=(ctypes.c_uint8 * 8192)(*data), attestationReportSize=len(data))

    def nvmlDeviceGetConfComputeGpuCertificate(self, h: int) -> Any:
        pem = b"-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"
        return SimpleNamespace(attestationCertChain=list(pem) + [0] * 10, attestationCertChainSize=len(pem))


def test_nvml_collects_each_gpu_with_derived_nonce() -> None:
    nv = FakeNvml(count=2)
    evs = collect_nvml(RD, nvml=nv)
    assert nv.nonces == [gpu_nonce(RD)] * 2 and nv.shutdown
    assert [e.platform for e in evs] == [Platform.NVGPU] * 2
    assert evs[1].report == b"\x11\xe0\x01\xff" + gpu_nonce(RD) + b"\x01"
    assert evs[0].certs.startswith(b"-----BEGIN CERTIFICATE-----") and not evs[0].certs.endswith(b"\0")


def test_gpu_modes(tmp_path: Path) -> None:
    fs = FakeTsm(tmp_path)
    evs = collect(RD, configfs_root=tmp_path, fs=fs, nvml=FakeNvml(count=1))
    assert [e.platform for e in evs] == [Platform.SNP, Platform.NVGPU]
    assert [e.platform for e in collect(RD, configfs_root=tmp_path, fs=fs, gpus="none", nvml=FakeNvml())] == [Platform.SNP]
    # auto with a broken NVML: CPU evidence only; required: error
    assert len(collect(RD, configfs_root=tmp_path, fs=fs, nvml=FakeNvml(fail=True))) == 1
    for nv in (FakeNvml(fail=True), FakeNvml(count=0)):
        with pytest.raises(CollectorError) as ei:
            collect(RD, configfs_root=tmp_path, fs=fs, gpus="required", nvml=nv)
        assert ei.value.reason in {"attest.collect.gpu", "attest.collect.no_gpu"}
    # pynvml is not installed in this environment
    with pytest.raises(CollectorError) as ei2:
        collect(RD, configfs_root=tmp_path, fs=fs, gpus="required")
    assert ei2.value.reason == "attest.collect.no_gpu"


# ---------------------------------------------------------------------------------------------
# auto never falls back to the mock


def test_auto_without_tee_is_no_tee_never_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the mock must never be used automatically")

    monkeypatch.setattr(UnsafeMockPlatform, "report", boom)
    mock = UnsafeMockPlatform.from_seed(bytes(32))
    for attester in ("auto", "snp", "tdx"):
        with pytest.raises(CollectorError) as ei:
            collect(RD, attester=attester, configfs_root=tmp_path / "none",  # type: ignore[arg-type]
                    sev_device=tmp_path / "none2", gpus="none", mock=mock)
        assert ei.value.reason == "attest.collect.no_tee"
        assert "no TEE found" in str(ei.value) and "mock is never used automatically" in str(ei.value)


def test_mock_only_when_named(tmp_path: Path) -> None:
    with pytest.raises(CollectorError) as ei:
        collect(RD, attester="mock", gpus="none")
    assert ei.value.reason == "attest.collect.mock_key"
    mock = UnsafeMockPlatform.from_seed(bytes(32))
    evs = collect(RD, attester="mock", mock=mock, mock_measurement=b"\x05" * 48, gpus="none")
    assert [e.platform for e in evs] == [Platform.MOCK]
    c = verify_evidence(evs[0], expected_report_data=RD, allow_mock=True, mock_keys=[mock.public_key])
    assert c.measurement == b"\x05" * 48
    with pytest.raises(CollectorError):
        collect(RD, attester="sgx", gpus="none")  # type: ignore[arg-type]


def test_detect(tmp_path: Path) -> None:
    d = detect(configfs_root=tmp_path, sev_device=tmp_path / "x", tdx_device=tmp_path / "y", fs=FakeTsm(tmp_path, "tdx_guest"),
               nvml=FakeNvml(count=3))
    assert d.cpu_platform is Platform.TDX and d.gpu_count == 3 and d.configfs_provider == "tdx_guest"
    text = d.describe()
    assert "provider tdx_guest" in text and "=> CPU TEE: tdx" in text and "3 NVIDIA GPU(s)" in text
    none = detect(configfs_root=tmp_path / "no", sev_device=tmp_path / "x", tdx_device=tmp_path / "y")
    assert none.cpu_platform is None and "none found" in none.describe()
    assert none.nvml is False
