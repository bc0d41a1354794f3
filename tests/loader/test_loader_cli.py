"""CLI tests through the dispatcher: weightseal_cli.main([...])."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from conftest import make_checkpoint, sample_tensors

import weightseal_cli


def test_cli_full_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "owner.key"
    assert weightseal_cli.main(["keygen", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "OFFLINE/TEST" in capsys.readouterr().out
    src = make_checkpoint(tmp_path, sample_tensors(), shards=2)
    out = tmp_path / "sealed"
    assert weightseal_cli.main(["seal", str(src), str(out), "--model-id", "cli/m", "--model-version", "4",
                                "--key-file", str(key), "--conceal-header", "--chunk-size", "8192",
                                "--workers", "2", "--quiet"]) == 0
    assert "sealed 9 tensors in 2 shard(s)" in capsys.readouterr().out
    assert weightseal_cli.main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["manifest"]["model_id"] == "cli/m" and info["manifest"]["model_version"] == 4
    assert info["shards"][0]["chunk_size"] == 8192 and info["shards"][0]["concealed"] is True
    assert weightseal_cli.main(["inspect", str(out)]) == 0
    assert "UNAUTHENTICATED" in capsys.readouterr().out
    assert weightseal_cli.main(["verify", str(out), "--key-file", str(key)]) == 0
    assert "OK: cli/m v4: 2 shard(s), 9 tensors" in capsys.readouterr().out
    assert weightseal_cli.main(["load", str(out), "--key-file", str(key)]) == 0
    assert "loaded 9 tensors" in capsys.readouterr().out
    assert weightseal_cli.main(["load", str(out), "--key-file", str(key), "--names", "ids,scalar"]) == 0
    assert "loaded 2 tensors, 24008 bytes" in capsys.readouterr().out
    assert weightseal_cli.main(["unseal", str(out), str(tmp_path / "back"), "--key-file", str(key)]) == 0
    for f in src.iterdir():
        assert (tmp_path / "back" / f.name).read_bytes() == f.read_bytes()


def test_cli_errors_are_opaque(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "owner.key"
    other = tmp_path / "other.key"
    weightseal_cli.main(["keygen", str(key)])
    weightseal_cli.main(["keygen", str(other)])
    src = make_checkpoint(tmp_path, sample_tensors(), shards=1)
    out = tmp_path / "sealed"
    assert weightseal_cli.main(["seal", str(src), str(out), "--model-id", "m", "--key-file", str(key), "--quiet"]) == 0
    capsys.readouterr()
    assert weightseal_cli.main(["verify", str(out), "--key-file", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "weightseal: error: integrity: sealed checkpoint failed integrity verification"
    assert weightseal_cli.main(["load", str(out), "--key-file", str(tmp_path / "nope.key")]) == 1
    assert "loader.keyfile.unreadable" in capsys.readouterr().err
    assert weightseal_cli.main(["keygen", str(key)]) == 1
    assert "loader.keyfile.exists" in capsys.readouterr().err


def test_seal_command_reusable_with_datakey(tmp_path: Path) -> None:
    """Another key source (the key service) can reuse the handler with its own key and key_ref."""
    import argparse

    from weightseal.loader import DataKey, read_manifest
    from weightseal.loader.cli import load_command, seal_command

    src = make_checkpoint(tmp_path, sample_tensors(), shards=1)
    out = tmp_path / "sealed"
    args = argparse.Namespace(src=str(src), out=str(out), model_id="kms/m", model_version=1, conceal_header=False,
                              chunk_size=4 << 20, workers=None, quiet=True)
    k = DataKey(bytes(range(32)))
    assert seal_command(args, k, {"source": "vault", "wrapped": "vault:v1:abc"}) == 0
    assert read_manifest(out).key_ref == {"source": "vault", "wrapped": "vault:v1:abc"}
    assert load_command(argparse.Namespace(model_dir=str(out), device="cpu", names=None), k) == 0
