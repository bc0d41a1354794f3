"""Shared test configuration.

Tests marked ``gpu`` run only when torch sees a CUDA device; everything else runs everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["_openbao"]

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
