"""``weightseal attest ...``: verify evidence, collect it inside a TEE, check policies, and the
UNSAFE mock platform helpers for development."""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from ._binding import report_data as make_report_data
from ._claims import Claims, Evidence, Platform
from ._errors import AttestationError, EvidenceParseError, PolicyDenied, WeightsealError
from ._files import read_limited

__all__ = ["register", "read_evidence_file", "sniff_platform"]

_MAX_FILE = 16 << 20
_UNSAFE = "WARNING: the software mock platform is UNSAFE: it proves nothing about hardware. Development and tests only."


class _UsageError(WeightsealError):
    default_reason = "cli.usage"


# ---------------------------------------------------------------------------------------------
# helpers


def _hexarg(value: str, name: str, nbytes: int | None = None) -> bytes:
    v = value.strip()
    if v.startswith(("0x", "0X")):
        v = v[2:]
    try:
        b = bytes.fromhex(v)
    except ValueError:
        raise _UsageError(f"{name} is not hex") from None
    if nbytes is not None and len(b) != nbytes:
        raise _UsageError(f"{name} must be {nbytes} bytes ({2 * nbytes} hex digits), got {len(b)}")
    return b


def _read(path: str | Path, what: str) -> bytes:
    return read_limited(path, _MAX_FILE, what=what, error=_UsageError)


def _maybe_hex_text(data: bytes) -> bytes:
    """Hex text (the NVIDIA and virtee samples) -> bytes; anything else unchanged."""
    stripped = b"".join(data.split())
    if stripped[:2] in (b"0x", b"0X"):
        stripped = stripped[2:]
    if stripped and len(stripped) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in stripped):
        return binascii.unhexlify(stripped)
    return data


def sniff_platform(report: bytes) -> Platform | None:
    """Guess the platform of a raw report from its first bytes (None if unknown)."""
    from ._mock import is_mock_report

    if is_mock_report(report):
        return Platform.MOCK
    if report[:4] == b"\x11\xe0\x01\xff":
        return Platform.NVGPU
    if len(report) >= 0x30 and int.from_bytes(report[0:2], "little") in (4, 5) \
            and int.from_bytes(report[2:4], "little") == 2 and int.from_bytes(report[4:8], "little") == 0x81:
        return Platform.TDX
    if len(report) >= 0x4A0 and int.from_bytes(report[0:4], "little") in (2, 3, 4, 5) \
            and int.from_bytes(report[0x34:0x38], "little") == 1:
        return Platform.SNP
    # SNP report envelopes: Azure HCL report, /dev/sev-guest MSG_REPORT_RSP (status 0, size 1184)
    if len(report) >= 0x20 + 0x4A0 and (report[:4] == b"HCLA" or (
            int.from_bytes(report[0:4], "little") == 0 and int.from_bytes(report[4:8], "little") == 0x4A0)):
        return Platform.SNP
    return None


def read_evidence_file(path: str | Path, *, platform: str | None = None, certs: bytes = b"") -> list[Evidence]:
    """A bundle, an nvtrust GPU evidence JSON list, or one raw report (binary or hex text)."""
    from ._verify import loads_bundle

    data = _read(path, "evidence")
    head = data.lstrip()[:1]
    if head == b"{":
        evs = loads_bundle(data)
        if platform is not None or certs:
            raise _UsageError("--platform/--certs apply to raw report files, not bundles")
        return evs
    if head == b"[":
        return _nvtrust_list(data)
    raw = _maybe_hex_text(data)
    plat = Platform(platform) if platform else sniff_platform(raw)
    if plat is None:
        raise EvidenceParseError("cannot tell the platform of this report; pass --platform", reason="attest.unsupported")
    return [Evidence(platform=plat, report=raw, certs=_maybe_pem_or_hex(certs))]


def _maybe_pem_or_hex(certs: bytes) -> bytes:
    if not certs or b"-----BEGIN" in certs:
        return certs
    return _maybe_hex_text(certs)


def _nvtrust_list(data: bytes) -> list[Evidence]:
    """nvtrust's multi-GPU evidence JSON: ``[{"evidence": b64, "certificate": b64, ...}]``."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, list) or not 1 <= len(doc) <= 16:
            raise ValueError("expected a list of 1..16 GPU evidence objects")
        out = []
        for item in doc:
            if not isinstance(item, dict):
                raise ValueError("expected objects")
            rep = base64.b64decode(str(item["evidence"]), validate=True)
            chain = base64.b64decode(str(item["certificate"]), validate=True)
            out.append(Evidence(platform=Platform.NVGPU, report=rep, certs=chain))
        return out
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
        raise EvidenceParseError(f"not a GPU evidence list: {exc}", reason="attest.bundle") from None


def _report_data_from_args(args: argparse.Namespace) -> bytes | None:
    if getattr(args, "report_data", None):
        if args.nonce or args.model_id or args.hpke_key:
            raise _UsageError("use either --report-data or --nonce/--model-id/--hpke-key")
        return _hexarg(args.report_data, "--report-data", 64)
    parts = (args.nonce, args.model_id, args.hpke_key)
    if any(parts):
        if not all(parts):
            raise _UsageError("--nonce, --model-id and --hpke-key go together")
        return make_report_data(_hexarg(args.nonce, "--nonce", 32), args.model_id, _hexarg(args.hpke_key, "--hpke-key"))
    return None


def _parse_now(s: str | None) -> _dt.datetime | None:
    if not s:
        return None
    try:
        t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise _UsageError(f"--now {s!r} is not an ISO-8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _load_tdx_collateral(directory: str, *, partial: bool) -> tuple[Any, Any]:
    """``--collateral DIR``: one set (``tcb_info.json`` + ``tcb_info_issuer_chain.pem``, with
    ``qe_identity.json`` + ``qe_identity_issuer_chain.pem``, ``pck_crl.{der,pem}``,
    ``root_crl.{der,pem}``, ``pck_crl_issuer_chain.pem`` required unless ``partial``), or a
    fleet layout with one such set per FMSPC subdirectory (as the key service reads it).
    Returns (collateral, fetcher)."""
    from ._tdx_collateral import TdxCollateralDir, load_tdx_collateral_dir

    d = Path(directory)
    if not d.is_dir():
        raise _UsageError(f"--collateral {d}: not a directory")
    if (d / "tcb_info.json").is_file():
        return load_tdx_collateral_dir(d, partial=partial), None
    store = TdxCollateralDir(d, allow_partial=partial)
    if not store.platforms():
        raise _UsageError(f"{d} needs tcb_info.json and tcb_info_issuer_chain.pem, or one such set per "
                          "FMSPC subdirectory (12 hex digits)")
    return None, store


def _load_rims(paths: list[str] | None) -> Any:
    """``--rim F F`` (the driver and VBIOS RIMs) or ``--rim DIR`` (a RimStore)."""
    if paths and len(paths) == 1 and Path(paths[0]).is_dir():
        from ._nvgpu_rim import RimStore

        return RimStore(paths[0])
    return tuple(_read(p, "RIM") for p in (paths or ()))


def _load_snp_crl(path: str | None) -> Any:
    """``--snp-crl FILE`` (one ARK CRL, DER or PEM) or ``--snp-crl DIR`` (``SnpCrlDir``:
    ``milan_vcek.crl`` ..., as the key service reads it)."""
    if not path:
        return None
    from ._snp_crl import SnpCrlDir, SnpCrlFile

    p = Path(path)
    if p.is_dir():
        return SnpCrlDir(p)
    if not p.is_file():
        raise _UsageError(f"--snp-crl {p}: no such file or directory")
    return SnpCrlFile(p)


def _print_claims_text(claims: Claims, out: Any) -> None:
    d = claims.to_dict()
    plat = d.pop("platform", "?")
    print(f"[{plat}]", file=out)
    for k, v in d.items():
        if isinstance(v, dict) and k == "measurements" and len(v) > 4:
            print(f"  {k}: {len(v)} entries", file=out)
            continue
        print(f"  {k}: {v}", file=out)


# ---------------------------------------------------------------------------------------------
# verify


def _cmd_verify(args: argparse.Namespace) -> int:
    from ._policy import Policy, evaluate
    from ._verify import verify_bundle, verify_evidence

    certs = _read(args.certs, "certificates") if args.certs else b""
    expected = _report_data_from_args(args)
    gpu_nonce_raw = _hexarg(args.gpu_nonce, "--gpu-nonce", 32) if args.gpu_nonce else None
    if gpu_nonce_raw is not None and expected is not None:
        raise _UsageError("--gpu-nonce is for standalone GPU evidence; do not combine it with report_data options")
    policy = Policy.load(args.policy) if args.policy else None
    if policy is not None and args.model_version is None:
        raise _UsageError("--policy needs --model-version")
    model_versions = _model_versions(args.model_versions) if args.write_policy else None
    if args.write_policy and policy is not None:
        raise _UsageError("--write-policy derives a new policy; do not combine it with --policy")
    now = _parse_now(args.now)
    if args.rim_service and args.rim:
        raise _UsageError("--rim and --rim-service are alternatives")
    rims = _load_rims(args.rim)
    if args.rim_service:
        from ._nvgpu_rim import NvidiaRimService

        rims = NvidiaRimService(base_url=args.rim_service, ca_file=args.rim_service_ca)
    elif args.rim_service_ca:
        raise _UsageError("--rim-service-ca needs --rim-service")
    snp_crl = _load_snp_crl(args.snp_crl)
    gpu_ocsp = None
    if args.gpu_ocsp:
        from ._nvgpu_ocsp import NvidiaOcsp

        gpu_ocsp = NvidiaOcsp(url=args.gpu_ocsp, ca_file=args.gpu_ocsp_ca)
    elif args.gpu_ocsp_ca:
        raise _UsageError("--gpu-ocsp-ca needs --gpu-ocsp")
    mock_keys = [_hexarg(k, "--mock-key-pub", 32) for k in args.mock_key_pub] if args.mock_key_pub else None
    if args.allow_mock:
        print(_UNSAFE, file=sys.stderr)
    result: dict[str, Any] = {"evidence": str(args.evidence)}
    claims_list: list[Claims] = []
    rc = 1
    try:
        evs = read_evidence_file(args.evidence, platform=args.platform, certs=certs)
        collateral, fetcher = (_load_tdx_collateral(args.collateral, partial=args.collateral_partial)
                               if args.collateral else (None, None))
        kw: dict[str, Any] = dict(allow_mock=args.allow_mock, mock_keys=mock_keys, now=now,
                                  tdx_collateral=collateral, tdx_fetcher=fetcher, gpu_rims=rims, snp_crl=snp_crl,
                                  gpu_ocsp=gpu_ocsp)
        if evs[0].platform is not Platform.NVGPU:
            claims_list = verify_bundle(evs, expected, **kw)
        else:
            if any(e.platform is not Platform.NVGPU for e in evs):
                raise AttestationError("GPU evidence must follow the CPU TEE evidence", reason="attest.bundle")
            claims_list = [verify_evidence(e, expected_report_data=expected, expected_gpu_nonce=gpu_nonce_raw, **kw)
                           for e in evs]
        result["claims"] = [c.to_dict() for c in claims_list]
        result["binding_checked"] = expected is not None or gpu_nonce_raw is not None
        if policy is not None:
            result["policy_digest"] = policy.digest
            decision = evaluate(policy, claims_list, model_version=args.model_version, allow_mock=args.allow_mock)
            result["decision"] = decision.to_dict()
            result["verdict"], result["reason"] = "allowed", None
        else:
            result["verdict"], result["reason"] = "verified", None
        if model_versions is not None:
            result["written_policy"] = _write_policy(args.write_policy, claims_list, model_versions)
        rc = 0
    except PolicyDenied as exc:
        result["verdict"], result["reason"], result["rule"] = "denied", exc.reason, exc.rule
        result["message"] = str(exc)
    except WeightsealError as exc:
        if isinstance(exc, _UsageError):
            raise
        result["verdict"], result["reason"] = "invalid", exc.reason
        result["message"] = str(exc)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for c in claims_list:
            _print_claims_text(c, sys.stdout)
        if "policy_digest" in result:
            print(f"policy: {result['policy_digest']}")
        if not result.get("binding_checked", True) and rc == 0:
            print("note: no --nonce/--report-data given, so the request binding was NOT checked")
        line = f"verdict: {result['verdict'].upper()}"
        if result.get("reason"):
            line += f" ({result['reason']}{', ' + result['rule'] if result.get('rule') else ''})"
        if rc == 0 and "decision" in result:
            line += f" by profile {result['decision']['profile_index']}"
        print(line)
        if result.get("message"):
            print(f"  {result['message']}")
        if "written_policy" in result:
            print(f"policy written to {args.write_policy} ({result['written_policy']}): review it before "
                  "registering it")
    return rc


def _model_versions(text: str | None) -> list[int]:
    if not text:
        raise _UsageError("--write-policy needs --model-versions (e.g. 1 or 1,2)")
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _UsageError(f"--model-versions {text!r}: a comma-separated list of integers") from None
    if not out:
        raise _UsageError("--model-versions is empty")
    return out


def _write_policy(path: str, claims: list[Claims], model_versions: list[int]) -> str:
    """A policy admitting exactly the verified platform (see ``policy_from_claims``), written as
    indented JSON to a new file; returns its digest."""
    from ._policy import policy_from_claims

    pol = policy_from_claims(claims, model_versions=model_versions)
    text = json.dumps(pol.to_dict(), indent=2, sort_keys=True) + "\n"
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise _UsageError(f"{path} exists; refusing to overwrite") from None
    except OSError as exc:
        raise _UsageError(f"cannot write {path}: {exc.strerror}") from None
    return pol.digest


# ---------------------------------------------------------------------------------------------
# collect / detect


def _cmd_collect(args: argparse.Namespace) -> int:
    from ._collect import collect
    from ._verify import dumps_bundle

    rd = _report_data_from_args(args)
    if rd is None:
        raise _UsageError("collect needs --report-data or --nonce/--model-id/--hpke-key")
    mock = None
    meas = bytes(48)
    if args.attester == "mock":
        from ._mock import UnsafeMockPlatform

        print(_UNSAFE, file=sys.stderr)
        if not args.mock_key:
            raise _UsageError("--attester mock needs --mock-key FILE (make one with `weightseal attest mock keygen`)")
        mock = UnsafeMockPlatform.load(args.mock_key)
        if args.measurement:
            meas = _hexarg(args.measurement, "--measurement", 48)
    evs = collect(rd, attester=args.attester, gpus=args.gpus, configfs_root=Path(args.configfs_root), mock=mock,
                  mock_measurement=meas)
    data = dumps_bundle(evs)
    if args.out and args.out != "-":
        Path(args.out).write_bytes(data)
        print(f"wrote {len(evs)} evidence item(s) ({', '.join(e.platform.value for e in evs)}) to {args.out}",
              file=sys.stderr)
    else:
        sys.stdout.write(data.decode("ascii"))
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from ._collect import detect

    d = detect(configfs_root=Path(args.configfs_root))
    print(d.describe())
    return 0 if d.cpu_platform is not None else 1


# ---------------------------------------------------------------------------------------------
# mock


def _cmd_mock_keygen(args: argparse.Namespace) -> int:
    from ._mock import UnsafeMockPlatform

    print(_UNSAFE, file=sys.stderr)
    plat = UnsafeMockPlatform.generate()
    try:
        plat.save(args.out)
    except FileExistsError:
        raise _UsageError(f"{args.out} exists; refusing to overwrite") from None
    except OSError as exc:
        raise _UsageError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"unsafe mock platform public key: {plat.public_key.hex()}")
    return 0


def _cmd_mock_report(args: argparse.Namespace) -> int:
    from ._mock import UnsafeMockPlatform
    from ._verify import dumps_bundle

    print(_UNSAFE, file=sys.stderr)
    rd = _report_data_from_args(args)
    if rd is None:
        raise _UsageError("mock report needs --report-data or --nonce/--model-id/--hpke-key")
    plat = UnsafeMockPlatform.load(args.key)
    ev = plat.report(rd, measurement=_hexarg(args.measurement, "--measurement", 48), debug=args.debug, tcb=args.tcb)
    data = dumps_bundle([ev])
    if args.out and args.out != "-":
        Path(args.out).write_bytes(data)
        print(f"wrote an UNSAFE mock evidence bundle to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(data.decode("ascii"))
    return 0


# ---------------------------------------------------------------------------------------------
# policy


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from ._policy import Policy

    try:
        pol = Policy.load(args.policy)
    except WeightsealError as exc:
        print(f"invalid ({exc.reason}): {exc}")
        return 1
    print(f"ok: {len(pol.profiles)} profile(s) "
          f"[{', '.join(p.platform.value for p in pol.profiles)}], model versions {list(pol.model_versions)}")
    if pol.allows_mock:
        print("note: this policy has a mock profile; it only applies when the key service runs with the "
              "development flag")
    print(f"digest: {pol.digest}")
    if args.canonical:
        print(pol.canonical_json().decode("utf-8"))
    return 0


# ---------------------------------------------------------------------------------------------
# registration


def _add_binding_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("request binding (report_data)")
    g.add_argument("--nonce", help="key-service challenge nonce (32 bytes hex)")
    g.add_argument("--model-id", help="model id of the request")
    g.add_argument("--hpke-key", help="the loader's HPKE public key (hex)")
    g.add_argument("--report-data", help="the 64-byte report_data directly (hex)")


def register(subparsers: Any) -> None:
    attest = subparsers.add_parser("attest", help="verify and collect TEE evidence; check release policies")
    sub = attest.add_subparsers(dest="attest_command", metavar="SUBCOMMAND")
    attest.set_defaults(func=lambda _a: (attest.print_help(), 2)[1])

    v = sub.add_parser("verify", help="verify evidence (bundle or raw report), optionally against a policy")
    v.add_argument("evidence", help="evidence bundle (JSON), nvtrust GPU evidence JSON, or a raw report file")
    v.add_argument("--platform", choices=[p.value for p in Platform], help="platform of a raw report (else guessed)")
    v.add_argument("--certs", help="certificates for a raw report (SNP VCEK/VLEK [+ASK/ARK], GPU PEM chain)")
    v.add_argument("--policy", help="policy document (JSON or YAML) to evaluate")
    v.add_argument("--model-version", type=int, help="model version to evaluate the policy for")
    v.add_argument("--write-policy", metavar="FILE",
                   help="write a policy admitting exactly this verified platform (golden evidence): "
                        "its measurement, nothing below its TCB, its GPUs' versions; review it")
    v.add_argument("--model-versions", help="with --write-policy: releasable model versions, e.g. 1,2")
    _add_binding_args(v)
    v.add_argument("--gpu-nonce", help="standalone GPU evidence: the raw 32-byte SPDM nonce to require (hex)")
    v.add_argument("--now", help="verification time, ISO-8601 (default: now)")
    v.add_argument("--collateral", help="TDX collateral directory: tcb_info.json, tcb_info_issuer_chain.pem, qe_identity.json, qe_identity_issuer_chain.pem, pck_crl.der, root_crl.der; or one such set per FMSPC subdirectory")
    v.add_argument("--collateral-partial", action="store_true",
                   help="accept TDX collateral without QE identity/CRLs (deliberate, e.g. offline)")
    v.add_argument("--snp-crl", metavar="FILE|DIR",
                   help="AMD ARK CRL (DER or PEM, from https://kdsintf.amd.com/vcek/v1/<Product>/crl) or a directory "
                        "of <product>_<vcek|vlek>.crl files: deny if the SNP chain's ASK/ASVK is revoked")
    v.add_argument("--gpu-ocsp", metavar="URL",
                   help="check GPU device chains with NVIDIA's OCSP responder (network), e.g. https://ocsp.ndis.nvidia.com")
    v.add_argument("--gpu-ocsp-ca", metavar="FILE", help="CA certificate of an OCSP responder mirror")
    v.add_argument("--rim-service", metavar="URL",
                   help="fetch the driver and VBIOS RIMs from NVIDIA's RIM service (network), e.g. "
                        "https://rim.attestation.nvidia.com/v1/rim/")
    v.add_argument("--rim-service-ca", metavar="FILE", help="CA certificate of a RIM service mirror")
    v.add_argument("--rim", nargs="+", help="NVIDIA RIM files (driver and VBIOS), or one directory of RIMs to pick them from")
    v.add_argument("--allow-mock", action="store_true", help="accept UNSAFE mock evidence (development only)")
    v.add_argument("--mock-key-pub", action="append", help="trusted mock platform public key (hex; repeatable)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_cmd_verify)

    c = sub.add_parser("collect", help="collect evidence inside this TEE and write a bundle")
    c.add_argument("--out", "-o", default="-", help="bundle file (default stdout)")
    c.add_argument("--attester", choices=["auto", "snp", "tdx", "mock"], default="auto",
                   help="auto never uses the mock")
    c.add_argument("--gpus", choices=["auto", "none", "required"], default="auto")
    c.add_argument("--mock-key", help="UNSAFE mock platform key file (with --attester mock)")
    c.add_argument("--measurement", help="mock measurement (48 bytes hex, with --attester mock)")
    c.add_argument("--configfs-root", default="/sys/kernel/config/tsm/report")
    _add_binding_args(c)
    c.set_defaults(func=_cmd_collect)

    d = sub.add_parser("detect", help="report which TEE and GPUs this machine offers")
    d.add_argument("--configfs-root", default="/sys/kernel/config/tsm/report")
    d.set_defaults(func=_cmd_detect)

    m = sub.add_parser("mock", help="UNSAFE software mock platform helpers (development only)")
    msub = m.add_subparsers(dest="mock_command", metavar="SUBCOMMAND")
    m.set_defaults(func=lambda _a: (m.print_help(), 2)[1])
    mk = msub.add_parser("keygen", help="make an UNSAFE mock platform key file")
    mk.add_argument("--out", "-o", required=True)
    mk.set_defaults(func=_cmd_mock_keygen)
    mr = msub.add_parser("report", help="sign an UNSAFE mock report and write it as a bundle")
    mr.add_argument("--key", required=True, help="mock platform key file")
    mr.add_argument("--measurement", required=True, help="48 bytes hex")
    mr.add_argument("--debug", action="store_true")
    mr.add_argument("--tcb", type=int, default=0)
    mr.add_argument("--out", "-o", default="-")
    _add_binding_args(mr)
    mr.set_defaults(func=_cmd_mock_report)

    p = sub.add_parser("policy", help="release policy documents")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])
    pc = psub.add_parser("check", help="validate a policy and print its digest")
    pc.add_argument("policy")
    pc.add_argument("--canonical", action="store_true", help="also print the canonical JSON")
    pc.set_defaults(func=_cmd_policy_check)
