"""The NVML collector against the real NVIDIA library and driver (marked ``gpu``).

Everywhere else the collector meets a fake NVML.  On a real GPU these pin down what the fakes
cannot: that our calls match the real nvidia-ml-py API, what detection reports, and that a GPU
that is NOT in confidential-computing mode yields no evidence but a typed ``attest.collect.gpu``
error (fail closed).  On a GPU in CC mode the same test instead requires evidence that parses
and carries our nonce.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from weightseal.attest import CollectorError, Platform, gpu_nonce
from weightseal.attest._collect import collect, collect_nvml, detect
from weightseal.attest._nvgpu import parse_gpu_report

pytestmark = pytest.mark.gpu
pynvml: Any = pytest.importorskip("pynvml")

RD = bytes(range(64))


def _cc_state() -> tuple[bool, bool]:
    """(CC feature on, GPUs ready for CC work), as the driver reports them."""
    pynvml.nvmlInit()
    try:
        st = pynvml.nvmlSystemGetConfComputeState()
        ready = False
        try:
            ready = bool(pynvml.nvmlSystemGetConfComputeGpusReadyState())
        except pynvml.NVMLError:
            pass
        return bool(st.ccFeature), ready
    finally:
        pynvml.nvmlShutdown()


def test_detect_sees_the_real_gpus() -> None:
    d = detect()
    assert d.nvml is True
    assert d.gpu_count == torch.cuda.device_count() >= 1
    cc_on, _ = _cc_state()
    note = next(n for n in d.notes if "via NVML" in n)
    assert note == f"{d.gpu_count} NVIDIA GPU(s) via NVML, CC feature {'on' if cc_on else 'off'}"


def test_collect_nvml_real() -> None:
    cc_on, ready = _cc_state()
    if not cc_on:
        with pytest.raises(CollectorError) as ei:
            collect_nvml(RD)
        assert ei.value.reason == "attest.collect.gpu"
        assert "NVML attestation failed" in str(ei.value)
        return
    ev = collect_nvml(RD)  # pragma: no cover - needs a GPU in CC mode
    assert ready and len(ev) == torch.cuda.device_count()
    for e in ev:
        assert e.platform is Platform.NVGPU and e.certs
        assert parse_gpu_report(e.report).nonce == gpu_nonce(RD)


def test_required_gpu_evidence_fails_closed_without_cc() -> None:
    """`collect(..., gpus="required")` with the mock CPU side (named explicitly, as development
    needs) still refuses when the real GPU cannot attest."""
    from weightseal.attest import UnsafeMockPlatform

    cc_on, _ = _cc_state()
    if cc_on:  # pragma: no cover - needs a GPU in CC mode
        pytest.skip("GPU in CC mode: test_collect_nvml_real covers the evidence")
    tee = UnsafeMockPlatform.from_seed(b"\x07" * 32)
    with pytest.raises(CollectorError) as ei:
        collect(RD, attester="mock", mock=tee, gpus="required")
    assert ei.value.reason == "attest.collect.gpu"
    ev = collect(RD, attester="mock", mock=tee, gpus="auto")  # optional GPUs: CPU evidence only
    assert [e.platform for e in ev] == [Platform.MOCK]
