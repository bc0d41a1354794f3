"""``weightseal audit show|verify|anchor|export``: read and check the key service's audit log offline."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from ._audit import (
    AuditRecord,
    canonical_json,
    iter_records,
    latest_anchor,
    load_anchors,
    load_public_key,
    verify_log,
)
from ._errors import AuditError

__all__ = ["register"]

_COLUMNS = ("seq", "time", "replica", "kind", "caller", "caller_addr", "model", "key_version",
            "decision", "reason", "policy_digest", "evidence_digest", "claims", "prev", "hash")


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="only records for this model id")
    p.add_argument("--caller", help="only records for this caller identity")
    p.add_argument("--decision", choices=["grant", "deny"], help="only grants or only denials")
    p.add_argument("--kind", choices=["challenge", "grant", "deny", "admin", "checkpoint"],
                   help="only records of this kind")
    p.add_argument("--since", metavar="T", help="RFC 3339 time, inclusive (e.g. 2026-05-01T00:00:00Z)")
    p.add_argument("--until", metavar="T", help="RFC 3339 time, exclusive")


def register(sub: Any) -> None:
    """Add the ``audit`` command group to the dispatcher's sub-parsers."""
    p = sub.add_parser("audit", help="show, verify and export the key service's audit log",
                       description="Read the tamper-evident audit log of the key service.")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    show = asub.add_parser("show", help="print audit records (filtered)")
    show.add_argument("log", metavar="LOG", help="audit log file (JSON Lines)")
    _add_filters(show)
    show.add_argument("--json", action="store_true", help="print the raw JSON records")
    show.set_defaults(func=_cmd_show)

    ver = asub.add_parser("verify", help="verify hashes, chain, sequence and signed checkpoints",
                          description="Exit status 0 only if the log verifies.")
    ver.add_argument("log", metavar="LOG")
    ver.add_argument("--public-key", required=True, metavar="FILE_OR_HEX",
                     help="the key service's Ed25519 public key: hex, or a file (raw, hex, "
                          "base64 or PEM)")
    ver.add_argument("--strict", action="store_true",
                     help="records after the last signed checkpoint are an error")
    ver.add_argument("--anchor", action="append", default=[], metavar="FILE",
                     help="checkpoint records kept off the host (from 'audit anchor'): the log "
                          "must still hold each of them (detects truncation and rewrites); "
                          "repeatable")
    ver.add_argument("--json", action="store_true", help="machine-readable result")
    ver.set_defaults(func=_cmd_verify)

    anc = asub.add_parser("anchor", help="emit the newest signed checkpoint of a verified log, "
                                         "to keep off the host",
                          description="Verify the log and append its newest signed checkpoint "
                                      "record (one JSON line) to FILE, or print it.  Keep these "
                                      "anchors somewhere the service host cannot write; "
                                      "'audit verify --anchor FILE' then detects a log truncated "
                                      "or rewritten behind them.")
    anc.add_argument("log", metavar="LOG")
    anc.add_argument("--public-key", required=True, metavar="FILE_OR_HEX",
                     help="the key service's Ed25519 public key (as for verify)")
    anc.add_argument("--out", default="-", metavar="FILE",
                     help="append the anchor to FILE ('-' = stdout, the default)")
    anc.set_defaults(func=_cmd_anchor)

    exp = asub.add_parser("export", help="export (filtered) records as JSON Lines or CSV")
    exp.add_argument("log", metavar="LOG")
    exp.add_argument("--out", required=True, metavar="FILE", help="output file ('-' = stdout)")
    exp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    _add_filters(exp)
    exp.set_defaults(func=_cmd_export)


def _records(args: argparse.Namespace) -> Iterator[AuditRecord]:
    return iter_records(args.log, model=args.model, caller=args.caller, decision=args.decision,
                        since=args.since, until=args.until, kind=args.kind)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict | list):
        return canonical_json(v).decode("utf-8")
    return str(v)


def _safe(text: str) -> str:
    # never let log content drive the terminal (escape sequences, newlines)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _cmd_show(args: argparse.Namespace) -> int:
    out = sys.stdout
    n = 0
    for rec in _records(args):
        n += 1
        if args.json:
            out.write(rec.to_json() + "\n")
            continue
        d = rec.data
        if rec.kind == "checkpoint":
            line = f"{rec.seq:>6} {rec.time} {rec.replica} checkpoint count={d.get('count')}"
        else:
            parts = [f"{rec.seq:>6}", rec.time, rec.replica, f"{rec.kind:<9}"]
            for name in ("model", "key_version", "caller", "caller_addr", "decision", "reason"):
                if d.get(name) is not None:
                    parts.append(f"{name}={_cell(d[name])}")
            line = " ".join(parts)
        out.write(_safe(line) + "\n")
    if not args.json:
        print(f"{n} record(s)", file=sys.stderr)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    pk = load_public_key(args.public_key)
    anchors = [a for f in args.anchor for a in load_anchors(f)]
    res = verify_log(args.log, pk, strict=args.strict, anchors=anchors)
    if args.json:
        print(json.dumps({
            "ok": res.ok, "records": res.records, "checkpoints": res.checkpoints,
            "last_seq": res.last_seq, "last_signed_seq": res.last_signed_seq,
            "last_hash": res.last_hash, "anchors": len(anchors),
            "problems": [{"line": p.line, "seq": p.seq, "code": p.code, "message": p.message,
                          "severity": p.severity} for p in res.problems],
        }, indent=2))
    else:
        for p in res.problems:
            print(f"{args.log}:{_safe(str(p))}" + (" [warning]" if p.severity == "warning" else ""))
        status = "OK" if res.ok else "FAILED"
        print(f"{status}: {res.records} record(s), {res.checkpoints} checkpoint(s), last seq "
              f"{res.last_seq}, last signed seq {res.last_signed_seq}, "
              f"{len(res.errors)} error(s), {len(res.problems) - len(res.errors)} warning(s)"
              + (f", {len(anchors)} anchor(s) checked" if anchors else ""))
    return 0 if res.ok else 1


def _cmd_anchor(args: argparse.Namespace) -> int:
    rec = latest_anchor(args.log, load_public_key(args.public_key))
    line = canonical_json(rec).decode("utf-8") + "\n"
    if args.out == "-":
        sys.stdout.write(line)
    else:
        try:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise AuditError(f"cannot write {args.out} ({exc.strerror})",
                             reason="audit.export") from None
    print(f"anchored seq {rec['seq']} ({rec['time']}, replica {_safe(str(rec['replica']))}, "
          f"hash {rec['hash'][:16]}...)", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    recs = list(_records(args))
    if args.out == "-":
        _write_export(sys.stdout, recs, args.format)
    else:
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                _write_export(f, recs, args.format)
        except OSError as exc:
            raise AuditError(f"cannot write {args.out} ({exc.strerror})",
                             reason="audit.export") from None
    print(f"exported {len(recs)} record(s) to {args.out}", file=sys.stderr)
    return 0


def _write_export(f: TextIO, recs: list[AuditRecord], fmt: str) -> None:
    if fmt == "jsonl":
        for rec in recs:
            f.write(rec.to_json() + "\n")
        return
    w = csv.writer(f)
    extra = sorted({k for r in recs for k in r.data} - set(_COLUMNS))
    w.writerow(list(_COLUMNS) + extra)
    for rec in recs:
        row = [_cell(rec.data.get(c)) for c in _COLUMNS] + [_cell(rec.data.get(c)) for c in extra]
        # neutralise spreadsheet formula injection from caller-controlled strings
        w.writerow(["'" + c if c[:1] in ("=", "+", "-", "@") and not _is_number(c) else c
                    for c in row])


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
