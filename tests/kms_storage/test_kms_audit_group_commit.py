"""Group commit in the audit log: concurrent appends share fsyncs, none returns before an fsync
covers it, and a failed fsync fails every waiter whose record was not yet durable."""

from __future__ import annotations

import os
import threading

import nacl.signing
import pytest
from weightseal.kms import AuditError, AuditLog, verify_log


def _event(i: int) -> dict[str, object]:
    return {"kind": "grant", "model": "m", "caller": f"c{i}", "decision": "grant", "reason": "ok"}


def test_concurrent_appends_share_fsyncs_and_chain_verifies(tmp_path, monkeypatch):
    sk = nacl.signing.SigningKey.generate()
    log = AuditLog(tmp_path / "a.jsonl", sk, replica="r", checkpoint_every=1000)
    real_fsync = os.fsync
    synced_sizes: list[int] = []
    returned: list[tuple[int, int]] = []  # (seq, file size durable at return)

    def slow_fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        threading.Event().wait(0.005)
        real_fsync(fd)
        synced_sizes.append(size)

    monkeypatch.setattr(os, "fsync", slow_fsync)

    def worker(base: int) -> None:
        for i in range(25):
            rec = log.append(_event(base + i))
            returned.append((rec.seq, max(synced_sizes)))

    threads = [threading.Thread(target=worker, args=(k * 100,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(returned) == 200
    # fewer fsyncs than records: appends were grouped
    assert len(synced_sizes) < 200
    # every append returned only after an fsync covering its line
    lines = (tmp_path / "a.jsonl").read_bytes().splitlines(keepends=True)
    ends = {}
    pos = 0
    for n, line in enumerate(lines, start=1):
        pos += len(line)
        ends[n] = pos
    for seq, durable in returned:
        assert durable >= ends[seq], (seq, durable, ends[seq])
    res = verify_log(tmp_path / "a.jsonl", bytes(sk.verify_key), strict=True)
    assert res.ok, res.problems
    assert sum(1 for ln in lines if b'"kind":"checkpoint"' in ln) == 1


def test_failed_fsync_fails_all_pending_and_truncates(tmp_path, monkeypatch):
    sk = nacl.signing.SigningKey.generate()
    path = tmp_path / "b.jsonl"
    log = AuditLog(path, sk, replica="r", checkpoint_every=1000)
    log.append(_event(0))
    durable_size = path.stat().st_size

    def bad_fsync(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", bad_fsync)
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            log.append(_event(i))
        except AuditError as exc:
            errors.append(exc.reason)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["audit.unwritable"] * 5
    assert path.stat().st_size == durable_size  # nothing non-durable left behind
    with pytest.raises(AuditError) as e:
        log.append(_event(9))
    assert e.value.reason == "audit.unwritable"
