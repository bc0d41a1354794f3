#!/usr/bin/env bash
# The CUDA half of the loader (gpu-marked tests + the GPU load benchmark) on a GPU machine that
# has Python 3.12 with a CUDA build of torch, numpy, safetensors, pytest and hypothesis, but no
# network and none of weightseal's other dependencies (an air-gapped box, or a lent device VM).
#
#   here  (network to PyPI):   tests/benchmarks/gpu_check_offline.sh prepare
#                              -> .whl/ (~35 MB, git-ignored): weightseal's own wheel, the wheels
#                                 the GPU box lacks (cp312, manylinux x86_64), libsodium for
#                                 tensorizer's encryption
#   there (copy the checkout and .whl/):  tests/benchmarks/gpu_check_offline.sh run [OUTDIR]
#                              -> OUTDIR/gpu-tests.txt, bench-cuda.txt, bench-cuda.json
#
# "run" installs the wheels into a throw-away --target folder put first on PYTHONPATH, so the
# machine's own CUDA torch is the one tested.  PY (prepare) and PYTHON (run) override the
# interpreters; PYVER the target Python version of the downloaded wheels; SIZE_GIB and REPEATS
# (run) the benchmark's size and repeats.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

case "${1:-}" in
prepare)
  PY="${PY:-.venv/bin/python}"
  PYVER="${PYVER:-3.12}"
  rm -rf .whl && mkdir -p .whl
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl .
  "$PY" -m pip download -q --no-deps -d .whl --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 \
    "cryptography>=46" cffi pycparser "pynacl>=1.5" "hvac>=2.1" "grpcio>=1.85.1" \
    "grpcio-health-checking>=1.85.1" "grpcio-reflection>=1.85.1" "protobuf>=5.27" \
    "prometheus-client>=0.20" "tensorizer>=2.9" boto3 botocore jmespath s3transfer redis hiredis \
    libnacl pytest-timeout
  (cd .whl && apt-get download -q libsodium23 >/dev/null)
  ls .whl
  du -sh .whl
  ;;
run)
  OUT="${2:-${OUT:-$PWD/gpu-check-out}}"
  mkdir -p "$OUT"
  PYTHON="${PYTHON:-python3}"
  # --target + PYTHONPATH rather than a venv: the GPU box's python3 is often itself a venv
  # (a venv made from it with --system-site-packages would not see its torch).
  site="$(mktemp -d)/site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  sodium="$(mktemp -d)"
  for d in .whl/*.deb; do dpkg -x "$d" "$sodium"; done
  export LD_LIBRARY_PATH="$sodium/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  (nvidia-smi -L || true) | tee "$OUT/gpu.txt"
  "$PYTHON" -c "import torch, weightseal.loader as w; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'weightseal', w.__file__)" \
    | tee -a "$OUT/gpu.txt"
  rc=0
  : >"$OUT/gpu-tests.txt"
  for t in tests/loader tests/attest_gpu; do  # one pytest per folder: each has its own conftest
    "$PYTHON" -m pytest -q -m gpu -rs -p no:cacheprovider "$t" 2>&1 | tee -a "$OUT/gpu-tests.txt" || rc=1
  done
  "$PYTHON" tests/benchmarks/bench_load.py --device cuda --size-gib "${SIZE_GIB:-2}" --repeats "${REPEATS:-5}" \
    --json "$OUT/bench-cuda.json" 2>&1 | tee "$OUT/bench-cuda.txt" || rc=1
  exit "$rc"
  ;;
*)
  echo "usage: $0 prepare | run [OUTDIR]" >&2
  exit 2
  ;;
esac
