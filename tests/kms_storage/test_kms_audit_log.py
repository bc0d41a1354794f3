"""Tamper-evident audit log: writing, resuming, fail-closed behaviour and offline verification."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import nacl.signing
import pytest
from weightseal.kms._audit import (
    GENESIS_PREV,
    AuditLog,
    canonical_json,
    iter_records,
    load_public_key,
    record_hash,
    verify_log,
)
from weightseal.kms._errors import AuditError

SEED = bytes(range(32))


@pytest.fixture()
def sk() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(SEED)


@pytest.fixture()
def pk(sk) -> bytes:
    return bytes(sk.verify_key)


def _event(i: int, kind: str = "grant") -> dict:
    return {"kind": kind, "caller": f"tee-{i % 3}", "caller_addr": f"10.0.0.{i}:5000",
            "model": "m-a" if i % 2 else "m-b", "key_version": 1,
            "policy_digest": "sha256:" + "11" * 32, "evidence_digest": "sha256:" + "22" * 32,
            "claims": {"measurement": "ab" * 48, "chip_id": "cd" * 8, "tcb": {"snp": 22},
                       "signing_key": "vcek"},
            "decision": "grant" if kind == "grant" else "deny",
            "reason": "ok" if kind == "grant" else "policy.measurement"}


def _write_log(path: Path, sk, n: int = 10, every: int = 4) -> list[str]:
    with AuditLog(path, sk, replica="kms-0", checkpoint_every=every) as log:
        for i in range(n):
            log.append(_event(i, "grant" if i % 3 else "deny"))
    return path.read_text().splitlines()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _put(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _codes(res) -> list[tuple[int, str]]:
    return [(p.line, p.code) for p in res.problems]


def test_append_and_verify_ok(tmp_path, sk, pk):
    p = tmp_path / "audit.log"
    lines = _write_log(p, sk, n=10, every=4)
    # 10 events + checkpoints after 4 and 8 events + one on close
    assert len(lines) == 13
    recs = [json.loads(x) for x in lines]
    assert [r["seq"] for r in recs] == list(range(1, 14))
    assert recs[0]["prev"] == GENESIS_PREV
    assert all(recs[i]["prev"] == recs[i - 1]["hash"] for i in range(1, 13))
    assert all(record_hash(r) == r["hash"] for r in recs)
    assert [r["kind"] for r in recs].count("checkpoint") == 3
    assert recs[4]["kind"] == "checkpoint" and recs[4]["count"] == 4
    assert recs[-1]["kind"] == "checkpoint"
    assert recs[0]["time"].endswith("Z") and recs[0]["replica"] == "kms-0"
    # lines are canonical JSON
    assert all(canonical_json(r).decode() == x for r, x in zip(recs, lines, strict=True))
    res = verify_log(p, pk)
    assert res.ok and res.problems == []
    assert (res.records, res.checkpoints, res.last_seq, res.last_signed_seq) == (13, 3, 13, 13)


def test_append_returns_record(tmp_path, sk):
    with AuditLog(tmp_path / "a.log", sk, replica="r") as log:
        rec = log.append(_event(1))
        assert rec.seq == 1 and rec.kind == "grant" and rec.prev == GENESIS_PREV
        assert rec.hash == record_hash(rec.data) and rec.get("model") == "m-a"
        assert log.last_seq == 1 and log.last_hash == rec.hash


def test_edit_detected(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    r = json.loads(lines[2])
    r["decision"] = "grant" if r["decision"] == "deny" else "deny"
    lines[2] = json.dumps(r, sort_keys=True, separators=(",", ":"))
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    assert _codes(res) == [(3, "audit.hash")]
    assert res.problems[0].seq == 3


def test_edit_with_recomputed_hash_detected_by_chain(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    r = json.loads(lines[1])
    r["caller"] = "attacker"
    r["hash"] = record_hash(r)
    lines[1] = canonical_json(r).decode()
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    assert _codes(res) == [(3, "audit.chain")]


def test_full_rewrite_detected_by_checkpoint_signature(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk, n=8, every=4)
    recs = [json.loads(x) for x in lines]
    recs[1]["caller"] = "attacker"
    prev = GENESIS_PREV
    for r in recs:  # attacker recomputes the entire chain, but cannot sign
        r["prev"] = prev
        r["hash"] = record_hash(r)
        prev = r["hash"]
    _put(p, [canonical_json(r).decode() for r in recs])
    res = verify_log(p, pk)
    assert not res.ok
    assert {(x.line, x.code) for x in res.errors} == {(5, "audit.signature"),
                                                       (10, "audit.signature")}
    assert res.errors[0].line == 5  # the first checkpoint


def test_non_canonical_line_detected(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    r = json.loads(lines[1])
    # same content, other bytes: a duplicate key that some JSON readers resolve to "deny"
    lines[1] = lines[1][:-1] + ',"decision":"deny","decision":' + json.dumps(r["decision"]) + "}"
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    assert _codes(res) == [(2, "audit.hash")]
    assert "canonical" in res.problems[0].message


def test_dropped_line_detected(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    del lines[2]
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    assert _codes(res)[:2] == [(3, "audit.chain"), (3, "audit.seq")]
    assert res.problems[1].seq == 4


def test_swapped_lines_detected(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    lines[1], lines[2] = lines[2], lines[1]
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    assert (2, "audit.chain") in _codes(res) and (2, "audit.seq") in _codes(res)
    assert (3, "audit.chain") in _codes(res)
    assert min(p.line for p in res.problems) == 2


def test_inserted_forged_line_detected(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    prev = json.loads(lines[2])
    forged = dict(prev, seq=prev["seq"] + 1, prev=prev["hash"], caller="attacker",
                  decision="grant", kind="grant")
    forged["hash"] = record_hash(forged)
    lines.insert(3, canonical_json(forged).decode())
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    # the forged line itself chains and hashes; the next genuine line no longer does
    assert _codes(res)[:2] == [(5, "audit.chain"), (5, "audit.seq")]


def test_truncation_after_checkpoint_is_unsigned_tail(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    log = AuditLog(p, sk, replica="kms-0", checkpoint_every=4)
    for i in range(6):
        log.append(_event(i))
    # simulate a crash: no close() -> no final checkpoint
    os.close(log._fd)
    log._closed = True
    res = verify_log(p, pk)
    assert res.ok  # a warning by default
    assert _codes(res) == [(6, "audit.unsigned_tail")]
    assert res.problems[0].severity == "warning" and res.problems[0].seq == 6
    res = verify_log(p, pk, strict=True)
    assert not res.ok and _codes(res) == [(6, "audit.unsigned_tail")]


def test_partial_last_line_detected_and_refused_on_open(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    data = p.read_bytes()
    p.write_bytes(data[:-20])  # cut inside the last record
    res = verify_log(p, pk)
    assert not res.ok
    assert (len(lines), "audit.parse") in _codes(res)
    with pytest.raises(AuditError) as ei:
        AuditLog(p, sk, replica="kms-0")
    assert ei.value.reason == "audit.corrupt_tail"


def test_corrupt_tail_refused_on_open(tmp_path, sk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    r = json.loads(lines[-1])
    r["count"] = 999
    lines[-1] = canonical_json(r).decode()
    _put(p, lines)
    with pytest.raises(AuditError) as ei:
        AuditLog(p, sk, replica="kms-0")
    assert ei.value.reason == "audit.corrupt_tail"


def test_tail_signed_by_other_key_refused_on_open(tmp_path, sk):
    p = tmp_path / "a.log"
    _write_log(p, sk)
    with pytest.raises(AuditError) as ei:
        AuditLog(p, nacl.signing.SigningKey(b"\x01" * 32), replica="kms-0")
    assert ei.value.reason == "audit.corrupt_tail"


def test_forged_checkpoint_signature(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    r = json.loads(lines[4])
    assert r["kind"] == "checkpoint"
    r["sig"] = nacl.signing.SigningKey(b"\x07" * 32).sign(b"x").signature.hex()
    r["hash"] = record_hash(r)
    lines[4] = canonical_json(r).decode()
    nxt = json.loads(lines[5])
    nxt["prev"] = r["hash"]
    nxt["hash"] = record_hash(nxt)
    lines[5] = canonical_json(nxt).decode()
    _put(p, lines)
    res = verify_log(p, pk)
    assert not res.ok
    assert (5, "audit.signature") in _codes(res)
    assert res.problems[0].seq == 5


def test_wrong_public_key(tmp_path, sk):
    p = tmp_path / "a.log"
    _write_log(p, sk)
    other = bytes(nacl.signing.SigningKey(b"\x02" * 32).verify_key)
    res = verify_log(p, other)
    assert not res.ok
    sigs = [x for x in res.problems if x.code == "audit.signature"]
    assert [x.line for x in sigs] == [5, 10, 13]
    assert "another key" in sigs[0].message


def test_garbage_line_is_parse_error(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    lines = _write_log(p, sk)
    lines.insert(2, "not json at all")
    _put(p, lines)
    res = verify_log(p, pk)
    assert (3, "audit.parse") in _codes(res)
    for junk in ("[]", '{"seq":true}', "\xff", '{"seq":1e999}'):
        _put(p, [junk])
        res = verify_log(p, pk)
        assert _codes(res)[0] == (1, "audit.parse")


def test_resume_continues_chain(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    with AuditLog(p, sk, replica="kms-0", checkpoint_every=100) as log:
        log.append(_event(1))
        last = log.append(_event(2))
    with AuditLog(p, sk, replica="kms-0", checkpoint_every=100) as log:
        assert log.last_seq == 3  # 2 events + close checkpoint
        rec = log.append(_event(3))
        assert rec.seq == 4 and rec.prev != last.hash
    recs = [json.loads(x) for x in _lines(p)]
    assert [r["kind"] for r in recs] == ["grant", "grant", "checkpoint", "grant", "checkpoint"]
    assert verify_log(p, pk).ok and verify_log(p, pk, strict=True).ok


def test_resume_after_crash_without_checkpoint(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    log = AuditLog(p, sk, replica="kms-0")
    log.append(_event(1))
    os.close(log._fd)  # crash: no close checkpoint
    log._closed = True
    with AuditLog(p, sk, replica="kms-0") as log2:
        assert log2.last_seq == 1
    res = verify_log(p, pk, strict=True)
    assert res.ok and res.last_signed_seq == 2 and res.records == 2


def test_second_writer_refused(tmp_path, sk):
    p = tmp_path / "a.log"
    with AuditLog(p, sk, replica="kms-0"):
        with pytest.raises(AuditError) as ei:
            AuditLog(p, sk, replica="kms-1")
        assert ei.value.reason == "audit.locked"


def test_fsync_failure_fails_closed(tmp_path, sk, pk, monkeypatch):
    p = tmp_path / "a.log"
    log = AuditLog(p, sk, replica="kms-0")
    log.append(_event(1))
    calls = []

    def bad_fsync(fd):
        calls.append(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", bad_fsync)
    with pytest.raises(AuditError) as ei:
        log.append(_event(2))
    assert ei.value.reason == "audit.unwritable"
    assert calls  # fsync was attempted before returning
    monkeypatch.undo()
    # the failed record was cut off again, and the log stays closed for writing
    assert len(_lines(p)) == 1
    with pytest.raises(AuditError) as ei2:
        log.append(_event(3))
    assert ei2.value.reason == "audit.unwritable"
    log.close()
    assert len(_lines(p)) == 1
    assert verify_log(p, pk).ok


def test_fsync_called_before_append_returns(tmp_path, sk, monkeypatch):
    p = tmp_path / "a.log"
    log = AuditLog(p, sk, replica="kms-0")
    seen = []
    real = os.fsync

    def spy(fd):
        seen.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    log.append(_event(1))
    assert len(seen) == 1 and seen[0] == p.stat().st_size > 0
    log.close()


def test_write_failure_fails_closed(tmp_path, sk, monkeypatch):
    p = tmp_path / "a.log"
    log = AuditLog(p, sk, replica="kms-0")
    monkeypatch.setattr(os, "write", lambda fd, b: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(AuditError) as ei:
        log.append(_event(1))
    assert ei.value.reason == "audit.unwritable"
    assert "No space left" in str(ei.value)


def test_unwritable_path(tmp_path, sk):
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "missing-dir" / "a.log", tmp_path, tmp_path / "file" / "a.log"):
        with pytest.raises(AuditError) as ei:
            AuditLog(bad, sk, replica="kms-0")
        assert ei.value.reason == "audit.unwritable"


@pytest.mark.parametrize("name", ["dek", "key", "plaintext", "secret", "token", "private_key",
                                  "wrapped_dek", "secret_id", "client_token", "DEK", "hpke-secret",
                                  "signing_private_key", "password", "seed"])
def test_forbidden_fields(tmp_path, sk, name):
    p = tmp_path / "a.log"
    with AuditLog(p, sk, replica="kms-0") as log:
        for ev in ({"kind": "grant", name: "x"}, {"kind": "grant", "claims": {name: "x"}},
                   {"kind": "grant", "list": [{"a": {name: 1}}]}):
            with pytest.raises(AuditError) as ei:
                log.append(ev)
            assert ei.value.reason == "audit.forbidden_field"
        assert log.last_seq == 0
    assert p.read_text() == ""


def test_allowed_names_and_bad_events(tmp_path, sk):
    with AuditLog(tmp_path / "a.log", sk, replica="kms-0") as log:
        log.append({"kind": "admin", "key_version": 2, "public_key": "ab", "key_id": "k1",
                    "claims": {"signing_key": "vlek", "author_key_digest": "00"}})
        for ev, reason in (
            ({"kind": "grant", "x": b"raw bytes"}, "audit.invalid_event"),
            ({"kind": "grant", "x": float("nan")}, "audit.invalid_event"),
            ({"kind": "checkpoint"}, "audit.invalid_event"),
            ({"kind": "nope"}, "audit.invalid_event"),
            ({"decision": "grant"}, "audit.invalid_event"),
            ({"kind": "grant", "seq": 5}, "audit.reserved_field"),
            ({"kind": "grant", "hash": "00"}, "audit.reserved_field"),
        ):
            with pytest.raises(AuditError) as ei:
                log.append(ev)
            assert ei.value.reason == reason
        assert log.last_seq == 1


def test_thread_safety(tmp_path, sk, pk):
    p = tmp_path / "a.log"
    log = AuditLog(p, sk, replica="kms-0", checkpoint_every=7)

    def worker(k):
        for i in range(25):
            log.append(_event(k * 100 + i))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    log.close()
    res = verify_log(p, pk, strict=True)
    assert res.ok, res.problems
    assert sum(1 for _ in iter_records(p, kind="grant")) == 100


def test_iter_records_filters(tmp_path, sk):
    p = tmp_path / "a.log"
    _write_log(p, sk, n=10)
    all_recs = list(iter_records(p))
    assert len(all_recs) == 13
    assert {r.get("model") for r in iter_records(p, model="m-a")} == {"m-a"}
    assert len(list(iter_records(p, model="m-a"))) == 5
    assert len(list(iter_records(p, decision="deny"))) == 4  # i = 0, 3, 6, 9
    assert all(r.kind == "deny" for r in iter_records(p, decision="deny"))
    assert {r.get("caller") for r in iter_records(p, caller="tee-1")} == {"tee-1"}
    t_mid = all_recs[5].time
    assert all(r.time >= t_mid for r in iter_records(p, since=t_mid))
    assert list(iter_records(p, until="2000-01-01T00:00:00Z")) == []
    assert len(list(iter_records(p, since="2000-01-01T00:00:00Z"))) == 13
    with pytest.raises(AuditError) as ei:
        list(iter_records(p, since="yesterday"))
    assert ei.value.reason == "audit.bad_time"


def test_no_key_material_in_log(tmp_path, sk):
    p = tmp_path / "a.log"
    _write_log(p, sk)
    text = p.read_text()
    assert SEED.hex() not in text and bytes(sk).hex() not in text
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(AuditLog(tmp_path / "b.log", sk, replica="x"))


def test_load_public_key_forms(tmp_path, pk):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    assert load_public_key(pk.hex()) == pk
    (tmp_path / "raw").write_bytes(pk)
    (tmp_path / "hex").write_text(pk.hex() + "\n")
    pem = Ed25519PublicKey.from_public_bytes(pk).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "pem").write_bytes(pem)
    for name in ("raw", "hex", "pem"):
        assert load_public_key(str(tmp_path / name)) == pk
    with pytest.raises(AuditError) as ei:
        load_public_key(str(tmp_path / "missing"))
    assert ei.value.reason == "audit.bad_key"
