"""Shared test configuration.

Tests marked ``gpu`` run only when torch sees a CUDA device; everything else runs everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["_openbao"]

try:  # CI (CI=true) runs the property tests derandomized, so a run is reproducible; locally
    # they keep exploring new examples (and a failure they find becomes an explicit @example).
    import os

    from hypothesis import settings as _hsettings

    _hsettings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        _hsettings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass

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
