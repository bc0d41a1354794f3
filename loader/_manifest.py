"""The model manifest: which shards (and pass-through files) make up one sealed model version.

``read_manifest`` gives the unauthenticated public view (anyone can read it: model id, version,
key reference, shard list).  ``authenticate_manifest`` checks its HMAC under a key derived from
the DEK and is what every load path calls first.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from . import _format as F
from ._errors import IntegrityError
from ._keys import DataKey, LocalKey

__all__ = ["Manifest", "ShardEntry", "FileEntry", "read_manifest"]

_HEX32 = re.compile(r"\A[0-9a-f]{64}\Z")
_MAX_ENTRIES = 100_000
_MAX_FILE_SIZE = 1 << 50


@dataclass(frozen=True, slots=True)
class ShardEntry:
    name: str  # original safetensors file name (bound into the shard key)
    file: str  # sealed file name in the model directory
    size: int  # sealed file size in bytes
    header_sha256: str  # SHA-256 of the sealed header bytes (preamble || header body)


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    size: int
    mac: str  # keyed MAC, never a plain digest


@dataclass(frozen=True, slots=True)
class Manifest:
    """Public view of a sealed model's manifest.  Nothing here is authenticated until
    ``authenticate_manifest`` (called by every load path) has checked the tag."""

    model_id: str
    model_version: int
    key_ref: dict[str, Any]
    shards: tuple[ShardEntry, ...]
    files: tuple[FileEntry, ...] = ()
    concealed: bool = False
    index: dict[str, Any] | None = None
    salt: bytes = field(default=b"", repr=False)
    signed: bytes = field(default=b"", repr=False, compare=False)
    tag: bytes = field(default=b"", repr=False, compare=False)

    def public_dict(self) -> dict[str, Any]:
        kr = dict(self.key_ref)
        return {"model_id": self.model_id, "model_version": self.model_version, "key_ref": kr,
                "concealed": self.concealed,
                "shards": [{"name": s.name, "file": s.file, "size": s.size} for s in self.shards],
                "files": [{"name": f.name, "size": f.size} for f in self.files],
                "index": None if self.index is None else {"name": self.index["name"], "encrypted": self.index["encrypted"]}}


def _safe_name(n: Any) -> str:
    if (not isinstance(n, str) or not 0 < len(n) <= 255 or "/" in n or "\\" in n or "\0" in n
            or n.startswith(".") or n == F.MANIFEST_NAME):
        raise IntegrityError()
    return n


def _int(v: Any, hi: int) -> int:
    if type(v) is not int or not 0 <= v <= hi:
        raise IntegrityError()
    return v


def parse_manifest(data: bytes) -> Manifest:
    signed, body, tag = F.split_manifest(data)
    try:
        if set(body) != {"model_id", "model_version", "salt", "key_ref", "concealed", "shards", "index", "files"}:
            raise IntegrityError()
        mid, ver, salt_hex = body["model_id"], body["model_version"], body["salt"]
        if not isinstance(mid, str) or not 0 < len(mid) <= 1024:
            raise IntegrityError()
        ver = _int(ver, 2**63 - 1)
        if not isinstance(salt_hex, str) or not _HEX32.match(salt_hex):
            raise IntegrityError()
        if not isinstance(body["key_ref"], dict) or not isinstance(body["concealed"], bool):
            raise IntegrityError()
        if not isinstance(body["shards"], list) or not isinstance(body["files"], list):
            raise IntegrityError()
        if len(body["shards"]) > _MAX_ENTRIES or len(body["files"]) > _MAX_ENTRIES:
            raise IntegrityError()
        shards = []
        for s in body["shards"]:
            if not isinstance(s, dict) or set(s) != {"name", "file", "size", "header_sha256"}:
                raise IntegrityError()
            name = _safe_name(s["name"])
            if s["file"] != name + F.SEALED_SUFFIX or not isinstance(s["header_sha256"], str) or not _HEX32.match(s["header_sha256"]):
                raise IntegrityError()
            shards.append(ShardEntry(name, s["file"], _int(s["size"], _MAX_FILE_SIZE), s["header_sha256"]))
        files = []
        for f in body["files"]:
            if not isinstance(f, dict) or set(f) != {"name", "size", "mac"}:
                raise IntegrityError()
            if not isinstance(f["mac"], str) or not _HEX32.match(f["mac"]):
                raise IntegrityError()
            files.append(FileEntry(_safe_name(f["name"]), _int(f["size"], _MAX_FILE_SIZE), f["mac"]))
        names = [s.file for s in shards] + [s.name for s in shards] + [f.name for f in files]
        if len(set(names)) != len(names) or not shards:
            raise IntegrityError()
        index = body["index"]
        if index is not None:
            if (not isinstance(index, dict) or set(index) != {"name", "encrypted", "data"}
                    or not isinstance(index["encrypted"], bool) or not isinstance(index["data"], str)):
                raise IntegrityError()
            _safe_name(index["name"])
            if index["name"] in names:
                raise IntegrityError()
        return Manifest(mid, ver, body["key_ref"], tuple(shards), tuple(files), body["concealed"],
                        index, bytes.fromhex(salt_hex), signed, tag)
    except (KeyError, TypeError, ValueError):
        raise IntegrityError() from None


def read_manifest(model_dir: str | os.PathLike[str]) -> Manifest:
    """The manifest's public, UNAUTHENTICATED view (model id, version, key_ref, shards).

    Use it to find out which key to ask for; never trust it before a load/verify succeeded.
    Raises IntegrityError if the file is missing or malformed."""
    p = Path(model_dir)
    if p.is_file():
        p = p.parent
    try:
        with open(p / F.MANIFEST_NAME, "rb") as fh:
            data = fh.read(F.MAX_MANIFEST_BODY + F.MANIFEST_HEAD.size + F.MANIFEST_TAG_LEN + 1)
    except OSError:
        raise IntegrityError() from None
    return parse_manifest(data)


@dataclass(slots=True)
class AuthenticatedManifest:
    manifest: Manifest
    dek: DataKey  # owned: wiped by close()
    mac_key: bytes
    index_aead: Any

    def close(self) -> None:
        self.dek.wipe()

    def index_bytes(self) -> bytes | None:
        idx = self.manifest.index
        if idx is None:
            return None
        try:
            raw = base64.b64decode(idx["data"], validate=True)
            if idx["encrypted"]:
                return bytes(self.index_aead.decrypt(F.HEADER_NONCE, raw, F.LABEL_MANIFEST + b"/index"))
            return raw
        except (binascii.Error, ValueError, InvalidTag):
            raise IntegrityError() from None


def resolve_dek(m: Manifest, key: DataKey | LocalKey) -> DataKey:
    if isinstance(key, LocalKey):
        return key.unwrap_dek(m.key_ref, m.model_id, m.model_version)
    if isinstance(key, DataKey):
        return DataKey(key._material())
    raise TypeError("key must be a DataKey or a LocalKey")


def authenticate_manifest(m: Manifest, key: DataKey | LocalKey, *, expected_model_id: str | None = None,
                          expected_model_version: int | None = None) -> AuthenticatedManifest:
    dek = resolve_dek(m, key)
    try:
        mac_key, index_aead = F.derive_manifest_keys(dek._material(), m.salt, m.model_id, m.model_version)
        F.check_manifest_tag(m.signed, m.tag, mac_key)
        if expected_model_id is not None and m.model_id != expected_model_id:
            raise IntegrityError()
        if expected_model_version is not None and m.model_version != expected_model_version:
            raise IntegrityError()
    except BaseException:
        dek.wipe()
        raise
    return AuthenticatedManifest(m, dek, mac_key, index_aead)
