"""``open_sealed(...).get_slice(name)[index]``: equal to safetensors' own ``get_slice`` on the
plaintext file, decrypts exactly the chunks that hold the selection, leaves no plaintext behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_checkpoint, same
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from weightseal.loader import (
    DataKey,
    IntegrityError,
    TensorNotFoundError,
    open_sealed,
    seal_checkpoint,
)
from weightseal.loader import _open as wopen

CHUNK = 4096


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {
        # 64 rows of 256 bytes: 4 chunks of 16 rows each (the tensor starts on a chunk boundary
        # only by accident; the tests compute the chunks from the header, never assume them)
        "w.i64": torch.randint(-2**40, 2**40, (64, 32), generator=g, dtype=torch.int64),
        "w.bf16": torch.randn(48, 40, 3, generator=g).to(torch.bfloat16),
        "w.fp8": torch.randn(90, 70, generator=g).to(torch.float8_e4m3fn),
        "w.bool": torch.rand(33, 129, generator=g) > 0.5,
        "w.f32": torch.randn(3000, generator=g),
        "scalar": torch.tensor(2.25, dtype=torch.float64),
        "empty": torch.zeros(0, 5, dtype=torch.int32),
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, torch.Tensor], DataKey]]:
    root = tmp_path_factory.mktemp("slice")
    tensors = _tensors()
    src = make_checkpoint(root, tensors, shards=1)
    out = root / "sealed"
    key = DataKey(bytes(range(100, 132)))
    seal_checkpoint(src, out, model_id="acme/slices", key=key, key_ref={"source": "test"}, chunk_size=CHUNK)
    yield src / "model.safetensors", out, tensors, key
    key.wipe()


@pytest.fixture
def calls() -> Iterator[list[tuple[str, int]]]:
    got: list[tuple[str, int]] = []
    wopen._DECRYPT_HOOK = lambda shard, i: got.append((shard, i))
    try:
        yield got
    finally:
        wopen._DECRYPT_HOOK = None


def _span_chunks(f: Any, name: str, index: Any) -> set[int]:
    """The chunks holding the elements ``index`` selects, computed from the header and the
    plain tensor's own view arithmetic (independent of the loader's)."""
    sh = f._model.where[name]
    info = sh.st.tensors[name]
    full = torch.empty(info.shape, dtype=sh.dtypes[name])
    v = full[index]
    if v.numel() == 0:
        return set()
    isz = full.element_size()
    first = v.storage_offset()
    last = first + sum((n - 1) * s for n, s in zip(v.shape, v.stride(), strict=True))
    return set(sh.chunks_for(info.begin + first * isz, info.begin + (last + 1) * isz))


def _dim_index(draw: st.DrawFn, n: int) -> Any:
    if n > 0 and draw(st.booleans()):
        return draw(st.integers(-n, n - 1))
    bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
    return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3])))


@st.composite
def _index(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    """Basic indexing: leading dims, optionally ``...`` and trailing dims."""
    lead = draw(st.integers(0, len(shape)))
    items: list[Any] = [_dim_index(draw, n) for n in shape[:lead]]
    if draw(st.booleans()):
        trail = draw(st.integers(0, len(shape) - lead))
        items.append(Ellipsis)
        items += [_dim_index(draw, n) for n in shape[len(shape) - trail:]]
    if len(items) == 1 and draw(st.booleans()):
        return items[0]  # a bare index, not a tuple
    return tuple(items)


NAMES = sorted(_tensors())


def _dense(t: torch.Tensor) -> torch.Tensor:
    """A copy with row-major strides (``contiguous()`` keeps odd strides of size-1 dims)."""
    return torch.empty(t.shape, dtype=t.dtype).copy_(t)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_slices_equal_safetensors_and_decrypt_only_their_chunks(model: Any, calls: list[tuple[str, int]],
                                                                 data: st.DataObject) -> None:
    plain, out, tensors, key = model
    name = data.draw(st.sampled_from(NAMES))
    index = data.draw(_index(tuple(tensors[name].shape)))
    with open_sealed(out, key) as f, safe_open(str(plain), "pt") as ref:
        sl, rsl = f.get_slice(name), ref.get_slice(name)
        assert sl.get_shape() == rsl.get_shape() == list(tensors[name].shape)
        assert sl.get_dtype() == rsl.get_dtype()
        expected_chunks = _span_chunks(f, name, index)
        calls.clear()
        got = sl[index]
        want = rsl[index]
        assert same(got, _dense(want)) and same(got, _dense(tensors[name][index]))
        assert got.is_contiguous()
        assert {i for _, i in calls} == expected_chunks
        assert len(calls) == len(expected_chunks)  # each once


def test_row_block_touches_only_its_chunks_and_is_the_buffer(model: Any, calls: list[tuple[str, int]]) -> None:
    _, out, tensors, key = model
    with open_sealed(out, key) as f:
        sh = f._model.where["w.i64"]
        info = sh.st.tensors["w.i64"]
        rows = f.get_slice("w.i64")[16:32]
        assert same(rows, tensors["w.i64"][16:32])
        want = set(sh.chunks_for(info.begin + 16 * 256, info.begin + 32 * 256))
        assert {i for _, i in calls} == want and len(want) <= 2 < sh.pre.n_chunks
        # a contiguous selection is returned in the buffer it was decrypted into: no copy
        assert rows.untyped_storage().nbytes() == 16 * 256
        calls.clear()
        one = f.get_slice("w.i64")[5]
        assert same(one, tensors["w.i64"][5]) and len(calls) == 1


def test_columns_span_first_to_last_row(model: Any, calls: list[tuple[str, int]]) -> None:
    _, out, tensors, key = model
    with open_sealed(out, key) as f:
        sh = f._model.where["w.i64"]
        info = sh.st.tensors["w.i64"]
        cols = f.get_slice("w.i64")[:, 8:16]
        assert same(cols, _dense(tensors["w.i64"][:, 8:16])) and cols.is_contiguous()
        lo, hi = info.begin + 8 * 8, info.begin + 63 * 256 + 16 * 8
        assert {i for _, i in calls} == set(sh.chunks_for(lo, hi))


def test_temporary_span_is_zeroed(model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, tensors, key = model
    bufs: list[np.ndarray] = []
    real = wopen._alloc_cpu

    def spy(n: int) -> tuple[np.ndarray, bool]:
        b, mapped = real(n)
        bufs.append(b)
        return b, mapped

    monkeypatch.setattr(wopen, "_alloc_cpu", spy)
    with open_sealed(out, key) as f:
        cols = f.get_slice("w.bf16")[:, 10:20, 1]
        assert same(cols, _dense(tensors["w.bf16"][:, 10:20, 1]))
        assert len(bufs) == 1 and bufs[0].size > cols.numel() * 2
        assert not bufs[0].any()  # the span held plaintext of other columns: gone
        rows = f.get_slice("w.bf16")[3:5]
        assert len(bufs) == 2 and bufs[1].any()  # returned as is, so not zeroed
        assert rows.data_ptr() == bufs[1].ctypes.data


def test_empty_and_scalar_selections(model: Any, calls: list[tuple[str, int]]) -> None:
    _, out, tensors, key = model
    with open_sealed(out, key) as f:
        e = f.get_slice("w.f32")[10:10]
        assert e.shape == (0,) and e.dtype == torch.float32 and calls == []
        assert f.get_slice("empty")[:, 2:4].shape == (0, 2) and calls == []
        for idx in ((), Ellipsis):
            s = f.get_slice("scalar")[idx]
            assert s.shape == () and s.item() == 2.25
        assert f.get_slice("w.f32")[-1].item() == tensors["w.f32"][-1].item()


@pytest.mark.parametrize(("index", "exc"), [
    ([1, 2], TypeError),                  # advanced indexing copies: refused
    (None, TypeError),
    (torch.tensor([1]), TypeError),
    (True, TypeError),
    (1.5, TypeError),
    (64, IndexError),
    (-65, IndexError),
    ((0, 0, 0), IndexError),              # too many indices
    (slice(None, None, -1), ValueError),  # negative steps are not basic indexing in torch
    (slice(None, None, 0), ValueError),
])
def test_bad_indices_are_refused(model: Any, calls: list[tuple[str, int]], index: Any, exc: type[Exception]) -> None:
    _, out, _, key = model
    with open_sealed(out, key) as f:
        with pytest.raises(exc):
            f.get_slice("w.i64")[index]
    assert calls == []


def test_unknown_name_and_closed_checkpoint(model: Any) -> None:
    _, out, _, key = model
    with open_sealed(out, key) as f:
        with pytest.raises(TensorNotFoundError) as ei:
            f.get_slice("nope")
        assert ei.value.reason == "loader.tensor.not_found"
        sl = f.get_slice("w.i64")
    with pytest.raises(IntegrityError):
        sl[0]
    with pytest.raises(IntegrityError):
        f.get_slice("w.i64")


def test_corruption_fails_only_the_slices_that_read_it(tmp_path: Path, data_key: DataKey) -> None:
    tensors = _tensors()
    src = make_checkpoint(tmp_path, tensors, shards=1)
    out = tmp_path / "sealed"
    seal_checkpoint(src, out, model_id="acme/slices", key=data_key, key_ref={"source": "test"}, chunk_size=CHUNK)
    with open_sealed(out, data_key) as f:
        sh = f._model.where["w.i64"]
        info = sh.st.tensors["w.i64"]
        bad = next(iter(sh.chunks_for(info.begin + 60 * 256, info.begin + 61 * 256)))
        path, doff = sh.path, sh.pre.data_offset
    with open(path, "r+b") as fh:  # flip one ciphertext bit in the chunk holding row 60
        fh.seek(doff + bad * CHUNK + 7)
        b = fh.read(1)
        fh.seek(doff + bad * CHUNK + 7)
        fh.write(bytes([b[0] ^ 0x10]))
    wiped: list[Any] = []
    wopen._WIPE_HOOK = lambda bufs: wiped.extend(bufs)
    try:
        with open_sealed(out, data_key) as f:
            assert same(f.get_slice("w.i64")[0:16], tensors["w.i64"][0:16])
            assert wiped == []
            with pytest.raises(IntegrityError) as ei:
                f.get_slice("w.i64")[50:64]
            assert str(ei.value) == str(IntegrityError())  # the one opaque error
            assert len(wiped) == 1 and not np.asarray(wiped[0]).any()
            with pytest.raises(IntegrityError):
                f.get_slice("w.i64")[:, 0]  # columns span every row
            with pytest.raises(IntegrityError):
                f.get_tensor("w.i64")
    finally:
        wopen._WIPE_HOOK = None


@pytest.mark.gpu
def test_slice_to_cuda(model: Any) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    _, out, tensors, key = model
    with open_sealed(out, key, device="cuda") as f:
        for name, idx in [("w.bf16", (slice(4, 9),)), ("w.fp8", (slice(None), slice(3, 30, 2))), ("scalar", ())]:
            got = f.get_slice(name)[idx]
            assert got.device.type == "cuda"
            assert same(got.cpu(), _dense(tensors[name][idx]))
