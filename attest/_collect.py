"""Evidence collectors, for use INSIDE a TEE.

Sources, in order of preference:

* Linux configfs-tsm (kernel >= 6.7; SNP and TDX): ``/sys/kernel/config/tsm/report``.  We make a
  fresh entry directory, write the 64-byte report_data to ``inblob``, read ``generation``,
  ``provider`` (``sev_guest`` / ``tdx_guest``), ``outblob`` (the SNP report or TDX quote) and
  ``auxblob`` (SNP: the extended-report certificate table), read ``generation`` again (another
  writer to the same entry would have bumped it: retry), and remove the entry.
* ``/dev/sev-guest`` (SNP only, older kernels): the SNP_GET_EXT_REPORT ioctl.
* NVIDIA GPUs through NVML (``nvidia-ml-py``; only when importable):
  ``nvmlDeviceGetConfComputeGpuAttestationReport`` with the 32-byte nonce derived from
  report_data, and ``nvmlDeviceGetConfComputeGpuCertificate`` for the device certificate chain.

``collect(attester="auto")`` NEVER falls back to the software mock: with no TEE it raises
``CollectorError(reason="attest.collect.no_tee")``.  The mock is used only when
``attester="mock"`` is named and an :class:`UnsafeMockPlatform` is passed.

File-system access goes through a small ``FsOps`` object so tests can simulate the kernel
(a plain directory cannot make ``outblob`` appear when ``inblob`` is written).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol

from ._binding import gpu_nonce
from ._claims import Evidence, Platform
from ._errors import CollectorError

__all__ = [
    "CONFIGFS_TSM_ROOT",
    "SEV_GUEST_DEVICE",
    "FsOps",
    "RealFs",
    "Detection",
    "detect",
    "collect",
    "collect_configfs",
    "collect_sev_guest",
    "collect_nvml",
    "SNP_GET_EXT_REPORT",
]

log = logging.getLogger("weightseal.attest.collect")

CONFIGFS_TSM_ROOT = Path("/sys/kernel/config/tsm/report")
SEV_GUEST_DEVICE = Path("/dev/sev-guest")
TDX_GUEST_DEVICE = Path("/dev/tdx_guest")
_PROVIDERS = {"sev_guest": Platform.SNP, "tdx_guest": Platform.TDX}
_MAX_BLOB = 1 << 20
_RETRIES = 3

Attester = Literal["auto", "snp", "tdx", "mock"]
GpuMode = Literal["auto", "none", "required"]


# ---------------------------------------------------------------------------------------------
# file-system seam


class FsOps(Protocol):
    def exists(self, path: Path) -> bool: ...
    def mkdir(self, path: Path) -> None: ...
    def rmdir(self, path: Path) -> None: ...
    def read(self, path: Path) -> bytes: ...
    def write(self, path: Path, data: bytes) -> None: ...


class RealFs:
    """Direct system calls.  configfs attributes are read/written in one call each."""

    def exists(self, path: Path) -> bool:
        return path.exists()

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def read(self, path: Path) -> bytes:
        with open(path, "rb", buffering=0) as fh:
            data = fh.read(_MAX_BLOB + 1)
        if len(data) > _MAX_BLOB:
            raise OSError(errno.EFBIG, "attribute larger than expected")
        return data

    def write(self, path: Path, data: bytes) -> None:
        with open(path, "wb", buffering=0) as fh:
            n = fh.write(data)
        if n != len(data):
            raise OSError(errno.EIO, "short write")


# ---------------------------------------------------------------------------------------------
# configfs-tsm


def _check_report_data(report_data: bytes) -> bytes:
    if not isinstance(report_data, bytes | bytearray) or len(report_data) != 64:
        raise CollectorError("report_data must be 64 bytes", reason="attest.collect.report_data")
    return bytes(report_data)


def configfs_available(root: Path = CONFIGFS_TSM_ROOT, fs: FsOps | None = None) -> bool:
    return (fs or RealFs()).exists(root)


def collect_configfs(
    report_data: bytes,
    *,
    root: Path = CONFIGFS_TSM_ROOT,
    fs: FsOps | None = None,
    expect: Platform | None = None,
) -> Evidence:
    """One configfs-tsm report.  ``expect`` (SNP/TDX) fails if the provider is another one."""
    rd = _check_report_data(report_data)
    fs = fs or RealFs()
    if not fs.exists(root):
        raise CollectorError(f"configfs-tsm is not available ({root} does not exist)", reason="attest.collect.no_tee")
    last_error = "generation changed"
    for _attempt in range(_RETRIES):
        entry = root / f"weightseal-{secrets.token_hex(8)}"
        try:
            fs.mkdir(entry)
        except OSError as exc:
            raise CollectorError(f"cannot create configfs-tsm entry: {exc.strerror or exc}",
                                 reason="attest.collect.configfs") from exc
        try:
            # 1. Write the request; 2. note the generation it produced.
            fs.write(entry / "inblob", rd)
            gen_before = fs.read(entry / "generation").strip()
            # 3. Provider and blobs.
            provider = fs.read(entry / "provider").decode("ascii", "replace").strip()
            plat = _PROVIDERS.get(provider)
            if plat is None:
                raise CollectorError(f"unknown configfs-tsm provider {provider!r}", reason="attest.collect.provider")
            if expect is not None and plat is not expect:
                raise CollectorError(f"asked for {expect.value} but this machine's TSM provider is {provider}",
                                     reason="attest.collect.provider")
            outblob = fs.read(entry / "outblob")
            aux = b""
            if plat is Platform.SNP and fs.exists(entry / "auxblob"):
                try:
                    aux = fs.read(entry / "auxblob")
                except OSError as exc:  # no certificates configured by the host: not fatal
                    if exc.errno not in (errno.ENOENT, errno.ENODATA, errno.EINVAL, errno.ENXIO):
                        raise
                    aux = b""
            # 4. If someone else wrote inblob meanwhile, the blobs may not be ours: retry.
            gen_after = fs.read(entry / "generation").strip()
            if gen_after != gen_before:
                log.warning("configfs-tsm generation changed during collection (%s -> %s); retrying",
                            gen_before.decode("ascii", "replace"), gen_after.decode("ascii", "replace"))
                continue
            if not outblob:
                raise CollectorError("configfs-tsm returned an empty report", reason="attest.collect.configfs")
            return Evidence(platform=plat, report=outblob, certs=aux)
        except OSError as exc:
            raise CollectorError(f"configfs-tsm request failed: {exc.strerror or exc}",
                                 reason="attest.collect.configfs") from exc
        finally:
            try:
                fs.rmdir(entry)
            except OSError as exc:
                log.warning("could not remove configfs-tsm entry %s: %s", entry, exc)
    raise CollectorError(f"configfs-tsm: {last_error} on every attempt", reason="attest.collect.race")


def probe_configfs_provider(root: Path = CONFIGFS_TSM_ROOT, fs: FsOps | None = None) -> str | None:
    """Make and remove an entry just to read ``provider``; None when unavailable."""
    fs = fs or RealFs()
    if not fs.exists(root):
        return None
    entry = root / f"weightseal-probe-{secrets.token_hex(4)}"
    try:
        fs.mkdir(entry)
    except OSError:
        return None
    try:
        return fs.read(entry / "provider").decode("ascii", "replace").strip() or None
    except OSError:
        return None
    finally:
        try:
            fs.rmdir(entry)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# /dev/sev-guest: SNP_GET_EXT_REPORT
#
# From linux/include/uapi/linux/sev-guest.h:
#   struct snp_report_req      { u8 user_data[64]; u32 vmpl; u8 rsvd[28]; }            96 bytes
#   struct snp_ext_report_req  { struct snp_report_req data; u64 certs_address;
#                                u32 certs_len; }                           112 bytes (aligned)
#   struct snp_report_resp     { u8 data[4000]; }
#   struct snp_guest_request_ioctl { u8 msg_version; u64 req_data; u64 resp_data;
#                                    union { u64 exitinfo2; struct { u32 fw_error;
#                                    u32 vmm_error; }; }; }                            32 bytes
#   SNP_GET_EXT_REPORT = _IOWR('S', 0x2, struct snp_guest_request_ioctl)
# The response payload (MSG_REPORT_RSP, SNP ABI table 25): u32 status, u32 report_size,
# 24 reserved bytes, then the report.


def _iowr(type_: int, nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (type_ << 8) | nr


_GUEST_REQ = struct.Struct("<B7xQQQ")
SNP_GET_EXT_REPORT = _iowr(ord("S"), 0x2, _GUEST_REQ.size)
_EXT_REQ = struct.Struct("<64sI28sQI4x")
_RESP_LEN = 4000
_SNP_REPORT_LEN = 0x4A0
_PAGE = 4096
_MAX_CERTS = 16 * _PAGE  # the kernel's SEV_FW_BLOB_MAX_SIZE is 0x4000; leave headroom
_VMM_ERR_INVALID_LEN = 1

IoctlFn = Callable[[int, int, bytearray], int]


def _default_ioctl(fd: int, request: int, buf: bytearray) -> int:
    import fcntl

    return int(fcntl.ioctl(fd, request, buf, True))


def collect_sev_guest(
    report_data: bytes,
    *,
    device: Path = SEV_GUEST_DEVICE,
    vmpl: int = 0,
    ioctl: IoctlFn | None = None,
    opener: Callable[[Path], int] | None = None,
) -> Evidence:
    """SNP report + certificate table via the ``/dev/sev-guest`` SNP_GET_EXT_REPORT ioctl."""
    rd = _check_report_data(report_data)
    if not 0 <= vmpl <= 3:
        raise CollectorError("vmpl must be 0..3", reason="attest.collect.sev_guest")
    do_ioctl = ioctl or _default_ioctl
    try:
        fd = (opener or (lambda p: os.open(p, os.O_RDWR | os.O_CLOEXEC)))(device)
    except OSError as exc:
        raise CollectorError(f"cannot open {device}: {exc.strerror or exc}", reason="attest.collect.no_tee") from exc
    try:
        certs_len = 4 * _PAGE
        for _attempt in range(2):
            certs = ctypes.create_string_buffer(certs_len)
            req = ctypes.create_string_buffer(
                _EXT_REQ.pack(rd, vmpl, bytes(28), ctypes.addressof(certs), certs_len), _EXT_REQ.size)
            resp = ctypes.create_string_buffer(_RESP_LEN)
            guest_req = bytearray(_GUEST_REQ.pack(1, ctypes.addressof(req), ctypes.addressof(resp), 0))
            try:
                do_ioctl(fd, SNP_GET_EXT_REPORT, guest_req)
            except OSError as exc:
                exitinfo2 = _GUEST_REQ.unpack(bytes(guest_req))[3]
                vmm_error = exitinfo2 >> 32
                if vmm_error == _VMM_ERR_INVALID_LEN:
                    # The host wants a bigger certificate buffer; it wrote the size back.
                    need = _EXT_REQ.unpack(req.raw)[4]
                    need = (need + _PAGE - 1) // _PAGE * _PAGE
                    if 0 < need <= _MAX_CERTS and need > certs_len:
                        certs_len = need
                        continue
                raise CollectorError(
                    f"SNP_GET_EXT_REPORT failed: {exc.strerror or exc} (fw_error=0x{exitinfo2 & 0xFFFFFFFF:x}, "
                    f"vmm_error=0x{vmm_error:x})", reason="attest.collect.sev_guest") from exc
            raw = resp.raw
            status, size = struct.unpack_from("<II", raw, 0)
            if status != 0:
                raise CollectorError(f"SNP firmware returned status 0x{status:x}", reason="attest.collect.sev_guest")
            if size != _SNP_REPORT_LEN or 32 + size > _RESP_LEN:
                raise CollectorError(f"unexpected SNP report size {size}", reason="attest.collect.sev_guest")
            report = raw[32:32 + size]
            cert_table = _trim_cert_table(certs.raw)
            return Evidence(platform=Platform.SNP, report=report, certs=cert_table)
        raise CollectorError("SNP_GET_EXT_REPORT: certificate buffer size negotiation failed",
                             reason="attest.collect.sev_guest")
    finally:
        os.close(fd)


def _trim_cert_table(buf: bytes) -> bytes:
    """The GHCB certificate table: 24-byte entries {guid[16], offset u32, length u32}, ended by
    an all-zero entry; certificates follow.  Keep the table and the certificates only."""
    end = 0
    off = 0
    while off + 24 <= len(buf):
        guid = buf[off:off + 16]
        c_off, c_len = struct.unpack_from("<II", buf, off + 16)
        off += 24
        if guid == bytes(16) and c_off == 0 and c_len == 0:
            end = max(end, off)
            break
        if c_off + c_len > len(buf):
            break
        end = max(end, off, c_off + c_len)
    return buf[:end] if end else b""


# ---------------------------------------------------------------------------------------------
# NVIDIA GPU via NVML


def _import_pynvml() -> ModuleType | None:
    import importlib

    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def _ctypes_bytes(arr: Any, size: int) -> bytes:
    size = int(size)
    if size < 0 or size > _MAX_BLOB:
        raise CollectorError("NVML returned an implausible size", reason="attest.collect.gpu")
    return bytes(bytearray(arr[:size]))


def collect_nvml(report_data: bytes, *, nvml: Any = None) -> list[Evidence]:
    """One Evidence per GPU, each with the SPDM report for ``gpu_nonce(report_data)`` and the
    device certificate chain.  Raises ``attest.collect.gpu`` when NVML is unusable."""
    rd = _check_report_data(report_data)
    nv = nvml if nvml is not None else _import_pynvml()
    if nv is None:
        raise CollectorError("nvidia-ml-py (pynvml) is not installed", reason="attest.collect.gpu")
    nonce = gpu_nonce(rd)
    try:
        nv.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses generated at runtime
        raise CollectorError(f"NVML init failed: {exc}", reason="attest.collect.gpu") from exc
    try:
        out = []
        for i in range(int(nv.nvmlDeviceGetCount())):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            rep = nv.nvmlDeviceGetConfComputeGpuAttestationReport(h, nonce)
            cert = nv.nvmlDeviceGetConfComputeGpuCertificate(h)
            report = _ctypes_bytes(rep.attestationReport, rep.attestationReportSize)
            chain = _ctypes_bytes(cert.attestationCertChain, cert.attestationCertChainSize)
            if not report or not chain:
                raise CollectorError(f"GPU {i} returned an empty report or certificate chain", reason="attest.collect.gpu")
            out.append(Evidence(platform=Platform.NVGPU, report=report, certs=chain))
        return out
    except CollectorError:
        raise
    except Exception as exc:
        raise CollectorError(f"NVML attestation failed: {exc}", reason="attest.collect.gpu") from exc
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: S110 - shutdown failure changes nothing we return
            pass


def _nvml_gpu_count(nv: Any) -> tuple[int, str]:
    try:
        nv.nvmlInit()
    except Exception as exc:
        return 0, f"NVML present but not usable ({exc})"
    try:
        n = int(nv.nvmlDeviceGetCount())
        cc = ""
        try:
            st = nv.nvmlSystemGetConfComputeState()
            cc = f", CC feature {'on' if getattr(st, 'ccFeature', 0) else 'off'}"
        except Exception:  # noqa: S110 - older drivers: the state query is optional
            pass
        return n, f"{n} NVIDIA GPU(s) via NVML{cc}"
    except Exception as exc:
        return 0, f"NVML query failed ({exc})"
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:  # noqa: S110
            pass


# ---------------------------------------------------------------------------------------------
# detection and the front door


@dataclass(frozen=True)
class Detection:
    configfs_tsm: bool
    configfs_provider: str | None
    sev_guest_device: bool
    tdx_guest_device: bool
    nvml: bool
    gpu_count: int
    notes: tuple[str, ...] = field(default=())

    @property
    def cpu_platform(self) -> Platform | None:
        if self.configfs_provider in _PROVIDERS:
            return _PROVIDERS[self.configfs_provider]
        if self.sev_guest_device:
            return Platform.SNP
        return None

    def describe(self) -> str:
        lines = []
        if self.configfs_tsm:
            lines.append(f"configfs-tsm: present, provider {self.configfs_provider or 'unknown'}")
        else:
            lines.append("configfs-tsm: not present")
        lines.append(f"/dev/sev-guest: {'present' if self.sev_guest_device else 'not present'}")
        lines.append(f"/dev/tdx_guest: {'present' if self.tdx_guest_device else 'not present'}")
        lines.append(f"NVML: {'importable' if self.nvml else 'not installed'}; GPUs: {self.gpu_count}")
        plat = self.cpu_platform
        lines.append(f"=> CPU TEE: {plat.value if plat else 'none found (this is not a confidential VM, or the kernel lacks the guest driver)'}")
        lines.extend(self.notes)
        return "\n".join(lines)


def detect(
    *,
    configfs_root: Path = CONFIGFS_TSM_ROOT,
    sev_device: Path = SEV_GUEST_DEVICE,
    tdx_device: Path = TDX_GUEST_DEVICE,
    fs: FsOps | None = None,
    nvml: Any = None,
) -> Detection:
    fs = fs or RealFs()
    notes: list[str] = []
    has_cfs = fs.exists(configfs_root)
    provider = probe_configfs_provider(configfs_root, fs) if has_cfs else None
    nv = nvml if nvml is not None else _import_pynvml()
    gpus, note = (_nvml_gpu_count(nv) if nv is not None else (0, ""))
    if note:
        notes.append(note)
    if fs.exists(tdx_device) and provider != "tdx_guest":
        notes.append("/dev/tdx_guest exists but TDX quotes need configfs-tsm (kernel >= 6.7) here")
    return Detection(configfs_tsm=has_cfs, configfs_provider=provider, sev_guest_device=fs.exists(sev_device),
                     tdx_guest_device=fs.exists(tdx_device), nvml=nv is not None, gpu_count=gpus, notes=tuple(notes))


def collect(
    report_data: bytes,
    *,
    attester: Attester = "auto",
    gpus: GpuMode = "auto",
    configfs_root: Path = CONFIGFS_TSM_ROOT,
    sev_device: Path = SEV_GUEST_DEVICE,
    mock: Any = None,
    mock_measurement: bytes = bytes(48),
    fs: FsOps | None = None,
    nvml: Any = None,
    ioctl: IoctlFn | None = None,
    sev_opener: Callable[[Path], int] | None = None,
) -> list[Evidence]:
    """Collect the CPU TEE evidence (first) and GPU evidence for ``report_data``.

    ``attester``: ``auto`` uses configfs-tsm, then ``/dev/sev-guest``; it never uses the mock.
    ``mock`` requires an :class:`UnsafeMockPlatform` in ``mock``.  ``gpus``: ``auto`` adds every
    GPU NVML reports (none if NVML is missing), ``required`` fails without one, ``none`` skips.
    """
    rd = _check_report_data(report_data)
    if attester not in ("auto", "snp", "tdx", "mock"):
        raise CollectorError(f"unknown attester {attester!r}", reason="attest.collect.attester")
    if gpus not in ("auto", "none", "required"):
        raise CollectorError(f"unknown GPU mode {gpus!r}", reason="attest.collect.gpu")
    fs = fs or RealFs()
    evidence: list[Evidence] = []
    if attester == "mock":
        from ._mock import UnsafeMockPlatform

        if not isinstance(mock, UnsafeMockPlatform):
            raise CollectorError("attester 'mock' needs an UnsafeMockPlatform key (development only)",
                                 reason="attest.collect.mock_key")
        evidence.append(mock.report(rd, measurement=mock_measurement))
    else:
        expect = {"snp": Platform.SNP, "tdx": Platform.TDX}.get(attester)
        if fs.exists(configfs_root):
            evidence.append(collect_configfs(rd, root=configfs_root, fs=fs, expect=expect))
        elif attester in ("auto", "snp") and fs.exists(sev_device):
            evidence.append(collect_sev_guest(rd, device=sev_device, ioctl=ioctl, opener=sev_opener))
        else:
            want = "a TEE" if attester == "auto" else f"an {attester.upper()} TEE"
            raise CollectorError(
                f"no TEE found: looked for {want} via {configfs_root} (configfs-tsm) and {sev_device}; "
                "this does not look like a confidential VM.  (The software mock is never used "
                "automatically; name attester='mock' for development.)",
                reason="attest.collect.no_tee")
    if gpus != "none":
        nv = nvml if nvml is not None else _import_pynvml()
        if nv is None:
            if gpus == "required":
                raise CollectorError("GPU evidence required but nvidia-ml-py (pynvml) is not installed",
                                     reason="attest.collect.no_gpu")
        else:
            try:
                gpu_ev = collect_nvml(rd, nvml=nv)
            except CollectorError:
                if gpus == "required":
                    raise
                log.warning("NVML is installed but GPU evidence could not be collected; continuing without GPUs")
                gpu_ev = []
            if gpus == "required" and not gpu_ev:
                raise CollectorError("GPU evidence required but NVML reports no GPU", reason="attest.collect.no_gpu")
            evidence.extend(gpu_ev)
    return evidence
