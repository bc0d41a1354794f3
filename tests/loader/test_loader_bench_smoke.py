"""Smoke test so the benchmark cannot rot (tiny size; no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


def test_bench_load_quick(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--json", str(out), "--dir", str(tmp_path)],  # noqa: S603
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sealed/safetensors" in r.stdout and "sealing:" in r.stdout
    res = json.loads(out.read_text())
    for state in ("warm", "cold"):
        for case in ("safetensors", "sealed", "tensorizer", "floor"):
            assert res["cases"][f"{state}/{case}"]["median"] > 0
    assert res["seal_gbps"] > 0


@pytest.mark.gpu
def test_bench_load_quick_cuda(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--device", "cuda", "--json", str(out), "--dir", str(tmp_path)],  # noqa: S603
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["device"].startswith("cuda")
    for state in ("warm", "cold"):
        for case in ("safetensors", "sealed", "tensorizer"):
            c = res["cases"][f"{state}/{case}"]
            assert c["median"] > 0 and c["peak_gpu"] >= res["size_bytes"]
        assert res["cases"][f"{state}/ratio/sealed/safetensors"] > 0


def test_bench_load_cuda_without_a_gpu_says_so(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: test_bench_load_quick_cuda covers it")
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--device", "cuda", "--dir", str(tmp_path)],  # noqa: S603
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no usable CUDA device" in r.stderr
