"""Release policies: a versioned document, its canonical form and digest, and deny-by-default
evaluation against verified claims.

The document reference is in ``attest/README.md`` ("Policy document").  In short::

    version: 1
    model_versions: [1, 2]          # releasable model versions; [] releases nothing
    profiles:                       # any one matching profile allows release
      - platform: snp               # snp | tdx | mock
        measurements: [<96 hex>]    # required, non-empty
        min_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}
        gpu: {required: true, count: 1, driver_versions: ["550.90.07"]}

Rules:
* Parsing is strict: unknown keys, unknown versions, wrong types (``true`` for a number, a
  number for a hex string), bad hex lengths and duplicate keys all raise ``PolicyFormatError``
  (``policy.invalid``).
* Evaluation is deny-by-default: a profile matches only if every rule passes; an empty allowlist
  matches nothing; a minimum a claim does not report fails.  When nothing matches,
  ``PolicyDenied.reason`` is ``policy.<rule>`` of the most specific failure (the profile that
  got furthest; ties go to the lowest index) and ``.rule`` is ``profiles[i].<rule>``.
* The canonical form is the normalised document (defaults filled in, hex lower-case) as JSON
  with sorted keys and no whitespace; ``digest`` is ``sha256:<hex>`` of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ._claims import (
    TDX_TCB_STATUSES,
    Claims,
    GpuClaims,
    MockClaims,
    Platform,
    SnpClaims,
    SnpTcb,
    TdxClaims,
)
from ._errors import PolicyDenied, PolicyFormatError

__all__ = [
    "POLICY_VERSION",
    "Policy",
    "Profile",
    "SnpRules",
    "TdxRules",
    "MockRules",
    "GpuRules",
    "SnpMinTcb",
    "Decision",
    "evaluate",
    "policy_from_claims",
]

POLICY_VERSION = 1
MAX_POLICY_BYTES = 1 << 20
MAX_LIST = 4096

_SNP_SIGNING_KEYS = ("vcek", "vlek")
_SNP_PRODUCTS = ("Milan", "Genoa", "Turin")
_TDX_TCB_STATUSES = TDX_TCB_STATUSES


# ---------------------------------------------------------------------------------------------
# strict field readers


def _fail(where: str, msg: str) -> NoReturn:
    raise PolicyFormatError(f"{where}: {msg}", reason="policy.invalid")


def _check_keys(d: Mapping[str, Any], where: str, required: Sequence[str], optional: Sequence[str]) -> None:
    for k in d:
        if not isinstance(k, str):
            _fail(where, f"non-string key {k!r}")
        if k not in required and k not in optional:
            _fail(where, f"unknown field {k!r}")
    for k in required:
        if k not in d:
            _fail(where, f"missing required field {k!r}")


def _mapping(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        _fail(where, "must be a mapping")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list | tuple):
        _fail(where, "must be a list")
    if len(v) > MAX_LIST:
        _fail(where, f"more than {MAX_LIST} entries")
    return list(v)


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        _fail(where, "must be true or false")
    return v


def _int(v: Any, where: str, lo: int = 0, hi: int = (1 << 64) - 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(where, "must be an integer")
    if not lo <= v <= hi:
        _fail(where, f"must be in [{lo}, {hi}]")
    return v


def _hex(v: Any, where: str, nbytes: int) -> str:
    if not isinstance(v, str):
        _fail(where, f"must be a quoted hex string of {nbytes} bytes")
    if len(v) != 2 * nbytes or any(c not in "0123456789abcdefABCDEF" for c in v):
        _fail(where, f"must be exactly {2 * nbytes} hex digits")
    return v.lower()


def _hexlist(v: Any, where: str, nbytes: int) -> tuple[str, ...]:
    items = _list(v, where)
    return tuple(_hex(x, f"{where}[{i}]", nbytes) for i, x in enumerate(items))


def _str(v: Any, where: str, choices: Sequence[str] | None = None, maxlen: int = 256) -> str:
    if not isinstance(v, str) or len(v) > maxlen:
        _fail(where, "must be a string")
    if choices is not None and v not in choices:
        _fail(where, f"must be one of {', '.join(choices)}")
    return v


def _strlist(v: Any, where: str, choices: Sequence[str] | None = None) -> tuple[str, ...]:
    return tuple(_str(x, f"{where}[{i}]", choices) for i, x in enumerate(_list(v, where)))


def _version_str(v: Any, where: str) -> str:
    s = _str(v, where, maxlen=64)
    parts = s.split(".")
    if not s or any(not p.isdigit() or not p.isascii() for p in parts):
        _fail(where, "must be a dotted numeric version such as 550.90.07")
    return s


def _version_key(s: str) -> tuple[int, ...] | None:
    parts = s.strip().split(".")
    if not parts or any(not p.isdigit() or not p.isascii() for p in parts):
        return None
    return tuple(int(p) for p in parts)


# ---------------------------------------------------------------------------------------------
# the document model


@dataclass(frozen=True)
class GpuRules:
    required: bool = False
    count: int = 0  # minimum number of GPUs (0 when not required)
    cc_required: bool = True
    driver_versions: tuple[str, ...] | None = None
    min_driver_version: str | None = None
    vbios_versions: tuple[str, ...] | None = None
    measurements_verified_required: bool = True
    allow_ppcie: bool = False
    require_ocsp: bool = False

    _FIELDS = ("required", "count", "cc_required", "driver_versions", "min_driver_version",
               "vbios_versions", "measurements_verified_required", "allow_ppcie", "require_ocsp")

    @classmethod
    def from_dict(cls, d: Any, where: str) -> GpuRules:
        d = _mapping(d, where)
        _check_keys(d, where, (), cls._FIELDS)
        required = _bool(d.get("required", False), f"{where}.required")
        count = _int(d.get("count", 1 if required else 0), f"{where}.count", 0, 64)
        if required and count < 1:
            _fail(f"{where}.count", "must be at least 1 when required is true")
        return cls(
            required=required,
            count=count,
            cc_required=_bool(d.get("cc_required", True), f"{where}.cc_required"),
            driver_versions=_strlist(d["driver_versions"], f"{where}.driver_versions") if "driver_versions" in d else None,
            min_driver_version=_version_str(d["min_driver_version"], f"{where}.min_driver_version") if "min_driver_version" in d else None,
            vbios_versions=tuple(s.lower() for s in _strlist(d["vbios_versions"], f"{where}.vbios_versions")) if "vbios_versions" in d else None,
            measurements_verified_required=_bool(d.get("measurements_verified_required", True), f"{where}.measurements_verified_required"),
            allow_ppcie=_bool(d.get("allow_ppcie", False), f"{where}.allow_ppcie"),
            require_ocsp=_bool(d.get("require_ocsp", False), f"{where}.require_ocsp"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "required": self.required,
            "count": self.count,
            "cc_required": self.cc_required,
            "measurements_verified_required": self.measurements_verified_required,
            "allow_ppcie": self.allow_ppcie,
        }
        if self.driver_versions is not None:
            out["driver_versions"] = list(self.driver_versions)
        if self.min_driver_version is not None:
            out["min_driver_version"] = self.min_driver_version
        if self.vbios_versions is not None:
            out["vbios_versions"] = list(self.vbios_versions)
        if self.require_ocsp:
            out["require_ocsp"] = True  # only when set: older policies keep their digest
        return out


@dataclass(frozen=True)
class SnpMinTcb:
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SnpMinTcb:
        d = _mapping(d, where)
        _check_keys(d, where, ("bootloader", "tee", "snp", "microcode"), ("fmc",))
        return cls(
            bootloader=_int(d["bootloader"], f"{where}.bootloader", 0, 255),
            tee=_int(d["tee"], f"{where}.tee", 0, 255),
            snp=_int(d["snp"], f"{where}.snp", 0, 255),
            microcode=_int(d["microcode"], f"{where}.microcode", 0, 255),
            fmc=_int(d["fmc"], f"{where}.fmc", 0, 255) if "fmc" in d else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            out["fmc"] = self.fmc
        return out

    def satisfied_by(self, tcb: SnpTcb) -> bool:
        if self.fmc is not None and (tcb.fmc is None or tcb.fmc < self.fmc):
            return False
        return (tcb.bootloader >= self.bootloader and tcb.tee >= self.tee and tcb.snp >= self.snp
                and tcb.microcode >= self.microcode)


@dataclass(frozen=True)
class SnpRules:
    measurements: tuple[str, ...]
    min_tcb: SnpMinTcb | None = None
    allow_debug: bool = False
    vmpl: tuple[int, ...] = (0,)
    signing_keys: tuple[str, ...] = _SNP_SIGNING_KEYS
    chip_ids: tuple[str, ...] | None = None
    host_data: tuple[str, ...] | None = None
    family_id: tuple[str, ...] | None = None
    image_id: tuple[str, ...] | None = None
    id_key_digests: tuple[str, ...] | None = None
    min_guest_svn: int = 0
    allow_migration_agent: bool = False
    allow_smt: bool = True
    products: tuple[str, ...] | None = None
    require_crl: bool = False

    FIELDS = ("measurements", "min_tcb", "allow_debug", "vmpl", "signing_keys", "chip_ids", "host_data",
              "family_id", "image_id", "id_key_digests", "min_guest_svn", "allow_migration_agent",
              "allow_smt", "products", "require_crl")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> SnpRules:
        def opt(name: str, nbytes: int) -> tuple[str, ...] | None:
            return _hexlist(d[name], f"{where}.{name}", nbytes) if name in d else None

        meas = _hexlist(d["measurements"], f"{where}.measurements", 48)
        if not meas:
            _fail(f"{where}.measurements", "must not be empty (an empty allowlist would allow nothing)")
        return cls(
            measurements=meas,
            min_tcb=SnpMinTcb.from_dict(d["min_tcb"], f"{where}.min_tcb") if "min_tcb" in d else None,
            allow_debug=_bool(d.get("allow_debug", False), f"{where}.allow_debug"),
            vmpl=tuple(_int(x, f"{where}.vmpl[{i}]", 0, 3) for i, x in enumerate(_list(d.get("vmpl", [0]), f"{where}.vmpl"))),
            signing_keys=_strlist(d.get("signing_keys", list(_SNP_SIGNING_KEYS)), f"{where}.signing_keys", _SNP_SIGNING_KEYS),
            chip_ids=opt("chip_ids", 64),
            host_data=opt("host_data", 32),
            family_id=opt("family_id", 16),
            image_id=opt("image_id", 16),
            id_key_digests=opt("id_key_digests", 48),
            min_guest_svn=_int(d.get("min_guest_svn", 0), f"{where}.min_guest_svn", 0, 0xFFFFFFFF),
            allow_migration_agent=_bool(d.get("allow_migration_agent", False), f"{where}.allow_migration_agent"),
            allow_smt=_bool(d.get("allow_smt", True), f"{where}.allow_smt"),
            products=_strlist(d["products"], f"{where}.products", _SNP_PRODUCTS) if "products" in d else None,
            require_crl=_bool(d.get("require_crl", False), f"{where}.require_crl"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "measurements": list(self.measurements),
            "allow_debug": self.allow_debug,
            "vmpl": list(self.vmpl),
            "signing_keys": list(self.signing_keys),
            "min_guest_svn": self.min_guest_svn,
            "allow_migration_agent": self.allow_migration_agent,
            "allow_smt": self.allow_smt,
        }
        if self.min_tcb is not None:
            out["min_tcb"] = self.min_tcb.to_dict()
        if self.require_crl:
            # Only when set: policies written before the rule existed keep their digest.
            out["require_crl"] = True
        for name in ("chip_ids", "host_data", "family_id", "image_id", "id_key_digests", "products"):
            v = getattr(self, name)
            if v is not None:
                out[name] = list(v)
        return out


@dataclass(frozen=True)
class TdxRules:
    mrtd: tuple[str, ...]
    rtmr: tuple[tuple[str, ...] | None, tuple[str, ...] | None, tuple[str, ...] | None, tuple[str, ...] | None] = (None, None, None, None)
    mrseam: tuple[str, ...] | None = None
    min_tee_tcb_svn: str | None = None
    allow_debug: bool = False
    xfam: tuple[str, ...] | None = None
    mr_config_id: tuple[str, ...] | None = None
    mr_owner: tuple[str, ...] | None = None
    tcb_status: tuple[str, ...] | None = None

    FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrseam", "min_tee_tcb_svn", "allow_debug", "xfam",
              "mr_config_id", "mr_owner", "tcb_status")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> TdxRules:
        def opt(name: str, nbytes: int) -> tuple[str, ...] | None:
            return _hexlist(d[name], f"{where}.{name}", nbytes) if name in d else None

        mrtd = _hexlist(d["mrtd"], f"{where}.mrtd", 48)
        if not mrtd:
            _fail(f"{where}.mrtd", "must not be empty (an empty allowlist would allow nothing)")
        r0, r1, r2, r3 = (opt(f"rtmr{i}", 48) for i in range(4))
        return cls(
            mrtd=mrtd,
            rtmr=(r0, r1, r2, r3),
            mrseam=opt("mrseam", 48),
            min_tee_tcb_svn=_hex(d["min_tee_tcb_svn"], f"{where}.min_tee_tcb_svn", 16) if "min_tee_tcb_svn" in d else None,
            allow_debug=_bool(d.get("allow_debug", False), f"{where}.allow_debug"),
            xfam=opt("xfam", 8),
            mr_config_id=opt("mr_config_id", 48),
            mr_owner=opt("mr_owner", 48),
            tcb_status=_strlist(d["tcb_status"], f"{where}.tcb_status", _TDX_TCB_STATUSES) if "tcb_status" in d else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mrtd": list(self.mrtd), "allow_debug": self.allow_debug}
        for i, r in enumerate(self.rtmr):
            if r is not None:
                out[f"rtmr{i}"] = list(r)
        for name in ("mrseam", "xfam", "mr_config_id", "mr_owner", "tcb_status"):
            v = getattr(self, name)
            if v is not None:
                out[name] = list(v)
        if self.min_tee_tcb_svn is not None:
            out["min_tee_tcb_svn"] = self.min_tee_tcb_svn
        return out


@dataclass(frozen=True)
class MockRules:
    measurements: tuple[str, ...]
    allow_debug: bool = False
    min_tcb: int = 0
    platform_keys: tuple[str, ...] | None = None

    FIELDS = ("measurements", "allow_debug", "min_tcb", "platform_keys")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> MockRules:
        meas = _hexlist(d["measurements"], f"{where}.measurements", 48)
        if not meas:
            _fail(f"{where}.measurements", "must not be empty (an empty allowlist would allow nothing)")
        return cls(
            measurements=meas,
            allow_debug=_bool(d.get("allow_debug", False), f"{where}.allow_debug"),
            min_tcb=_int(d.get("min_tcb", 0), f"{where}.min_tcb"),
            platform_keys=_hexlist(d["platform_keys"], f"{where}.platform_keys", 32) if "platform_keys" in d else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"measurements": list(self.measurements), "allow_debug": self.allow_debug, "min_tcb": self.min_tcb}
        if self.platform_keys is not None:
            out["platform_keys"] = list(self.platform_keys)
        return out


_RULES: dict[Platform, type[SnpRules] | type[TdxRules] | type[MockRules]] = {
    Platform.SNP: SnpRules,
    Platform.TDX: TdxRules,
    Platform.MOCK: MockRules,
}
_REQUIRED = {Platform.SNP: ("measurements",), Platform.TDX: ("mrtd",), Platform.MOCK: ("measurements",)}


@dataclass(frozen=True)
class Profile:
    platform: Platform
    rules: SnpRules | TdxRules | MockRules
    gpu: GpuRules | None = None
    name: str | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Profile:
        d = _mapping(d, where)
        if "platform" not in d:
            _fail(where, "missing required field 'platform'")
        plat = Platform(_str(d["platform"], f"{where}.platform", ("snp", "tdx", "mock")))
        rules_cls = _RULES[plat]
        _check_keys(d, where, ("platform", *_REQUIRED[plat]), ("name", "gpu", *rules_cls.FIELDS))
        body = {k: v for k, v in d.items() if k not in ("platform", "name", "gpu")}
        return cls(
            platform=plat,
            rules=rules_cls.from_dict(body, where),
            gpu=GpuRules.from_dict(d["gpu"], f"{where}.gpu") if "gpu" in d else None,
            name=_str(d["name"], f"{where}.name") if "name" in d else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"platform": self.platform.value, **self.rules.to_dict()}
        if self.gpu is not None:
            out["gpu"] = self.gpu.to_dict()
        if self.name is not None:
            out["name"] = self.name
        return out


def _reject_duplicate_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for k, v in pairs:
        if k in out:
            raise PolicyFormatError(f"duplicate key {k!r}", reason="policy.invalid")
        out[k] = v
    return out


def _yaml_load(text: str) -> Any:
    import yaml

    class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        pairs = [(loader.construct_object(k, deep=deep), loader.construct_object(v, deep=deep)) for k, v in node.value]
        return _reject_duplicate_keys(pairs)

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class Policy:
    """A parsed, validated release policy (document ``version: 1``)."""

    model_versions: tuple[int, ...]
    profiles: tuple[Profile, ...]
    description: str | None = None
    _canonical: bytes = field(default=b"", repr=False, compare=False)

    # -- parsing --------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Any) -> Policy:
        d = _mapping(d, "policy")
        _check_keys(d, "policy", ("version", "model_versions", "profiles"), ("description",))
        version = d["version"]
        if isinstance(version, bool) or version != POLICY_VERSION:
            _fail("policy.version", f"unsupported policy version {version!r} (this build reads {POLICY_VERSION})")
        mv = tuple(_int(x, f"policy.model_versions[{i}]", 0, 0xFFFFFFFF)
                   for i, x in enumerate(_list(d["model_versions"], "policy.model_versions")))
        if len(set(mv)) != len(mv):
            _fail("policy.model_versions", "duplicate entries")
        profiles = tuple(Profile.from_dict(p, f"profiles[{i}]") for i, p in enumerate(_list(d["profiles"], "policy.profiles")))
        desc = _str(d["description"], "policy.description", maxlen=4096) if "description" in d else None
        pol = cls(model_versions=mv, profiles=profiles, description=desc)
        canonical = json.dumps(pol.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        object.__setattr__(pol, "_canonical", canonical)
        return pol

    @classmethod
    def loads(cls, data: str | bytes) -> Policy:
        """Parse a JSON or YAML policy document."""
        if isinstance(data, bytes | bytearray):
            if len(data) > MAX_POLICY_BYTES:
                _fail("policy", "document too large")
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                _fail("policy", "document is not UTF-8")
        elif isinstance(data, str):
            text = data
        else:
            _fail("policy", "document must be text")
        if len(text) > MAX_POLICY_BYTES:
            _fail("policy", "document too large")
        doc: Any
        try:
            doc = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
        except PolicyFormatError:
            raise
        except (ValueError, RecursionError):
            try:
                doc = _yaml_load(text)
            except PolicyFormatError:
                raise
            except Exception as exc:  # yaml raises many types; all mean "malformed"
                _fail("policy", f"neither valid JSON nor YAML ({type(exc).__name__})")
        try:
            return cls.from_dict(doc)
        except RecursionError:
            _fail("policy", "document nested too deeply")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = fh.read(MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise PolicyFormatError(f"cannot read policy file {p}: {exc.strerror}", reason="policy.invalid") from exc
        return cls.loads(data)

    @classmethod
    def mock_dev(cls, measurement_hex: str, model_versions: Sequence[int] = (1,)) -> Policy:
        """A demo policy allowing only the UNSAFE mock platform with one measurement."""
        return cls.from_dict({
            "version": POLICY_VERSION,
            "description": "UNSAFE development policy: software mock platform only",
            "model_versions": list(model_versions),
            "profiles": [{"platform": "mock", "name": "mock-dev", "measurements": [measurement_hex]}],
        })

    # -- canonical form -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": POLICY_VERSION,
            "model_versions": list(self.model_versions),
            "profiles": [p.to_dict() for p in self.profiles],
        }
        if self.description is not None:
            out["description"] = self.description
        return out

    def canonical_json(self) -> bytes:
        if not self._canonical:
            object.__setattr__(self, "_canonical", json.dumps(
                self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        return self._canonical

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_json()).hexdigest()

    @property
    def allows_mock(self) -> bool:
        return any(p.platform is Platform.MOCK for p in self.profiles)

    def evaluate(self, claims: Sequence[Claims], *, model_version: int, allow_mock: bool) -> Decision:
        return evaluate(self, claims, model_version=model_version, allow_mock=allow_mock)


# ---------------------------------------------------------------------------------------------
# evaluation


@dataclass(frozen=True)
class Decision:
    """An allow decision, with what the audit record needs."""

    allowed: bool
    profile_index: int
    profile_name: str | None
    policy_digest: str
    platform: str
    model_version: int
    measurement: str  # hex: SNP MEASUREMENT, TDX MRTD or mock measurement
    chip_id: str | None  # hex; SNP only (None when masked / not applicable)
    tcb: str  # SNP reported_tcb / mock tcb as 0x-hex; TDX TEE_TCB_SVN hex
    gpus: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "profile_index": self.profile_index,
            "profile_name": self.profile_name,
            "policy_digest": self.policy_digest,
            "platform": self.platform,
            "model_version": self.model_version,
            "measurement": self.measurement,
            "chip_id": self.chip_id,
            "tcb": self.tcb,
            "gpus": [dict(g) for g in self.gpus],
        }


class _RuleFail(Exception):
    def __init__(self, reason: str, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.rule, self.detail = reason, rule, detail


def _in(value_hex: str, allow: tuple[str, ...] | None, reason: str, rule: str, what: str) -> None:
    if allow is None:
        return
    if value_hex not in allow:
        raise _RuleFail(reason, rule, f"{what} {value_hex[:32]}... is not in the allowlist ({len(allow)} entries)")


Check = Callable[[], None]


def _snp_checks(r: SnpRules, c: SnpClaims) -> list[tuple[str, Check]]:
    def measurement() -> None:
        _in(c.measurement.hex(), r.measurements, "policy.measurement", "measurements", "measurement")

    def debug() -> None:
        if c.debug and not r.allow_debug:
            raise _RuleFail("policy.debug", "allow_debug", "guest policy allows debugging")

    def vmpl() -> None:
        if c.vmpl not in r.vmpl:
            raise _RuleFail("policy.vmpl", "vmpl", f"VMPL {c.vmpl} is not allowed")

    def signing_key() -> None:
        if c.signing_key not in r.signing_keys:
            raise _RuleFail("policy.signing_key", "signing_keys", f"signing key {c.signing_key} is not allowed")

    def product() -> None:
        if r.products is not None and c.product not in r.products:
            raise _RuleFail("policy.product", "products", f"product {c.product} is not allowed")

    def tcb() -> None:
        if r.min_tcb is not None and not r.min_tcb.satisfied_by(c.reported_tcb):
            raise _RuleFail("policy.tcb", "min_tcb", f"reported TCB 0x{c.reported_tcb.raw:016x} is below the minimum")

    def guest_svn() -> None:
        if c.guest_svn < r.min_guest_svn:
            raise _RuleFail("policy.guest_svn", "min_guest_svn", f"guest SVN {c.guest_svn} < {r.min_guest_svn}")

    def migration_agent() -> None:
        if c.migrate_ma and not r.allow_migration_agent:
            raise _RuleFail("policy.migration_agent", "allow_migration_agent", "migration agent is allowed by the guest policy")

    def smt() -> None:
        if c.smt_allowed and not r.allow_smt:
            raise _RuleFail("policy.smt", "allow_smt", "SMT is allowed by the guest policy")

    def chip_id() -> None:
        _in(c.chip_id.hex(), r.chip_ids, "policy.chip_id", "chip_ids", "chip id")

    def host_data() -> None:
        _in(c.host_data.hex(), r.host_data, "policy.host_data", "host_data", "host data")

    def family_id() -> None:
        _in(c.family_id.hex(), r.family_id, "policy.family_id", "family_id", "family id")

    def image_id() -> None:
        _in(c.image_id.hex(), r.image_id, "policy.image_id", "image_id", "image id")

    def id_key() -> None:
        _in(c.id_key_digest.hex(), r.id_key_digests, "policy.id_key_digest", "id_key_digests", "ID key digest")

    def crl() -> None:
        if r.require_crl and not c.crl_checked:
            raise _RuleFail("policy.crl", "require_crl",
                            "the ASK/ASVK was not checked against a current AMD CRL (no CRL source configured)")

    return [("measurements", measurement), ("allow_debug", debug), ("vmpl", vmpl), ("signing_keys", signing_key),
            ("products", product), ("min_tcb", tcb), ("min_guest_svn", guest_svn),
            ("allow_migration_agent", migration_agent), ("allow_smt", smt), ("chip_ids", chip_id),
            ("host_data", host_data), ("family_id", family_id), ("image_id", image_id), ("id_key_digests", id_key),
            ("require_crl", crl)]


def _tdx_checks(r: TdxRules, c: TdxClaims) -> list[tuple[str, Check]]:
    def mrtd() -> None:
        _in(c.mr_td.hex(), r.mrtd, "policy.measurement", "mrtd", "MRTD")

    def debug() -> None:
        if c.debug and not r.allow_debug:
            raise _RuleFail("policy.debug", "allow_debug", "TD is debuggable")

    def mrseam() -> None:
        _in(c.mr_seam.hex(), r.mrseam, "policy.tdx.mrseam", "mrseam", "MRSEAM")

    def tcb() -> None:
        if r.min_tee_tcb_svn is None:
            return
        want = bytes.fromhex(r.min_tee_tcb_svn)
        have = bytes(c.tee_tcb_svn)
        if len(have) != 16 or any(h < w for h, w in zip(have, want, strict=True)):
            raise _RuleFail("policy.tcb", "min_tee_tcb_svn", f"TEE_TCB_SVN {have.hex()} is below {r.min_tee_tcb_svn}")

    def rtmrs() -> None:
        for i, allow in enumerate(r.rtmr):
            _in(c.rtmrs[i].hex(), allow, "policy.tdx.rtmr", f"rtmr{i}", f"RTMR{i}")

    def xfam() -> None:
        _in(c.xfam.hex(), r.xfam, "policy.tdx.xfam", "xfam", "XFAM")

    def mr_config_id() -> None:
        _in(c.mr_config_id.hex(), r.mr_config_id, "policy.tdx.mr_config_id", "mr_config_id", "MRCONFIGID")

    def mr_owner() -> None:
        _in(c.mr_owner.hex(), r.mr_owner, "policy.tdx.mr_owner", "mr_owner", "MROWNER")

    def tcb_status() -> None:
        if r.tcb_status is None:
            return
        if c.tcb_status is None:
            raise _RuleFail("policy.tdx.tcb_status", "tcb_status", "no TCB status (verify with TCB Info collateral)")
        if c.tcb_status not in r.tcb_status:
            raise _RuleFail("policy.tdx.tcb_status", "tcb_status", f"TCB status {c.tcb_status} is not allowed")

    return [("mrtd", mrtd), ("allow_debug", debug), ("mrseam", mrseam), ("min_tee_tcb_svn", tcb), ("rtmr", rtmrs),
            ("xfam", xfam), ("mr_config_id", mr_config_id), ("mr_owner", mr_owner), ("tcb_status", tcb_status)]


def _mock_checks(r: MockRules, c: MockClaims) -> list[tuple[str, Check]]:
    def measurement() -> None:
        _in(c.measurement.hex(), r.measurements, "policy.measurement", "measurements", "measurement")

    def debug() -> None:
        if c.debug and not r.allow_debug:
            raise _RuleFail("policy.debug", "allow_debug", "mock report has the debug flag")

    def tcb() -> None:
        if c.tcb < r.min_tcb:
            raise _RuleFail("policy.tcb", "min_tcb", f"mock TCB {c.tcb} < {r.min_tcb}")

    def key() -> None:
        _in(c.platform_key.hex(), r.platform_keys, "policy.mock.platform_key", "platform_keys", "mock platform key")

    return [("measurements", measurement), ("allow_debug", debug), ("min_tcb", tcb), ("platform_keys", key)]


def _gpu_checks(g: GpuRules | None, gpus: Sequence[GpuClaims]) -> list[tuple[str, Check]]:
    if g is None:
        return []

    def required() -> None:
        if g.required and not gpus:
            raise _RuleFail("policy.gpu.required", "gpu.required", "the profile requires GPU evidence and none was given")

    def count() -> None:
        if len(gpus) < g.count:
            raise _RuleFail("policy.gpu.count", "gpu.count", f"{len(gpus)} GPU(s) attested, at least {g.count} required")

    def each(rule: str, reason: str, ok: Callable[[GpuClaims], bool], what: Callable[[GpuClaims], str]) -> Check:
        def check() -> None:
            for i, gc in enumerate(gpus):
                if not ok(gc):
                    raise _RuleFail(reason, f"gpu.{rule}", f"GPU {i}: {what(gc)}")
        return check

    def driver_ok(gc: GpuClaims) -> bool:
        if g.driver_versions is not None and gc.driver_version not in g.driver_versions:
            return False
        if g.min_driver_version is not None:
            have = _version_key(gc.driver_version)
            want = _version_key(g.min_driver_version)
            if have is None or want is None or have < want:
                return False
        return True

    return [
        ("gpu.required", required),
        ("gpu.count", count),
        ("gpu.cc_required", each("cc_required", "policy.gpu.cc", lambda gc: gc.cc_enabled is True or not g.cc_required,
                                 lambda gc: f"confidential-computing mode is {gc.cc_enabled}")),
        ("gpu.allow_ppcie", each("allow_ppcie", "policy.gpu.ppcie", lambda gc: g.allow_ppcie or not gc.ppcie,
                                 lambda gc: "protected-PCIe mode is not allowed")),
        ("gpu.driver", each("driver_versions", "policy.gpu.driver", driver_ok,
                            lambda gc: f"driver {gc.driver_version} is not allowed")),
        ("gpu.vbios", each("vbios_versions", "policy.gpu.vbios",
                           lambda gc: g.vbios_versions is None or gc.vbios_version.lower() in g.vbios_versions,
                           lambda gc: f"VBIOS {gc.vbios_version} is not allowed")),
        ("gpu.measurements", each("measurements_verified_required", "policy.gpu.measurements",
                                  lambda gc: gc.measurements_verified or not g.measurements_verified_required,
                                  lambda gc: "GPU measurements were not checked against reference values")),
        ("gpu.require_ocsp", each("require_ocsp", "policy.gpu.ocsp", lambda gc: gc.ocsp_checked or not g.require_ocsp,
                                  lambda gc: "the device chain was not checked with NVIDIA's OCSP responder")),
    ]


def _deny(reason: str, rule: str, detail: str) -> NoReturn:
    raise PolicyDenied(detail, reason=reason, rule=rule)


def evaluate(policy: Policy, claims: Sequence[Claims], *, model_version: int, allow_mock: bool) -> Decision:
    """Deny-by-default evaluation.  Returns a :class:`Decision` or raises :class:`PolicyDenied`.

    ``claims``: verified claims of one request: exactly one CPU claims object (SNP, TDX or mock)
    and zero or more GPU claims.
    """
    # 1. The model version must still be releasable.
    if isinstance(model_version, bool) or not isinstance(model_version, int) or model_version not in policy.model_versions:
        _deny("policy.model_version", "model_versions", f"model version {model_version!r} is not releasable under this policy")
    # 2. Exactly one CPU TEE; the rest GPUs.
    cpus = [c for c in claims if isinstance(c, SnpClaims | TdxClaims | MockClaims)]
    gpus = [c for c in claims if isinstance(c, GpuClaims)]
    if len(cpus) != 1 or len(cpus) + len(gpus) != len(claims):
        _deny("policy.claims", "claims", f"expected one CPU TEE claims object, got {len(cpus)}")
    cpu = cpus[0]
    if not policy.profiles:
        _deny("policy.platform", "profiles", "the policy has no profiles: nothing is releasable")
    # 3. Try every profile; remember the most specific failure.
    best: tuple[int, int, _RuleFail] | None = None  # (score, -index, failure)
    for idx, prof in enumerate(policy.profiles):
        fail: _RuleFail | None = None
        score = 0
        if prof.platform is not cpu.platform:
            fail, score = _RuleFail("policy.platform", "platform", f"no profile for platform {cpu.platform.value}"), -2
        elif prof.platform is Platform.MOCK and not allow_mock:
            fail, score = _RuleFail("policy.mock_not_allowed", "platform", "mock profiles need the explicit development flag"), -1
        else:
            if isinstance(prof.rules, SnpRules) and isinstance(cpu, SnpClaims):
                checks = _snp_checks(prof.rules, cpu)
            elif isinstance(prof.rules, TdxRules) and isinstance(cpu, TdxClaims):
                checks = _tdx_checks(prof.rules, cpu)
            elif isinstance(prof.rules, MockRules) and isinstance(cpu, MockClaims):
                checks = _mock_checks(prof.rules, cpu)
            else:  # pragma: no cover - platform and rules types always agree after parsing
                fail, score, checks = _RuleFail("policy.platform", "platform", "platform mismatch"), -2, []
            checks = checks + _gpu_checks(prof.gpu, gpus)
            for _name, check in checks:
                try:
                    check()
                except _RuleFail as rf:
                    fail = rf
                    break
                score += 1
        if fail is None:
            return _decision(policy, idx, prof, cpu, gpus, model_version)
        if best is None or (score, -idx) > (best[0], best[1]):
            best = (score, -idx, fail)
    assert best is not None
    _, neg_idx, f = best
    _deny(f.reason, f"profiles[{-neg_idx}].{f.rule}", f"profile {-neg_idx}: {f.detail}")


def _decision(policy: Policy, idx: int, prof: Profile, cpu: SnpClaims | TdxClaims | MockClaims,
              gpus: Sequence[GpuClaims], model_version: int) -> Decision:
    if isinstance(cpu, SnpClaims):
        meas, chip, tcb = cpu.measurement.hex(), (None if cpu.mask_chip_id else cpu.chip_id.hex()), f"0x{cpu.reported_tcb.raw:016x}"
    elif isinstance(cpu, TdxClaims):
        meas, chip, tcb = cpu.mr_td.hex(), None, cpu.tee_tcb_svn.hex()
    else:
        meas, chip, tcb = cpu.measurement.hex(), None, f"0x{cpu.tcb:016x}"
    return Decision(
        allowed=True,
        profile_index=idx,
        profile_name=prof.name,
        policy_digest=policy.digest,
        platform=cpu.platform.value,
        model_version=model_version,
        measurement=meas,
        chip_id=chip,
        tcb=tcb,
        gpus=tuple({"ak_serial": g.ak_serial, "driver_version": g.driver_version, "vbios_version": g.vbios_version}
                   for g in gpus),
    )


# ---------------------------------------------------------------------------------------------
# a starting point from golden evidence


def policy_from_claims(claims: Sequence[Claims], *, model_versions: Sequence[int],
                       name: str | None = None, description: str | None = None) -> Policy:
    """A policy that admits exactly the platform these verified claims describe -- typically a
    reference VM booted from the image to be trusted (``weightseal attest verify EVIDENCE
    --write-policy FILE``): its launch measurement (TDX: MRTD, RTMR0-2, MRSEAM), nothing below
    its TCB, its VMPL/signing key/product (and, if its SNP chain was checked against a CRL,
    ``require_crl``), its GPUs' driver and VBIOS versions.  RTMR3 (runtime,
    workload-defined) and chip ids are left open.  It is a starting point to review, not a
    judgement: it trusts whatever that reference VM ran.  Evidence from a debug-enabled guest
    is refused (``policy.invalid``): a release policy must never admit debug."""
    if not claims or isinstance(claims[0], GpuClaims):
        _fail("claims", "need the CPU TEE's verified claims first (then any GPUs)")
    c = claims[0]
    gpus = [g for g in claims[1:] if isinstance(g, GpuClaims)]
    if len(gpus) != len(claims) - 1:
        _fail("claims", "only GPU claims may follow the CPU TEE's")
    if c.debug:
        _fail("claims", "the evidence comes from a debug-enabled guest; a release policy never allows debug")
    profile: dict[str, Any] = {"platform": c.platform.value, "name": name or f"{c.platform.value}-golden"}
    if isinstance(c, SnpClaims):
        t = c.reported_tcb
        min_tcb: dict[str, Any] = {"bootloader": t.bootloader, "tee": t.tee, "snp": t.snp, "microcode": t.microcode}
        if t.fmc is not None:
            min_tcb["fmc"] = t.fmc
        profile.update(measurements=[c.measurement.hex()], min_tcb=min_tcb, vmpl=[c.vmpl],
                       signing_keys=[c.signing_key], products=[c.product], min_guest_svn=c.guest_svn,
                       allow_migration_agent=c.migrate_ma)
        if c.crl_checked:
            profile["require_crl"] = True
        for field_name, value in (("host_data", c.host_data), ("family_id", c.family_id), ("image_id", c.image_id)):
            if any(value):
                profile[field_name] = [value.hex()]
    elif isinstance(c, TdxClaims):
        profile.update(mrtd=[c.mr_td.hex()], mrseam=[c.mr_seam.hex()], min_tee_tcb_svn=c.tee_tcb_svn.hex(),
                       xfam=[c.xfam.hex()], **{f"rtmr{i}": [c.rtmrs[i].hex()] for i in range(3)})
        for field_name, value in (("mr_config_id", c.mr_config_id), ("mr_owner", c.mr_owner)):
            if any(value):
                profile[field_name] = [value.hex()]
        if c.tcb_status is not None:
            profile["tcb_status"] = [c.tcb_status]
    else:
        assert isinstance(c, MockClaims)
        profile.update(measurements=[c.measurement.hex()], min_tcb=c.tcb, platform_keys=[c.platform_key.hex()])
    if gpus:
        profile["gpu"] = {
            "required": True,
            "count": len(gpus),
            "driver_versions": sorted({g.driver_version for g in gpus}),
            "vbios_versions": sorted({g.vbios_version for g in gpus}),
            "measurements_verified_required": all(g.measurements_verified for g in gpus),
            "allow_ppcie": any(g.ppcie for g in gpus),
        }
        if all(g.ocsp_checked for g in gpus):
            profile["gpu"]["require_ocsp"] = True
    doc: dict[str, Any] = {"version": POLICY_VERSION, "model_versions": list(model_versions), "profiles": [profile]}
    if description is not None:
        doc["description"] = description
    return Policy.from_dict(doc)
