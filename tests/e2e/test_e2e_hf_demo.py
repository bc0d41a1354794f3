"""transformers round trip on the real all-MiniLM-L6-v2, the CLI (seal/load --kms), and the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from e2e_support import MEAS, OTHER_MEAS, Service, make_checkpoint, minilm_dir, mock_policy
from weightseal.loader import IntegrityError
from weightseal.loader._hf import HfIntegrationError, from_sealed_pretrained

import weightseal_cli
import weightseal_demo

pytestmark = pytest.mark.integration

SENTS = ["The cat sits on the mat.", "A feline rests on a rug.", "Quarterly revenue grew by ten percent."]


def _seal_minilm(service: Service, tmp_path: Path, model_id: str = "minilm") -> Path:
    out = tmp_path / "minilm.sealed"
    with service.admin() as a:
        a.register(model_id, mock_policy())
        weightseal_cli.seal_with_kms(minilm_dir(), out, model_id=model_id, admin=a)
    return out


def test_transformers_roundtrip_minilm(service: Service, tmp_path: Path, tee: Any) -> None:
    import transformers

    sealed = _seal_minilm(service, tmp_path)
    assert not list(sealed.glob("*.safetensors"))  # no plaintext weights in the sealed directory
    model, tok = from_sealed_pretrained(sealed, kms=service.target(), attester="mock", mock_key=tee,
                                        mock_measurement=MEAS, return_tokenizer=True)
    assert type(model).__name__ == "BertModel" and not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())
    ref = transformers.AutoModel.from_pretrained(minilm_dir(), local_files_only=True).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    enc = tok(SENTS, padding=True, return_tensors="pt")
    ref_enc = ref_tok(SENTS, padding=True, return_tensors="pt")
    assert torch.equal(enc["input_ids"], ref_enc["input_ids"])
    with torch.no_grad():
        out = model(**enc).last_hidden_state
        exp = ref(**ref_enc).last_hidden_state
    assert out.shape == (3, enc["input_ids"].shape[1], 384)
    assert torch.equal(out, exp)
    ref_sd = ref.state_dict()
    for n, p in model.state_dict().items():
        assert torch.equal(p, ref_sd[n]), n


def test_transformers_tampered_config_refused(service: Service, tmp_path: Path, tee: Any) -> None:
    sealed = _seal_minilm(service, tmp_path)
    cfg = sealed / "config.json"
    cfg.write_text(cfg.read_text().replace('"num_hidden_layers": 6', '"num_hidden_layers": 5'))
    with pytest.raises(IntegrityError):
        from_sealed_pretrained(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS)


def test_transformers_wrong_model_class_refused(service: Service, tmp_path: Path, tee: Any) -> None:
    import transformers

    sealed = _seal_minilm(service, tmp_path)
    with pytest.raises(HfIntegrationError) as ei:
        from_sealed_pretrained(sealed, kms=service.target(), attester="mock", mock_key=tee, mock_measurement=MEAS,
                               model_class=transformers.AutoModelForMaskedLM)
    assert ei.value.reason == "loader.hf.mismatch"


# -- CLI ---------------------------------------------------------------------------------------------

def test_cli_seal_kms_and_load_kms(service: Service, tmp_path: Path, tee: Any, capsys: Any) -> None:
    src = tmp_path / "src"
    make_checkpoint(src)
    with service.admin() as a:
        a.register("cli-model", mock_policy())
    cert, key = service.pki.owner
    out = tmp_path / "cli.sealed"
    rc = weightseal_cli.main(["seal", str(src), str(out), "--model-id", "cli-model", "--kms",
                              service.server.admin_address, "--ca", str(service.pki.ca), "--cert", str(cert),
                              "--key", str(key), "--quiet"])
    assert rc == 0
    assert "version 1 (assigned by the key service" in capsys.readouterr().out
    mk = tmp_path / "mock.key"
    tee.save(mk)
    base = ["load", str(out), "--kms", service.server.address, "--service-key", service.public_key.hex(),
            "--ca", str(service.pki.ca), "--attester", "mock", "--mock-key", str(mk), "--device", "cpu"]
    rc = weightseal_cli.main([*base, "--mock-measurement", MEAS.hex()])
    o = capsys.readouterr()
    assert rc == 0, o.err
    assert "loaded 4 tensors" in o.out and "GB/s" in o.out and "key released for cli-model v1" in o.out
    # the pinned key may come from a file
    pk = tmp_path / "service.pub"
    pk.write_text(service.public_key.hex() + "\n")
    base2 = [x if x != service.public_key.hex() else str(pk) for x in base]
    assert weightseal_cli.main([*base2, "--mock-measurement", MEAS.hex(), "--no-progress"]) == 0
    capsys.readouterr()
    # denied: exit status 1, the reason and a hint on stderr
    rc = weightseal_cli.main([*base, "--mock-measurement", OTHER_MEAS.hex()])
    err = capsys.readouterr().err
    assert rc == 1 and "policy.measurement" in err and "hint:" in err
    # no key source / both key sources
    assert weightseal_cli.main(["load", str(out)]) == 1
    assert "no key source" in capsys.readouterr().err
    assert weightseal_cli.main([*base, "--key-file", str(mk)]) == 1
    assert weightseal_cli.main(["seal", str(src), str(tmp_path / "x"), "--model-id", "cli-model"]) == 1
    assert "no key source" in capsys.readouterr().err


# -- demo --------------------------------------------------------------------------------------------

def test_demo_runs_and_passes(capsys: Any) -> None:
    t0 = time.monotonic()
    rc = weightseal_cli.main(["demo"])
    dt = time.monotonic() - t0
    out = capsys.readouterr().out
    assert rc == 0, out
    assert dt < 120
    assert "10/10 checks passed -> OK" in out
    assert "denied: policy.measurement" in out and "FAIL" not in out.replace("FAILED", "")
    assert "bit-identical" in out


@pytest.mark.parametrize("hook", [{"expected_denial_reason": "policy.tcb"}, {"perturb_sealed_output": 1e-6}])
def test_demo_detects_a_failed_check(hook: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(weightseal_demo, "_TEST_HOOKS", dict(hook))
    rc = weightseal_cli.main(["demo"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "-> FAILED" in out and "[FAIL]" in out


def test_demo_subprocess_workdir_and_cleanup(tmp_path: Path) -> None:
    wd = tmp_path / "demo"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    code = "import sys, weightseal_cli; sys.exit(weightseal_cli.main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "demo", "--workdir", str(wd)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)  # noqa: S603
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (wd / "kms" / "audit.jsonl").is_file() and (wd / "all-MiniLM-L6-v2.sealed" / "weightseal.manifest").is_file()
    # the OpenBao server it started is gone: its port in the transcript no longer answers
    import re
    import socket

    m = re.search(r"OpenBao http://127\.0\.0\.1:(\d+)", p.stdout)
    assert m is not None
    with socket.socket() as s:
        s.settimeout(1.0)
        assert s.connect_ex(("127.0.0.1", int(m.group(1)))) != 0
