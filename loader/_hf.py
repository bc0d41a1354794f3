"""Hugging Face transformers integration: build a model straight from a sealed directory.

    from weightseal.loader import KmsTarget, from_sealed_pretrained
    model, tokenizer = from_sealed_pretrained("minilm.sealed", kms=KmsTarget(...), attester="auto",
                                              return_tokenizer=True)

1. Attested key release (:func:`release_key`): one key for everything below, wiped at the end.
2. The pass-through files (``config.json``, tokenizer files ...) are read into memory and checked
   against their keyed MACs in the authenticated manifest (:func:`verified_files`).  Only those
   verified bytes are used: they are written to a private temporary directory (mode 0700,
   removed afterwards) from which ``AutoConfig``/``AutoTokenizer`` read them.  These are not
   weights; the sealed directory already holds them in clear.
3. The model skeleton is built from the config with every PARAMETER on the ``meta`` device (no
   memory, no random init); buffers (e.g. BERT's ``position_ids``) are real, as the module's
   constructor made them.
4. The weights are decrypted straight into tensors on ``device`` (:func:`load_sealed`) and
   assigned into the skeleton (``load_state_dict(assign=True)``); tied weights are re-tied.
   A parameter still on ``meta`` afterwards (missing from the checkpoint) is an error.
No weight plaintext ever touches the disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ._errors import LoaderError
from ._keys import DataKey, LocalKey
from ._manifest import read_manifest
from ._release_client import KmsTarget, LoadReport, ReleaseInfo, release_key, verified_files

__all__ = ["from_sealed_pretrained", "HfIntegrationError", "params_on_meta"]


class HfIntegrationError(LoaderError):
    """The sealed checkpoint does not fit the model class built from its config
    (reason ``loader.hf.mismatch``) or has no ``config.json`` (``loader.hf.config``)."""

    default_reason = "loader.hf.mismatch"


@contextlib.contextmanager
def params_on_meta() -> Iterator[None]:
    """While active, every ``nn.Parameter`` registered on a module is moved to the ``meta``
    device right away (one parameter's allocation at a time); buffers stay where the module put
    them.  Patches ``torch.nn.Module.register_parameter`` process-wide for the duration."""
    orig = torch.nn.Module.register_parameter

    def register(self: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        orig(self, name, param)
        if param is not None and param.device.type != "meta":
            p = self._parameters[name]
            assert p is not None
            kwargs = dict(p.__dict__)
            kwargs["requires_grad"] = p.requires_grad
            self._parameters[name] = type(p)(p.to("meta"), **kwargs)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = orig  # type: ignore[method-assign]


@contextlib.contextmanager
def _key_for(model_dir: str | os.PathLike[str], kms: KmsTarget | None, key: DataKey | LocalKey | None,
             attester: str, mock_key: Any, mock_measurement: bytes) -> Iterator[tuple[Any, ReleaseInfo | None]]:
    if key is not None:
        yield key, None
        return
    assert kms is not None
    with release_key(model_dir, kms=kms, attester=attester, mock_key=mock_key,
                     mock_measurement=mock_measurement) as (k, info):
        yield k, info


@contextlib.contextmanager
def _private_dir(files: dict[str, bytes]) -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="weightseal-hf-"))
    try:
        os.chmod(d, 0o700)
        for name, data in files.items():
            (d / name).write_bytes(data)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def from_sealed_pretrained(model_dir: str | os.PathLike[str], *, kms: KmsTarget | None = None,
                           key: DataKey | LocalKey | None = None, attester: str = "auto",
                           model_class: Any = None, device: str | torch.device = "cpu", mock_key: Any = None,
                           mock_measurement: bytes = bytes(48), return_tokenizer: bool = False,
                           report: LoadReport | None = None, **config_kwargs: Any) -> Any:
    """A transformers model (``model_class``, default ``AutoModel``) built from a sealed
    directory, in eval mode on ``device``.  With ``return_tokenizer=True``: ``(model, tokenizer)``.

    The key comes from the key service (``kms=``, attested release: the production path) or,
    for the model owner's offline checks, from ``key=`` (a :class:`LocalKey` from
    ``weightseal keygen`` or a :class:`DataKey`; the caller keeps and wipes it).  Exactly one.
    ``config_kwargs`` go to ``AutoConfig.from_pretrained`` (e.g. ``attn_implementation``).
    Raises what :func:`load_model` raises, plus :class:`HfIntegrationError`."""
    import time

    import transformers

    if (kms is None) == (key is None):
        raise TypeError("from_sealed_pretrained needs exactly one of kms= or key=")
    if model_class is None:
        model_class = transformers.AutoModel
    t0 = time.perf_counter()
    with _key_for(model_dir, kms, key, attester, mock_key, mock_measurement) as (key, info):
        t1 = time.perf_counter()
        if info is not None:
            model_id, model_version = info.model_id, info.model_version
        else:  # a key in hand: the manifest names the model; load_sealed authenticates exactly these
            m = read_manifest(model_dir)
            model_id, model_version = m.model_id, m.model_version
        files = verified_files(model_dir, key)
        if "config.json" not in files:
            raise HfIntegrationError("sealed directory has no config.json", reason="loader.hf.config")
        from ._open import load_sealed

        with _private_dir(files) as tmp:
            config = transformers.AutoConfig.from_pretrained(tmp, local_files_only=True, **config_kwargs)
            tokenizer = (transformers.AutoTokenizer.from_pretrained(tmp, local_files_only=True)
                         if return_tokenizer else None)
        with params_on_meta():
            model = model_class.from_config(config) if hasattr(model_class, "from_config") else model_class(config)
        state = load_sealed(model_dir, key, device=device, expected_model_id=model_id,
                            expected_model_version=model_version)
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    try:
        _assign(model, state)
    except BaseException:
        for t in state.values():
            with contextlib.suppress(Exception):
                t.zero_()
        raise
    model.to(device)
    model.eval()
    if report is not None:
        report.model_id, report.model_version, report.release = model_id, model_version, info
        report.tensors, report.bytes = len(state), nbytes
        report.release_seconds, report.load_seconds = t1 - t0, time.perf_counter() - t1
    del state
    return (model, tokenizer) if return_tokenizer else model


def _assign(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = set(model.state_dict())
    # A checkpoint may carry a base-model prefix (e.g. "bert.") the class does not, or lack one it has.
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and not (set(state) & expected):
        if all(k.startswith(prefix + ".") for k in state):
            state = {k[len(prefix) + 1:]: v for k, v in state.items()}
        else:
            state = {f"{prefix}.{k}": v for k, v in state.items()}
    persistent_extra = [k for k in state if k not in expected]
    _, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tie = getattr(model, "tie_weights", None)
    if callable(tie):
        tie()
    still_meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    still_meta += [n for n, b in model.named_buffers() if b.device.type == "meta"]
    if still_meta:
        raise HfIntegrationError(f"{len(still_meta)} parameter(s) missing from the sealed checkpoint, e.g. "
                                 f"{still_meta[0]!r}", reason="loader.hf.mismatch")
    # Unexpected keys that are non-persistent buffers in the model (e.g. BERT position_ids saved by
    # old transformers versions) are harmless; anything else means the wrong model class.
    buffers = {n for n, _ in model.named_buffers()}
    bad = [k for k in unexpected if k not in buffers and k in persistent_extra]
    if bad:
        raise HfIntegrationError(f"{len(bad)} tensor(s) in the sealed checkpoint do not belong to "
                                 f"{type(model).__name__}, e.g. {bad[0]!r}", reason="loader.hf.mismatch")
