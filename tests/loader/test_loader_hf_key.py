"""from_sealed_pretrained with the owner's local key (no key service): the transformers model built
from a sealed directory computes exactly what the plaintext model computes, on CPU and (marked
``gpu``) on CUDA, where the skeleton's meta parameters are replaced by CUDA tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from weightseal.loader import IntegrityError, LoadReport, generate_local_key_file, seal_checkpoint
from weightseal.loader._hf import from_sealed_pretrained

transformers = pytest.importorskip("transformers")


@pytest.fixture
def tiny_bert(tmp_path: Path) -> tuple[Path, Path, Any]:
    """A small randomly initialised BERT (fixed seed) saved the Hugging Face way, and sealed."""
    cfg = transformers.BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=96, max_position_embeddings=64)
    torch.manual_seed(1234)
    ref = transformers.BertModel(cfg).eval()
    src = tmp_path / "src"
    ref.save_pretrained(src, safe_serialization=True)
    assert (src / "model.safetensors").is_file()
    key = generate_local_key_file(tmp_path / "owner.key")
    out = tmp_path / "bert.sealed"
    seal_checkpoint(src, out, model_id="acme/tiny-bert", model_version=2, key=key)
    return out, tmp_path / "owner.key", ref


def _ids() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 300, (3, 11), generator=g)


def _check(tiny: tuple[Path, Path, Any], device: str) -> None:
    from weightseal.loader import LocalKey

    out, key_file, ref = tiny
    key = LocalKey.load(key_file)
    rep = LoadReport()
    model = from_sealed_pretrained(out, key=key, device=device, report=rep)
    assert type(model).__name__ == "BertModel" and not model.training
    params = dict(model.named_parameters())
    assert params and all(p.device.type == torch.device(device).type for p in params.values())
    assert all(b.device.type == torch.device(device).type for b in model.buffers())
    ref_sd = ref.state_dict()
    for n, p in params.items():
        assert torch.equal(p.detach().cpu(), ref_sd[n]), n
    assert (rep.model_id, rep.model_version, rep.release) == ("acme/tiny-bert", 2, None)
    with safe_open(str(out.parent / "src" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert rep.tensors == len(names)
        assert rep.bytes == sum(f.get_tensor(n).nbytes for n in names)
    ids = _ids()
    with torch.no_grad():
        got = model(input_ids=ids.to(device)).last_hidden_state.cpu()
        exp = ref.to(device)(input_ids=ids.to(device)).last_hidden_state.cpu()
    if device == "cpu":
        assert torch.equal(got, exp)
    else:  # same weights (checked bit for bit above); GPU kernels need not be bitwise reproducible
        torch.testing.assert_close(got, exp, rtol=1e-5, atol=1e-5)


def test_hf_local_key_cpu(tiny_bert: tuple[Path, Path, Any]) -> None:
    _check(tiny_bert, "cpu")


@pytest.mark.gpu
def test_hf_local_key_cuda(tiny_bert: tuple[Path, Path, Any]) -> None:
    _check(tiny_bert, "cuda:0")


def test_hf_needs_exactly_one_key_source(tiny_bert: tuple[Path, Path, Any]) -> None:
    out, _, _ = tiny_bert
    with pytest.raises(TypeError, match="exactly one of kms= or key="):
        from_sealed_pretrained(out)


def test_hf_local_key_wrong_key(tiny_bert: tuple[Path, Path, Any], tmp_path: Path) -> None:
    out, _, _ = tiny_bert
    other = generate_local_key_file(tmp_path / "other.key")
    with pytest.raises(IntegrityError):
        from_sealed_pretrained(out, key=other)


def test_hf_local_key_tampered_weights(tiny_bert: tuple[Path, Path, Any]) -> None:
    from weightseal.loader import LocalKey

    out, key_file, _ = tiny_bert
    shard = out / "model.safetensors.sealed"
    b = bytearray(shard.read_bytes())
    b[len(b) // 2] ^= 4
    shard.write_bytes(bytes(b))
    with pytest.raises(IntegrityError):
        from_sealed_pretrained(out, key=LocalKey.load(key_file))
