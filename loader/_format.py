"""Low-level framing of sealed format v1 (the "hazmat" layer): constants, byte layouts, key
derivation, nonces.  The layout is documented in FORMAT.md next to this file; the friendly API
lives in ``_seal.py`` / ``_open.py``.

Every parser here works on untrusted bytes and raises only ``IntegrityError`` (load side) or
``SealedFormatError`` (owner side, parsing the *source* safetensors files).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._errors import IntegrityError, SealedFormatError

SHARD_MAGIC = b"\x89WSEAL\r\n"
MANIFEST_MAGIC = b"\x89WSMAN\r\n"
FORMAT_VERSION = 1
FLAG_CONCEALED = 0x0001
KNOWN_FLAGS = FLAG_CONCEALED  # v1: every flag is critical; unknown bits are rejected
PREAMBLE = struct.Struct("<8sHHB3s32sQQII")  # 72 bytes
PREAMBLE_LEN = PREAMBLE.size
assert PREAMBLE_LEN == 72
TAG_LEN = 16
DATA_ALIGN = 4096
MIN_CHUNK_SHIFT = 12  # 4 KiB
MAX_CHUNK_SHIFT = 30  # 1 GiB
DEFAULT_CHUNK_SIZE = 4 << 20
# Hard caps.  safetensors caps its JSON header at 100 MB; ours adds a little framing.
MAX_ST_HEADER = 100_000_000
MAX_HEADER_LEN = MAX_ST_HEADER + 1_048_576
MAX_META_LEN = 65_536
MAX_MANIFEST_BODY = 64 << 20
MANIFEST_HEAD = struct.Struct("<8sHHI")  # 16 bytes
MANIFEST_TAG_LEN = 32
MANIFEST_NAME = "weightseal.manifest"
SEALED_SUFFIX = ".sealed"
INDEX_NAME = "model.safetensors.index.json"

LABEL_SHARD = b"weightseal/v1/shard"
LABEL_MANIFEST = b"weightseal/v1/manifest"
LABEL_FILE = b"weightseal/v1/file"

# safetensors dtype -> (itemsize, torch dtype attribute name)
DTYPES: dict[str, tuple[int, str]] = {
    "BOOL": (1, "bool"),
    "U8": (1, "uint8"),
    "I8": (1, "int8"),
    "I16": (2, "int16"),
    "U16": (2, "uint16"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "I32": (4, "int32"),
    "U32": (4, "uint32"),
    "F32": (4, "float32"),
    "F64": (8, "float64"),
    "I64": (8, "int64"),
    "U64": (8, "uint64"),
    "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"),
    "F8_E8M0": (1, "float8_e8m0fnu"),
    "C64": (8, "complex64"),
}


def lp(b: bytes) -> bytes:
    """Length-prefixed field (u32 big-endian length), so no two inputs encode alike."""
    return struct.pack(">I", len(b)) + b


# --------------------------------------------------------------------------------------------
# safetensors header


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offset in the data region
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass(frozen=True, slots=True)
class StHeader:
    raw: bytes  # the exact JSON header bytes as found in the file (padding included)
    tensors: dict[str, TensorInfo]  # in data-offset order
    metadata: dict[str, str] | None
    data_len: int


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key")
        out[k] = v
    return out


def parse_st_header(raw: bytes, data_len: int | None, err: type[Exception]) -> StHeader:
    """Parse and strictly validate a safetensors JSON header.  Raises ``err`` only.

    Rules (as safetensors enforces them): JSON object; each entry has a known dtype, a shape of
    non-negative ints, ``data_offsets`` [begin, end] with end-begin == numel*itemsize; the
    tensors tile the data region exactly with no gap or overlap; ``__metadata__`` maps str->str.
    """
    def fail() -> Exception:
        if err is IntegrityError:
            return IntegrityError()
        return SealedFormatError("not a valid safetensors header", reason="loader.source.header")

    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_dupes)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail() from None
    if not isinstance(obj, dict):
        raise fail()
    metadata = obj.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise fail()
    infos: list[TensorInfo] = []
    for name, ent in obj.items():
        if not isinstance(ent, dict) or set(ent) != {"dtype", "shape", "data_offsets"}:
            raise fail()
        dt, shape, offs = ent["dtype"], ent["shape"], ent["data_offsets"]
        if not isinstance(dt, str) or dt not in DTYPES:
            raise fail()
        if not isinstance(shape, list) or len(shape) > 64 or not all(type(d) is int and 0 <= d < 2**62 for d in shape):
            raise fail()
        if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int and 0 <= o < 2**63 for o in offs):
            raise fail()
        numel = math.prod(shape)
        if offs[1] < offs[0] or offs[1] - offs[0] != numel * DTYPES[dt][0]:
            raise fail()
        infos.append(TensorInfo(name, dt, tuple(shape), offs[0], offs[1]))
    infos.sort(key=lambda t: (t.begin, t.end))
    pos = 0
    for t in infos:
        if t.begin != pos:
            raise fail()
        pos = t.end
    if data_len is not None and pos != data_len:
        raise fail()
    return StHeader(raw, {t.name: t for t in infos}, metadata, pos)


# --------------------------------------------------------------------------------------------
# sealed shard framing


@dataclass(frozen=True, slots=True)
class Preamble:
    flags: int
    chunk_shift: int
    salt: bytes
    data_offset: int
    data_len: int
    header_len: int

    @property
    def chunk_size(self) -> int:
        return 1 << self.chunk_shift

    @property
    def n_chunks(self) -> int:
        return n_chunks(self.data_len, self.chunk_size)

    @property
    def concealed(self) -> bool:
        return bool(self.flags & FLAG_CONCEALED)

    def pack(self) -> bytes:
        return PREAMBLE.pack(SHARD_MAGIC, FORMAT_VERSION, self.flags, self.chunk_shift, b"\0\0\0",
                             self.salt, self.data_offset, self.data_len, self.header_len, 0)


def n_chunks(data_len: int, chunk_size: int) -> int:
    """At least one chunk: an empty shard still carries one (empty, final) authenticated chunk."""
    return max(1, -(-data_len // chunk_size))


def data_offset_for(header_len: int, nch: int) -> int:
    end = PREAMBLE_LEN + header_len + TAG_LEN * nch
    return -(-end // DATA_ALIGN) * DATA_ALIGN


def parse_preamble(b: bytes, file_size: int) -> Preamble:
    """Structural checks only (the header tag is checked next, before any allocation)."""
    if len(b) != PREAMBLE_LEN:
        raise IntegrityError()
    magic, version, flags, shift, rsv, salt, doff, dlen, hlen, rsv2 = PREAMBLE.unpack(b)
    if magic != SHARD_MAGIC or version != FORMAT_VERSION or flags & ~KNOWN_FLAGS:
        raise IntegrityError()
    if rsv != b"\0\0\0" or rsv2 != 0 or not MIN_CHUNK_SHIFT <= shift <= MAX_CHUNK_SHIFT:
        raise IntegrityError()
    if hlen > MAX_HEADER_LEN or hlen < TAG_LEN + 4 or PREAMBLE_LEN + hlen > file_size:
        raise IntegrityError()
    p = Preamble(flags, shift, salt, doff, dlen, hlen)
    if doff != data_offset_for(hlen, n_chunks(dlen, 1 << shift)) or doff + dlen != file_size:
        raise IntegrityError()
    return p


def derive_shard_keys(dek: bytes | bytearray, salt: bytes, model_id: str, shard: str) -> tuple[AESGCM, AESGCM, bytes]:
    """HKDF-SHA256(DEK, salt, info = label || lp(model id) || lp(shard name)) -> 64 bytes:
    [0:32] chunk key, [32:64] header key.  Returns (chunk AEAD, header AEAD, chunk key bytes)."""
    okm = HKDF(hashes.SHA256(), 64, salt, LABEL_SHARD + lp(model_id.encode()) + lp(shard.encode())).derive(dek)
    return AESGCM(okm[:32]), AESGCM(okm[32:]), okm[:32]


HEADER_NONCE = bytes(12)  # the header key is used exactly once


def chunk_nonce(index: int, final: bool) -> bytes:
    """STREAM nonce: 3 zero bytes || u64 big-endian chunk index || final flag (0x01 last)."""
    return b"\0\0\0" + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00")


def build_inner_header(model_id: str, model_version: int, shard: str, st_raw: bytes) -> bytes:
    meta = json.dumps({"model_id": model_id, "model_version": model_version, "shard": shard},
                      sort_keys=True, separators=(",", ":")).encode()
    return lp(meta) + st_raw


def seal_header(header_aead: AESGCM, pre: bytes, inner: bytes, concealed: bool) -> bytes:
    if concealed:
        return header_aead.encrypt(HEADER_NONCE, inner, pre)
    return inner + header_aead.encrypt(HEADER_NONCE, b"", pre + inner)


def open_header(header_aead: AESGCM, pre: bytes, body: bytes, concealed: bool) -> bytes:
    try:
        if concealed:
            return header_aead.decrypt(HEADER_NONCE, body, pre)
        inner, tag = body[:-TAG_LEN], body[-TAG_LEN:]
        header_aead.decrypt(HEADER_NONCE, tag, pre + inner)
        return inner
    except InvalidTag:
        raise IntegrityError() from None


def split_inner(inner: bytes, err: type[Exception] = IntegrityError) -> tuple[dict[str, Any], bytes]:
    """inner = lp(meta JSON) || original safetensors JSON header bytes."""
    def fail() -> Exception:
        if err is IntegrityError:
            return IntegrityError()
        return SealedFormatError("malformed sealed header", reason="loader.sealed.header")

    if len(inner) < 4:
        raise fail()
    (mlen,) = struct.unpack(">I", inner[:4])
    if mlen > MAX_META_LEN or 4 + mlen > len(inner):
        raise fail()
    try:
        meta = json.loads(inner[4:4 + mlen].decode("utf-8"), object_pairs_hook=_no_dupes)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise fail() from None
    if (not isinstance(meta, dict) or set(meta) != {"model_id", "model_version", "shard"}
            or not isinstance(meta["model_id"], str) or type(meta["model_version"]) is not int
            or not isinstance(meta["shard"], str)):
        raise fail()
    return meta, inner[4 + mlen:]


def chunk_aad(header_digest: bytes) -> bytes:
    return header_digest  # SHA-256(preamble || header body): binds every field of the header


# --------------------------------------------------------------------------------------------
# manifest


def derive_manifest_keys(dek: bytes | bytearray, salt: bytes, model_id: str, model_version: int) -> tuple[bytes, AESGCM]:
    okm = HKDF(hashes.SHA256(), 64, salt,
               LABEL_MANIFEST + lp(model_id.encode()) + struct.pack(">Q", model_version)).derive(dek)
    return okm[:32], AESGCM(okm[32:])


def file_mac(mac_key: bytes, name: str, content_digest_ctx: Any) -> str:
    """Keyed MAC of a pass-through file: HMAC(mac_key, label || lp(name) || SHA-256(content)).
    The plain SHA-256 is only an intermediate; what is stored is the keyed MAC."""
    return hmac.new(mac_key, LABEL_FILE + lp(name.encode()) + content_digest_ctx.digest(), hashlib.sha256).hexdigest()


def pack_manifest(body: dict[str, Any], mac_key: bytes) -> bytes:
    bj = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    if len(bj) > MAX_MANIFEST_BODY:
        raise SealedFormatError("manifest too large", reason="loader.args")
    head = MANIFEST_HEAD.pack(MANIFEST_MAGIC, FORMAT_VERSION, 0, len(bj)) + bj
    return head + hmac.new(mac_key, head, hashlib.sha256).digest()


def split_manifest(data: bytes) -> tuple[bytes, dict[str, Any], bytes]:
    """Parse (unauthenticated).  Returns (authenticated bytes, body, tag)."""
    if len(data) < MANIFEST_HEAD.size + MANIFEST_TAG_LEN:
        raise IntegrityError()
    magic, version, flags, blen = MANIFEST_HEAD.unpack(data[:MANIFEST_HEAD.size])
    if magic != MANIFEST_MAGIC or version != FORMAT_VERSION or flags != 0 or blen > MAX_MANIFEST_BODY:
        raise IntegrityError()
    if len(data) != MANIFEST_HEAD.size + blen + MANIFEST_TAG_LEN:
        raise IntegrityError()
    signed = data[:MANIFEST_HEAD.size + blen]
    try:
        body = json.loads(signed[MANIFEST_HEAD.size:].decode("utf-8"), object_pairs_hook=_no_dupes)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise IntegrityError() from None
    if not isinstance(body, dict):
        raise IntegrityError()
    return signed, body, data[MANIFEST_HEAD.size + blen:]


def check_manifest_tag(signed: bytes, tag: bytes, mac_key: bytes) -> None:
    if not hmac.compare_digest(hmac.new(mac_key, signed, hashlib.sha256).digest(), tag):
        raise IntegrityError()
