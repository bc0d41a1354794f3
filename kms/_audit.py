"""Tamper-evident, append-only audit log (JSON Lines, hash chain, signed checkpoints).

Record layout (format ``weightseal.audit.v1``), one JSON object per line, UTF-8, keys sorted::

    {"seq": 17, "time": "2026-05-01T12:00:00.123Z", "replica": "kms-0", "kind": "grant",
     "caller": "spiffe://...", "caller_addr": "10.0.0.7:51234", "model": "llama-3",
     "key_version": 2, "policy_digest": "...", "evidence_digest": "...",
     "claims": {...}, "decision": "grant", "reason": "ok",
     "prev": "<hash of record 16>", "hash": "<SHA-256 of this record without 'hash'>"}

* ``seq`` starts at 1 and increases by one per line; ``prev`` of record 1 is 64 zeros.
* ``hash`` = hex SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8, no NaN) of the
  record without its ``hash`` member.
* ``kind`` is one of ``challenge``, ``grant``, ``deny``, ``admin`` (given by the caller) or
  ``checkpoint`` (written by the log itself).
* A checkpoint record is written every ``checkpoint_every`` records and on close.  Besides the
  common members it has ``count`` (records before it = seq - 1), ``signer`` (first 16 bytes of
  SHA-256 of the Ed25519 public key, hex) and ``sig``: the Ed25519 signature, hex, over
  ``b"weightseal-audit-checkpoint-v1\\0"`` + canonical JSON of the record without ``hash`` and
  ``sig``.  It therefore signs its own seq, the hash of the last record (``prev``) and the count;
  since every record commits to its predecessor, a valid checkpoint vouches for the whole prefix.

What the verifier detects (``verify_log``): an edited record (``audit.hash``), a dropped,
inserted or reordered record (``audit.chain`` and ``audit.seq``), a forged or foreign checkpoint
(``audit.signature``), malformed lines (``audit.parse``).  Records after the last valid
checkpoint (``audit.unsigned_tail``) can be truncated without trace; that is reported as a
warning (an error with ``strict``).  Truncation exactly at a checkpoint leaves an intact, signed
prefix; it can only be detected against an *anchor* kept elsewhere: a copy of a signed checkpoint
record (:func:`latest_anchor`, ``weightseal audit anchor``), shipped off the host as it is taken.
``verify_log(..., anchors=...)`` then requires each anchor to be a valid checkpoint under the
public key (``audit.anchor_invalid``) and the log to hold exactly that record at its seq
(``audit.anchor_mismatch``: rewritten or forked; ``audit.anchor_missing``: the log ends before
it, i.e. truncated).  This also catches a history rewritten and re-signed by someone holding the
signing key, for every record up to the newest anchor taken before the rewrite.

Writes are fail-closed: ``append`` returns only after ``write`` + ``os.fsync`` (group commit:
concurrent appends share one fsync, none returns before an fsync covers its record); on
any failure it tries to cut the file back to its previous length, marks the log broken and raises
``AuditError(reason="audit.unwritable")``, so the key service denies instead of releasing a key.
One writer process per file is enforced with an exclusive ``flock``; within the process a lock
serialises appends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as _dt
import errno
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing

from ._errors import AuditError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "AuditLog",
    "AuditRecord",
    "VerifyResult",
    "Problem",
    "verify_log",
    "iter_records",
    "canonical_json",
    "record_hash",
    "load_public_key",
    "latest_anchor",
    "load_anchors",
    "EVENT_KINDS",
    "GENESIS_PREV",
    "CHECKPOINT_DOMAIN",
]

EVENT_KINDS = frozenset({"challenge", "grant", "deny", "admin"})
ALL_KINDS = EVENT_KINDS | {"checkpoint"}
GENESIS_PREV = "0" * 64
CHECKPOINT_DOMAIN = b"weightseal-audit-checkpoint-v1\x00"
MAX_LINE = 1 << 20  # 1 MiB per record: longer lines are rejected on write and on read
_RESERVED = frozenset({"seq", "time", "replica", "prev", "hash", "sig", "signer", "count"})
_REQUIRED = ("seq", "time", "replica", "kind", "prev", "hash")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

# Field names that denote key material or credentials.  A name is refused if, lower-cased and
# with '-' as '_', it is in _FORBIDDEN, or one of its '_'-separated words is in _FORBIDDEN_WORDS,
# or it ends with one of _FORBIDDEN_SUFFIXES.  ("key_version", "public_key" and "key_id" are
# fine, and so is "signing_key", the SNP claim naming VCEK/VLEK; "dek", "private_key",
# "wrapped_dek", "secret_id", "token" are not.)
_FORBIDDEN = frozenset({
    "dek", "kek", "key", "keys", "plaintext", "secret", "secrets", "token", "private_key",
    "secret_key", "key_material", "seed", "password", "passphrase",
    "secret_id", "client_token", "root_token", "session_key", "shared_secret", "credentials",
    "hpke_secret", "sk", "priv",
})
_FORBIDDEN_WORDS = frozenset({"dek", "kek", "plaintext", "secret", "token", "password",
                              "passphrase", "private", "seed"})
_FORBIDDEN_SUFFIXES = ("_key_material", "_secret_key", "_private_key")


def _forbidden_name(name: str) -> bool:
    n = name.lower().replace("-", "_")
    if n in _FORBIDDEN or n.endswith(_FORBIDDEN_SUFFIXES):
        return True
    return any(w in _FORBIDDEN_WORDS for w in n.split("_"))


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, NaN/Infinity refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``record`` without its ``hash`` member."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _checkpoint_message(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return CHECKPOINT_DOMAIN + canonical_json(body)


def _signer_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:32]


def _utc_now() -> str:
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise AuditError(f"not an RFC 3339 time: {value!r}", reason="audit.bad_time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t


def _check_value(value: Any, path: str, depth: int = 0) -> None:
    if depth > 16:
        raise AuditError(f"event field {path} nested too deeply", reason="audit.invalid_event")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditError(f"event field {path} is not finite", reason="audit.invalid_event")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_value(v, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise AuditError(f"event field {path} has a non-string key",
                                 reason="audit.invalid_event")
            if _forbidden_name(k):
                raise AuditError(f"event field {path}.{k} is named like key material",
                                 reason="audit.forbidden_field")
            _check_value(v, f"{path}.{k}", depth + 1)
        return
    # bytes, bytearray, memoryview, key objects ...: never written
    raise AuditError(f"event field {path} has unsupported type {type(value).__name__}",
                     reason="audit.invalid_event")


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    """One record as written.  ``data`` is the full JSON object (including seq, prev, hash)."""

    seq: int
    time: str
    replica: str
    kind: str
    prev: str
    hash: str
    data: Mapping[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def to_json(self) -> str:
        return canonical_json(dict(self.data)).decode("utf-8")

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any]) -> AuditRecord:
        return cls(seq=obj["seq"], time=obj["time"], replica=obj["replica"], kind=obj["kind"],
                   prev=obj["prev"], hash=obj["hash"], data=dict(obj))


def _parse_line(raw: bytes) -> dict[str, Any]:
    """Strictly parse one line into a record dict (``AuditError`` reason ``audit.parse``)."""
    if len(raw) > MAX_LINE:
        raise AuditError("record too long", reason="audit.parse")
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        raise AuditError("record is not valid UTF-8 JSON", reason="audit.parse") from None
    if not isinstance(obj, dict):
        raise AuditError("record is not a JSON object", reason="audit.parse")
    for name in _REQUIRED:
        if name not in obj:
            raise AuditError(f"record lacks {name!r}", reason="audit.parse")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise AuditError("seq must be a positive integer", reason="audit.parse")
    for name in ("time", "replica", "kind", "prev", "hash"):
        if not isinstance(obj[name], str):
            raise AuditError(f"{name} must be a string", reason="audit.parse")
    if obj["kind"] not in ALL_KINDS:
        raise AuditError("unknown record kind", reason="audit.parse")
    if _HEX64.fullmatch(obj["prev"]) is None or _HEX64.fullmatch(obj["hash"]) is None:
        raise AuditError("prev/hash must be 64 lower-case hex digits", reason="audit.parse")
    if obj["kind"] == "checkpoint":
        count = obj.get("count")
        if (not isinstance(count, int) or isinstance(count, bool) or count < 0
                or not isinstance(obj.get("sig"), str) or not isinstance(obj.get("signer"), str)):
            raise AuditError("checkpoint lacks count/sig/signer", reason="audit.parse")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _read_tail_line(fd: int, size: int) -> tuple[bytes, int]:
    """Return (last line without its newline, its start offset) of a file of ``size`` bytes
    that ends in a newline, reading backwards in blocks."""
    block = 64 * 1024
    buf = b""
    pos = size - 1  # the final newline is excluded
    while True:
        start = max(0, pos - block)
        buf = os.pread(fd, pos - start, start) + buf
        k = buf.rfind(b"\n")
        if k >= 0:
            return buf[k + 1:], start + k + 1
        if start == 0:
            return buf, 0
        if len(buf) > MAX_LINE:
            raise AuditError("last audit record is too long", reason="audit.corrupt_tail")
        pos = start


class AuditLog:
    """Append-only audit log writer.  See the module docstring for the format."""

    def __init__(self, path: str | os.PathLike[str], signing_key: nacl.signing.SigningKey, *,
                 replica: str, checkpoint_every: int = 100) -> None:
        if not isinstance(signing_key, nacl.signing.SigningKey):
            raise AuditError("signing_key must be a nacl.signing.SigningKey",
                             reason="audit.config")
        if not isinstance(replica, str) or not (0 < len(replica) <= 256):
            raise AuditError("replica must be a non-empty string", reason="audit.config")
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise AuditError("checkpoint_every must be >= 1", reason="audit.config")
        self.path = Path(path)
        self.replica = replica
        self.checkpoint_every = checkpoint_every
        self._sk = signing_key
        self._pk = bytes(signing_key.verify_key)
        self._signer = _signer_id(self._pk)
        self._lock = threading.RLock()
        # Group commit: records are written under ``_lock``; durability waits on ``_sync`` and
        # one fsync covers every record written before it (``_synced_seq``/``_synced_end``).
        self._sync = threading.Condition(threading.Lock())
        self._syncing = False
        self._synced_seq = 0
        self._synced_end = 0
        self._written_end = 0
        self._broken = False
        self._closed = False
        self._fd = -1
        self._open()

    def __repr__(self) -> str:
        return f"AuditLog(path={str(self.path)!r}, replica={self.replica!r}, seq={self._seq})"

    def __reduce__(self) -> Any:
        raise TypeError("AuditLog holds a signing key and cannot be pickled")

    @property
    def public_key(self) -> bytes:
        return self._pk

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._prev

    # ---- open / resume ----------------------------------------------------------------------
    def _open(self) -> None:
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o640)
        except OSError as exc:
            raise AuditError(f"cannot open audit log ({exc.strerror})",
                             reason="audit.unwritable") from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise AuditError("audit log is in use by another writer",
                                         reason="audit.locked") from None
                    raise
            size = os.fstat(fd).st_size
            self._seq = 0
            self._prev = GENESIS_PREV
            self._since_checkpoint = 0
            if size > 0:
                self._resume(fd, size)
            if created:
                self._fsync_dir()
        except AuditError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise AuditError(f"cannot read audit log ({exc.strerror})",
                             reason="audit.unwritable") from None
        self._fd = fd
        self._synced_seq = self._seq
        self._synced_end = self._written_end = os.fstat(fd).st_size

    def _resume(self, fd: int, size: int) -> None:
        last = os.pread(fd, 1, size - 1)
        if last != b"\n":
            raise AuditError("audit log ends in a partial record (crash or tampering); "
                             "refusing to append: run 'weightseal audit verify'",
                             reason="audit.corrupt_tail")
        line, _ = _read_tail_line(fd, size)
        try:
            rec = _parse_line(line)
        except AuditError:
            raise AuditError("last audit record is malformed; refusing to append",
                             reason="audit.corrupt_tail") from None
        if record_hash(rec) != rec["hash"] or canonical_json(rec) != line:
            raise AuditError("last audit record fails its hash; refusing to append",
                             reason="audit.corrupt_tail")
        if rec["kind"] == "checkpoint":
            if not self._check_sig(rec):
                raise AuditError("last checkpoint is not signed by this service key",
                                 reason="audit.corrupt_tail")
            self._since_checkpoint = 0
        else:
            # Unknown number of unsigned records before it: make sure close() signs them.
            self._since_checkpoint = 1
        self._seq = int(rec["seq"])
        self._prev = str(rec["hash"])

    def _check_sig(self, rec: Mapping[str, Any]) -> bool:
        try:
            sig = bytes.fromhex(rec["sig"])
            nacl.signing.VerifyKey(self._pk).verify(_checkpoint_message(rec), sig)
        except (ValueError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True

    def _fsync_dir(self) -> None:
        with contextlib.suppress(OSError):
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # ---- writing ----------------------------------------------------------------------------
    def append(self, event: Mapping[str, Any]) -> AuditRecord:
        """Write one event record (durably) and return it; maybe follow it with a checkpoint."""
        if not isinstance(event, Mapping):
            raise AuditError("event must be a mapping", reason="audit.invalid_event")
        kind = event.get("kind")
        if kind not in EVENT_KINDS:
            raise AuditError("event kind must be challenge, grant, deny or admin",
                             reason="audit.invalid_event")
        fields: dict[str, Any] = {}
        for k, v in event.items():
            if not isinstance(k, str):
                raise AuditError("event field names must be strings", reason="audit.invalid_event")
            if _forbidden_name(k):
                raise AuditError(f"event field {k!r} is named like key material",
                                 reason="audit.forbidden_field")
            if k in _RESERVED:
                raise AuditError(f"event field {k!r} is reserved", reason="audit.reserved_field")
            _check_value(v, k)
            fields[k] = v
        with self._lock:
            rec = self._write(fields)
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                self._checkpoint()
        self._wait_durable(rec.seq)
        return rec

    def _wait_durable(self, seq: int) -> None:
        """Return once an fsync covers record ``seq`` (group commit: the first waiter runs one
        fsync for everything written so far, the others wait for it).  On failure the log is
        marked broken, truncated back to the last durable record, and every waiter whose
        record was not durable gets ``audit.unwritable``."""
        with self._sync:
            while self._synced_seq < seq:
                if self._broken:
                    raise AuditError("audit record not written; failing closed",
                                     reason="audit.unwritable")
                if self._syncing:
                    self._sync.wait()
                    continue
                self._syncing = True
                with self._lock:  # the bytes of every record up to target are in the file
                    target_seq, target_end, fd = self._seq, self._written_end, self._fd
                self._sync.release()
                ok = True
                try:
                    os.fsync(fd)
                except Exception:  # noqa: BLE001 - anything here means "not durable"
                    ok = False
                finally:
                    self._sync.acquire()
                self._syncing = False
                with self._lock:
                    if ok and not self._broken:
                        self._synced_seq = max(self._synced_seq, target_seq)
                        self._synced_end = max(self._synced_end, target_end)
                    elif not self._broken:
                        self._broken = True
                        with contextlib.suppress(Exception):
                            os.ftruncate(self._fd, self._synced_end)
                            os.fsync(self._fd)
                self._sync.notify_all()

    def checkpoint(self) -> AuditRecord | None:
        """Write a signed checkpoint now (if any record is unsigned); return it."""
        with self._lock:
            if self._since_checkpoint == 0:
                return None
            rec = self._checkpoint()
        self._wait_durable(rec.seq)
        return rec

    def _checkpoint(self) -> AuditRecord:
        rec = self._write({"kind": "checkpoint", "count": self._seq, "signer": self._signer},
                          sign=True)
        self._since_checkpoint = 0
        return rec

    def _write(self, fields: dict[str, Any], *, sign: bool = False) -> AuditRecord:
        if self._closed:
            raise AuditError("audit log is closed", reason="audit.unwritable")
        if self._broken:
            raise AuditError("audit log failed earlier; restart the service",
                             reason="audit.unwritable")
        record: dict[str, Any] = dict(fields)
        record["seq"] = self._seq + 1
        record["time"] = _utc_now()
        record["replica"] = self.replica
        record["prev"] = self._prev
        try:
            if sign:
                record["sig"] = self._sk.sign(_checkpoint_message(record)).signature.hex()
            record["hash"] = record_hash(record)
            line = canonical_json(record) + b"\n"
        except (TypeError, ValueError) as exc:
            raise AuditError(f"event not serialisable ({type(exc).__name__})",
                             reason="audit.invalid_event") from None
        if len(line) > MAX_LINE:
            raise AuditError("audit record too long", reason="audit.invalid_event")
        start = -1
        try:
            start = os.fstat(self._fd).st_size
            view = memoryview(line)
            while view:
                n = os.write(self._fd, view)
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                view = view[n:]
        except Exception as exc:  # noqa: BLE001 - anything here means "not durably written"
            self._broken = True
            if start >= 0:
                with contextlib.suppress(Exception):
                    os.ftruncate(self._fd, self._synced_end)  # drop every non-durable record
                    os.fsync(self._fd)
            msg = getattr(exc, "strerror", None) or type(exc).__name__
            raise AuditError(f"audit record not written ({msg}); failing closed",
                             reason="audit.unwritable") from None
        self._seq = record["seq"]
        self._prev = record["hash"]
        self._written_end = start + len(line)
        return AuditRecord.from_mapping(record)

    def close(self) -> None:
        """Sign the unsigned tail (if the log is healthy) and release the file."""
        with self._lock:
            if self._closed:
                return
            err: AuditError | None = None
            try:
                if not self._broken and self._since_checkpoint > 0:
                    self._checkpoint()
                if not self._broken and self._fd >= 0 and self._written_end > self._synced_end:
                    os.fsync(self._fd)
            except AuditError as exc:
                err = exc
            except OSError as exc:
                err = AuditError(f"audit log not synced on close ({exc.strerror})",
                                 reason="audit.unwritable")
            finally:
                self._closed = True
                if self._fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(self._fd)  # releases the flock
                    self._fd = -1
            if err is not None:
                raise err

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- reading and verification ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding.  ``line`` is 1-based; ``seq`` is the record's seq if it could be read."""

    line: int
    seq: int | None
    code: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = (f"line {self.line}" if self.line else "anchor") + (
            f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.code}: {self.message}"


@dataclasses.dataclass
class VerifyResult:
    ok: bool
    problems: list[Problem]
    records: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_PREV
    last_signed_seq: int = 0
    last_checkpoint: dict[str, Any] | None = None  # the last valid signed checkpoint record

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def load_public_key(value: str | bytes | os.PathLike[str]) -> bytes:
    """An Ed25519 public key from raw 32 bytes, hex, base64, a PEM ``PUBLIC KEY``, or a file
    holding any of these."""
    data: bytes
    if isinstance(value, bytes):
        data = value
    else:
        s = os.fspath(value)
        if re.fullmatch(r"[0-9a-fA-F]{64}", s.strip()):
            return bytes.fromhex(s.strip())
        try:
            data = Path(s).read_bytes()
        except OSError as exc:
            raise AuditError(f"cannot read public key {s!r} ({exc.strerror})",
                             reason="audit.bad_key") from None
    if len(data) == 32:
        return data
    text = data.decode("ascii", "replace").strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    if "BEGIN PUBLIC KEY" in text:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise AuditError("public key PEM not readable", reason="audit.bad_key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise AuditError("public key is not Ed25519", reason="audit.bad_key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw
    raise AuditError("public key must be 32 bytes: raw, hex, base64 or PEM",
                     reason="audit.bad_key")


def _iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes without newline, ended_with_newline)"""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise AuditError(f"cannot read audit log ({exc.strerror})", reason="audit.unreadable") from None
    with f:
        n = 0
        while True:
            raw = f.readline(MAX_LINE + 2)
            if not raw:
                return
            n += 1
            complete = raw.endswith(b"\n")
            if not complete and len(raw) > MAX_LINE:
                # skip the rest of an over-long line
                while raw and not raw.endswith(b"\n"):
                    raw = f.readline(MAX_LINE + 2)
                yield n, b"\x00" * (MAX_LINE + 1), True
                continue
            yield n, raw[:-1] if complete else raw, complete


def _valid_signature(vk: nacl.signing.VerifyKey, rec: Mapping[str, Any]) -> bool:
    try:
        vk.verify(_checkpoint_message(rec), bytes.fromhex(rec["sig"]))
    except (ValueError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def load_anchors(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The checkpoint records in an anchor file (JSON Lines, as ``weightseal audit anchor``
    writes them).  Each must be a well-formed checkpoint whose hash matches its content; the
    signature is checked by :func:`verify_log` under the key it is given.  Errors:
    ``AuditError`` with reason ``audit.anchor_invalid``."""
    anchors: list[dict[str, Any]] = []
    try:
        for lineno, raw, _complete in _iter_lines(path):
            if not raw.strip():
                continue
            try:
                rec = _parse_line(raw.strip())
            except AuditError as exc:
                raise AuditError(f"anchor line {lineno}: {str(exc).split(': ', 1)[-1]}",
                                 reason="audit.anchor_invalid") from None
            if rec["kind"] != "checkpoint" or record_hash(rec) != rec["hash"]:
                raise AuditError(f"anchor line {lineno} is not an intact checkpoint record",
                                 reason="audit.anchor_invalid")
            anchors.append(rec)
    except AuditError as exc:
        if exc.reason == "audit.unreadable":
            raise AuditError(f"cannot read anchor file {os.fspath(path)!r}",
                             reason="audit.anchor_invalid") from None
        raise
    if not anchors:
        raise AuditError("anchor file holds no checkpoint record", reason="audit.anchor_invalid")
    return anchors


def latest_anchor(path: str | os.PathLike[str], public_key: bytes) -> dict[str, Any]:
    """The newest valid signed checkpoint of a log that verifies, to be kept off the host as an
    anchor.  Refuses a log that does not verify (``audit.invalid``) or has no signed checkpoint
    yet (``audit.no_checkpoint``): an anchor must only ever vouch for an intact prefix."""
    res = verify_log(path, public_key)
    if not res.ok:
        raise AuditError(f"the log does not verify ({len(res.errors)} error(s)); not anchoring it",
                         reason="audit.invalid")
    if res.last_checkpoint is None:
        raise AuditError("the log has no signed checkpoint yet", reason="audit.no_checkpoint")
    return res.last_checkpoint


def verify_log(path: str | os.PathLike[str], public_key: bytes, *,
               strict: bool = False, anchors: Sequence[Mapping[str, Any]] = ()) -> VerifyResult:
    """Verify the whole log offline: every hash, every chain link, seq continuity and every
    checkpoint signature under ``public_key`` (32 raw bytes); and that the log still holds every
    one of ``anchors`` (checkpoint records kept elsewhere, see :func:`load_anchors`)."""
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != 32:
        raise AuditError("public key must be 32 raw bytes", reason="audit.bad_key")
    vk = nacl.signing.VerifyKey(bytes(public_key))
    signer = _signer_id(bytes(public_key))
    problems: list[Problem] = []
    res = VerifyResult(ok=False, problems=problems)
    want: dict[int, set[str]] = {}  # anchored seq -> anchored hashes
    for a in anchors:
        seq_a = a.get("seq")
        if (a.get("kind") != "checkpoint" or not isinstance(seq_a, int) or isinstance(seq_a, bool)
                or not isinstance(a.get("sig"), str) or record_hash(a) != a.get("hash")
                or a.get("count") != seq_a - 1 or not _valid_signature(vk, a)):
            problems.append(Problem(0, seq_a if isinstance(seq_a, int) else None,
                                    "audit.anchor_invalid",
                                    "anchor is not a checkpoint signed by the given public key"))
            continue
        want.setdefault(seq_a, set()).add(str(a["hash"]))
    seen: dict[int, str] = {}  # seq -> computed hash, for anchored seqs only
    expected_seq = 1
    expected_prev = GENESIS_PREV
    last_signed_line = 0
    last_line = 0
    tail_start: tuple[int, int | None] | None = None  # first record after the last good checkpoint

    for lineno, raw, complete in _iter_lines(path):
        last_line = lineno
        if not complete:
            problems.append(Problem(lineno, None, "audit.parse",
                                    "last line is incomplete (truncated write or tampering)"))
            continue
        try:
            rec = _parse_line(raw)
        except AuditError as exc:
            problems.append(Problem(lineno, None, "audit.parse", str(exc).split(": ", 1)[-1]))
            continue
        seq = int(rec["seq"])
        res.records += 1
        if seq in want and seq not in seen:
            seen[seq] = record_hash(rec)
            if seen[seq] not in want[seq]:
                problems.append(Problem(lineno, seq, "audit.anchor_mismatch",
                                        "the record at the anchored seq is not the anchored "
                                        "checkpoint (log rewritten or forked)"))
        if record_hash(rec) != rec["hash"]:
            problems.append(Problem(lineno, seq, "audit.hash",
                                    "record content does not match its hash (edited)"))
        elif canonical_json(rec) != raw:
            # Same parsed content but other bytes: reformatted, or duplicate keys that another
            # JSON reader might resolve differently.  Only canonical lines are accepted.
            problems.append(Problem(lineno, seq, "audit.hash",
                                    "record is not in canonical JSON form (reformatted or "
                                    "duplicate keys)"))
        if rec["prev"] != expected_prev:
            problems.append(Problem(lineno, seq, "audit.chain",
                                    "prev does not match the hash of the preceding record "
                                    "(record dropped, inserted or reordered)"))
        if seq != expected_seq:
            problems.append(Problem(lineno, seq, "audit.seq",
                                    f"expected seq {expected_seq}, found {seq}"))
        if rec["kind"] == "checkpoint":
            res.checkpoints += 1
            if not _valid_signature(vk, rec):
                problems.append(Problem(lineno, seq, "audit.signature",
                                        "checkpoint signature does not verify under the given "
                                        "public key" + ("" if rec["signer"] == signer
                                                        else " (signed by another key)")))
            elif rec["count"] != seq - 1:
                problems.append(Problem(lineno, seq, "audit.seq",
                                        "checkpoint count does not match its position"))
            else:
                last_signed_line = lineno
                res.last_signed_seq = seq
                res.last_checkpoint = rec
                tail_start = None
        elif tail_start is None:
            tail_start = (lineno, seq)
        expected_seq = seq + 1
        expected_prev = str(rec["hash"])
        res.last_seq = seq
        res.last_hash = expected_prev

    if tail_start is not None and tail_start[0] > last_signed_line:
        n = last_line - tail_start[0] + 1
        problems.append(Problem(tail_start[0], tail_start[1], "audit.unsigned_tail",
                                f"{n} line(s) after the last valid checkpoint are not signed "
                                "(could be truncated or rewritten without trace)",
                                severity="error" if strict else "warning"))
    for seq_a, hashes in sorted(want.items()):
        if seq_a not in seen:
            problems.append(Problem(last_line + 1, seq_a, "audit.anchor_missing",
                                    f"the log ends at seq {res.last_seq}, before the anchored "
                                    f"checkpoint (truncated)" if seq_a > res.last_seq else
                                    "no readable record at the anchored seq"))
        elif len(hashes) > 1:  # two valid signed checkpoints for one seq: the service forked
            problems.append(Problem(0, seq_a, "audit.anchor_mismatch",
                                    "anchors disagree: two different signed checkpoints for "
                                    "this seq"))
    res.ok = not any(p.severity == "error" for p in problems)
    return res


def iter_records(path: str | os.PathLike[str], *, model: str | None = None,
                 caller: str | None = None, decision: str | None = None,
                 since: str | _dt.datetime | None = None, until: str | _dt.datetime | None = None,
                 kind: str | None = None, include_checkpoints: bool = True) -> Iterator[AuditRecord]:
    """Records in file order, filtered.  ``decision`` matches the ``decision`` field or the kind
    (``grant``/``deny``); ``since``/``until`` are RFC 3339 (inclusive / exclusive).  Malformed
    lines raise ``AuditError(reason="audit.parse")`` with their line number; use
    :func:`verify_log` to check integrity."""
    t0 = _parse_time(since) if isinstance(since, str) else since
    t1 = _parse_time(until) if isinstance(until, str) else until
    if t0 is not None and t0.tzinfo is None:
        t0 = t0.replace(tzinfo=_dt.UTC)
    if t1 is not None and t1.tzinfo is None:
        t1 = t1.replace(tzinfo=_dt.UTC)
    filtering = any(x is not None for x in (model, caller, decision, kind))
    for lineno, raw, complete in _iter_lines(path):
        if not complete and not raw.strip():
            continue
        try:
            rec = _parse_line(raw)
        except AuditError as exc:
            raise AuditError(f"line {lineno}: {str(exc).split(': ', 1)[-1]}",
                             reason="audit.parse") from None
        if rec["kind"] == "checkpoint" and (filtering or not include_checkpoints):
            continue
        if model is not None and rec.get("model") != model:
            continue
        if caller is not None and rec.get("caller") != caller:
            continue
        if decision is not None and rec.get("decision", rec["kind"]) != decision:
            continue
        if kind is not None and rec["kind"] != kind:
            continue
        if t0 is not None or t1 is not None:
            try:
                t = _parse_time(rec["time"])
            except AuditError:
                raise AuditError(f"line {lineno}: bad time", reason="audit.parse") from None
            if t0 is not None and t < t0:
                continue
            if t1 is not None and t >= t1:
                continue
        yield AuditRecord.from_mapping(rec)
