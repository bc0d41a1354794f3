"""Audit anchors: signed checkpoint records kept off the host catch what the log alone cannot --
truncation exactly at a checkpoint, and a history rewritten by someone holding the signing key."""

from __future__ import annotations

import json
from pathlib import Path

import nacl.signing
import pytest
from weightseal.kms._audit import (
    AuditLog,
    canonical_json,
    latest_anchor,
    load_anchors,
    record_hash,
    verify_log,
)
from weightseal.kms._errors import AuditError

import weightseal_cli

SK = nacl.signing.SigningKey(bytes(range(32)))
PK = bytes(SK.verify_key)
OTHER = nacl.signing.SigningKey(b"\x09" * 32)


def _event(i: int) -> dict:
    return {"kind": "grant" if i % 3 else "deny", "caller": f"tee-{i % 3}", "model": "m",
            "key_version": 1, "decision": "grant" if i % 3 else "deny", "reason": f"r{i}"}


def _write(path: Path, events: list[dict], sk: nacl.signing.SigningKey = SK, every: int = 4) -> list[str]:
    with AuditLog(path, sk, replica="kms-0", checkpoint_every=every) as log:
        for e in events:
            log.append(e)
    return path.read_text().splitlines()


def _put(path: Path, lines: list[str]) -> None:
    path.write_text("".join(x + "\n" for x in lines))


def _codes(res) -> list[tuple[int | None, str]]:
    return [(p.seq, p.code) for p in res.problems]


# 10 events, a checkpoint after every 4 and on close: seq 5, 10 and 13 are checkpoints


def test_latest_anchor_is_the_newest_checkpoint_and_a_grown_log_keeps_it(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    with AuditLog(p, SK, replica="kms-0", checkpoint_every=4) as log:
        for i in range(6):
            log.append(_event(i))
        anchor = latest_anchor(p, PK)
        assert anchor["seq"] == 5 and anchor["kind"] == "checkpoint"
        assert anchor == json.loads(_lines(p)[4])
        for i in range(6, 12):
            log.append(_event(i))
    res = verify_log(p, PK, anchors=[anchor])
    assert res.ok and res.problems == []
    newest = latest_anchor(p, PK)
    assert newest["seq"] == res.last_signed_seq == res.last_seq
    assert verify_log(p, PK, anchors=[anchor, newest]).problems == []


def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def test_truncation_at_a_checkpoint_passes_alone_and_fails_against_the_anchor(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    lines = _write(p, [_event(i) for i in range(10)])
    anchor = latest_anchor(p, PK)
    assert anchor["seq"] == 13
    _put(p, lines[:10])  # cut right after the checkpoint at seq 10: an intact, signed prefix
    alone = verify_log(p, PK, strict=True)
    assert alone.ok and alone.problems == []  # the gap anchors close
    res = verify_log(p, PK, anchors=[anchor])
    assert not res.ok
    assert _codes(res) == [(13, "audit.anchor_missing")]
    assert "ends at seq 10" in res.problems[0].message and res.problems[0].line == 11


def test_history_rewritten_with_the_signing_key_is_caught_by_an_older_anchor(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    events = [_event(i) for i in range(10)]
    _write(p, events)
    anchor = next(json.loads(x) for x in _lines(p) if json.loads(x)["seq"] == 5)
    # whoever holds the service key rewrites history: the first grant becomes a denial, every
    # hash and checkpoint signature recomputed, same length -- the log alone verifies
    forged = [dict(e) for e in events]
    forged[1] = dict(forged[1], decision="deny", kind="deny")
    q = tmp_path / "forged.log"
    _write(q, forged)
    assert len(_lines(q)) == len(_lines(p))
    assert verify_log(q, PK, strict=True).problems == []
    res = verify_log(q, PK, anchors=[anchor])
    assert not res.ok and _codes(res) == [(5, "audit.anchor_mismatch")]
    assert res.problems[0].line == 5


@pytest.mark.parametrize("how", ["edited", "other_key", "not_checkpoint", "bad_count"])
def test_anchor_that_is_not_a_valid_checkpoint_is_an_error(tmp_path: Path, how: str) -> None:
    p = tmp_path / "a.log"
    lines = _write(p, [_event(i) for i in range(10)])
    good = json.loads(lines[4])
    if how == "edited":  # re-hashed after the edit, so only the signature can tell
        bad = dict(good, prev="ab" * 32)
        bad["hash"] = record_hash(bad)
    elif how == "other_key":
        q = tmp_path / "other.log"
        bad = json.loads(_write(q, [_event(i) for i in range(10)], sk=OTHER)[4])
    elif how == "not_checkpoint":
        bad = json.loads(lines[3])
    else:
        bad = dict(good, count=7)
        bad["hash"] = record_hash(bad)
    res = verify_log(p, PK, anchors=[bad])
    assert not res.ok
    assert [(pr.line, pr.code) for pr in res.problems] == [(0, "audit.anchor_invalid")]
    assert str(res.problems[0]).startswith("anchor")


def test_two_signed_checkpoints_for_one_seq_are_a_fork(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    _write(p, [_event(i) for i in range(10)])
    q = tmp_path / "b.log"
    _write(q, [_event(i + 100) for i in range(10)])
    a, b = latest_anchor(p, PK), latest_anchor(q, PK)
    assert a["seq"] == b["seq"] and a["hash"] != b["hash"]
    res = verify_log(p, PK, anchors=[a, b])
    # the log holds one of them; the other proves the service signed a second history
    assert _codes(res) == [(13, "audit.anchor_mismatch")]
    assert "anchors disagree" in res.problems[0].message


def test_latest_anchor_refuses_a_broken_or_unsigned_log(tmp_path: Path) -> None:
    p = tmp_path / "a.log"
    lines = _write(p, [_event(i) for i in range(10)])
    rec = json.loads(lines[2])
    rec["reason"] = "edited"
    _put(p, [*lines[:2], canonical_json(rec).decode(), *lines[3:]])
    with pytest.raises(AuditError) as ei:
        latest_anchor(p, PK)
    assert ei.value.reason == "audit.invalid"
    _put(p, lines[:3])  # three records, no checkpoint yet
    with pytest.raises(AuditError) as ei:
        latest_anchor(p, PK)
    assert ei.value.reason == "audit.no_checkpoint"


@pytest.mark.parametrize("content", ["", "not json\n", '{"seq": 1}\n', "EVENT\n", "MISSING"])
def test_load_anchors_rejects_anything_but_checkpoints(tmp_path: Path, content: str) -> None:
    p = tmp_path / "a.log"
    lines = _write(p, [_event(i) for i in range(5)])
    f = tmp_path / "anchors.jsonl"
    if content == "EVENT\n":
        f.write_text(lines[0] + "\n")
    elif content != "MISSING":
        f.write_text(content)
    with pytest.raises(AuditError) as ei:
        load_anchors(f)
    assert ei.value.reason == "audit.anchor_invalid"
    f.write_text(lines[4] + "\n\n")
    assert load_anchors(f) == [json.loads(lines[4])]


def test_cli_anchor_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "a.log"
    lines = _write(p, [_event(i) for i in range(10)])
    store = tmp_path / "anchors.jsonl"
    pk = PK.hex()
    assert weightseal_cli.main(["audit", "anchor", str(p), "--public-key", pk, "--out", str(store)]) == 0
    assert "anchored seq 13" in capsys.readouterr().err
    assert weightseal_cli.main(["audit", "anchor", str(p), "--public-key", pk]) == 0
    printed = capsys.readouterr().out
    assert store.read_text() == printed == lines[12] + "\n"  # appended, canonical line
    assert weightseal_cli.main(["audit", "verify", str(p), "--public-key", pk, "--anchor", str(store)]) == 0
    assert capsys.readouterr().out.strip().endswith("1 anchor(s) checked")
    _put(p, lines[:10])
    assert weightseal_cli.main(["audit", "verify", str(p), "--public-key", pk]) == 0
    capsys.readouterr()
    assert weightseal_cli.main(["audit", "verify", str(p), "--public-key", pk, "--anchor", str(store),
                                "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["anchors"] == 1
    assert [(x["seq"], x["code"]) for x in out["problems"]] == [(13, "audit.anchor_missing")]
    # a log that does not verify is never anchored
    rec = json.loads(lines[1])
    rec["decision"] = "deny"
    _put(p, [lines[0], canonical_json(rec).decode(), *lines[2:]])
    assert weightseal_cli.main(["audit", "anchor", str(p), "--public-key", pk, "--out", str(store)]) == 1
    assert "audit.invalid" in capsys.readouterr().err
    assert store.read_text().count("\n") == 1
    assert weightseal_cli.main(["audit", "verify", str(p), "--public-key", pk, "--anchor",
                                str(tmp_path / "nope")]) == 1
    assert "audit.anchor_invalid" in capsys.readouterr().err
