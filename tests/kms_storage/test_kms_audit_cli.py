"""``weightseal audit show|verify|export`` through the real dispatcher."""

from __future__ import annotations

import csv
import json

import nacl.signing
import pytest
from weightseal.kms._audit import AuditLog, canonical_json, record_hash

import weightseal_cli

SK = nacl.signing.SigningKey(b"\x05" * 32)
PK_HEX = bytes(SK.verify_key).hex()


@pytest.fixture()
def log_path(tmp_path):
    p = tmp_path / "audit.log"
    with AuditLog(p, SK, replica="kms-0", checkpoint_every=3) as log:
        log.append({"kind": "challenge", "caller": "tee-a", "model": "m1"})
        log.append({"kind": "grant", "caller": "tee-a", "caller_addr": "10.0.0.1:1", "model": "m1",
                    "key_version": 2, "decision": "grant", "reason": "ok",
                    "claims": {"measurement": "aa"}})
        log.append({"kind": "deny", "caller": "tee-b", "model": "m1", "decision": "deny",
                    "reason": "policy.measurement"})
        log.append({"kind": "deny", "caller": "tee-b", "model": "m2", "decision": "deny",
                    "reason": "=HYPERLINK(\"x\")"})
        log.append({"kind": "admin", "caller": "owner", "model": "m2", "action": "rotate"})
    return p


def test_show_filters(log_path, capsys):
    assert weightseal_cli.main(["audit", "show", str(log_path), "--model", "m1",
                                "--decision", "deny"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert "deny" in out[0] and "model=m1" in out[0] and "reason=policy.measurement" in out[0]


def test_show_json(log_path, capsys):
    assert weightseal_cli.main(["audit", "show", str(log_path), "--caller", "tee-a", "--json"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["kind"] for r in recs] == ["challenge", "grant"]
    assert recs[1]["claims"] == {"measurement": "aa"}


def test_show_all_includes_checkpoints(log_path, capsys):
    assert weightseal_cli.main(["audit", "show", str(log_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 7 and sum("checkpoint" in x for x in out) == 2


def test_verify_ok(log_path, capsys, tmp_path):
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", PK_HEX]) == 0
    assert capsys.readouterr().out.startswith("OK: 7 record(s), 2 checkpoint(s)")
    kf = tmp_path / "pub.hex"
    kf.write_text(PK_HEX)
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", str(kf),
                                "--strict"]) == 0


def test_verify_reports_tampering_with_position(log_path, capsys):
    lines = log_path.read_text().splitlines()
    r = json.loads(lines[1])
    r["decision"] = "deny"
    lines[1] = canonical_json(r).decode()
    log_path.write_text("\n".join(lines) + "\n")
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", PK_HEX]) == 1
    out = capsys.readouterr().out
    assert f"{log_path}:line 2 (seq 2): audit.hash:" in out
    assert out.splitlines()[-1].startswith("FAILED")


def test_verify_wrong_key_and_json(log_path, capsys):
    other = bytes(nacl.signing.SigningKey(b"\x06" * 32).verify_key).hex()
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", other,
                                "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["ok"] is False
    assert [(p["line"], p["code"]) for p in res["problems"] if p["severity"] == "error"] == [
        (4, "audit.signature"), (7, "audit.signature")]


def test_verify_strict_unsigned_tail(log_path, capsys):
    lines = log_path.read_text().splitlines()
    r = json.loads(lines[-2])
    extra = dict(r, seq=8, prev=json.loads(lines[-1])["hash"])
    extra["hash"] = record_hash(extra)
    log_path.write_text("\n".join(lines + [canonical_json(extra).decode()]) + "\n")
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", PK_HEX]) == 0
    assert "audit.unsigned_tail" in capsys.readouterr().out
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", PK_HEX,
                                "--strict"]) == 1


def test_verify_bad_key_argument(log_path, capsys):
    assert weightseal_cli.main(["audit", "verify", str(log_path), "--public-key", "nothex"]) == 1
    assert "audit.bad_key" in capsys.readouterr().err


def test_export_jsonl_and_csv(log_path, tmp_path):
    out = tmp_path / "deny.jsonl"
    assert weightseal_cli.main(["audit", "export", str(log_path), "--out", str(out),
                                "--decision", "deny"]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["seq"] for r in recs] == [3, 5]
    assert all(record_hash(r) == r["hash"] for r in recs)
    out_csv = tmp_path / "all.csv"
    assert weightseal_cli.main(["audit", "export", str(log_path), "--out", str(out_csv),
                                "--format", "csv", "--model", "m2"]) == 0
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["kind"] for r in rows] == ["deny", "admin"]
    assert rows[0]["reason"].startswith("'=")  # formula injection neutralised
    assert rows[1]["action"] == "rotate"


def test_show_unreadable(tmp_path, capsys):
    assert weightseal_cli.main(["audit", "show", str(tmp_path / "none.log")]) == 1
    assert "audit.unreadable" in capsys.readouterr().err
