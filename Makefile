# Two commands matter:  `make demo`  and  `make test`.  Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first: the CPU wheel.  A torch requirement that the installed torch does not satisfy
# makes pip download a multi-GB CUDA build, so it is installed before the project.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.weightseal-installed

.PHONY: all venv demo test test-fast lint typecheck fuzz bench bench-kms gpu-check proto clean

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev,bench,hf]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/weightseal demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check attest kms loader proto tests weightseal_cli.py weightseal_demo.py

typecheck: $(STAMP)
	@rm -rf .typecheck && mkdir -p .typecheck/weightseal && for p in attest kms loader proto; do ln -s ../../$$p .typecheck/weightseal/$$p; done
	cd .typecheck && ../$(VENV)/bin/mypy --config-file ../pyproject.toml -p weightseal.attest -p weightseal.kms -p weightseal.proto -p weightseal.loader

# The CUDA half of the loader, on a machine with a GPU and a CUDA build of torch: the gpu-marked
# tests (skipped everywhere else) and the GPU benchmark.  Uses PY as given, so a torch already
# installed there can be used:  make gpu-check PY=python3
gpu-check:
	$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: this torch sees no CUDA device')"
	$(PY) -m pytest -q -m gpu -rs
	$(PY) tests/benchmarks/bench_load.py --device cuda --size-gib 2 --repeats 5

proto: $(STAMP)
	$(PY) -m weightseal.proto.generate

bench: $(STAMP)
	$(PY) tests/benchmarks/bench_load.py

bench-kms: $(STAMP)
	$(PY) tests/benchmarks/bench_kms.py

clean:
	rm -rf $(VENV) .typecheck .pytest_cache .mypy_cache .ruff_cache build *.egg-info
