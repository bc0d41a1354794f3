"""RimStore: a directory of a fleet's NVIDIA RIMs, from which each report's driver and VBIOS RIM
are picked by version and verified as usual (real nvtrust legacy report and RIMs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nvgpu_testlib import LEGACY_NONCE, RIM_VALID_AT, hopper, legacy, legacy_rims
from weightseal.attest._errors import AttestationError
from weightseal.attest._nvgpu import verify_gpu
from weightseal.attest._nvgpu_rim import RimStore

DRIVER, VBIOS = "545.00", "96.00.5e.00.01"  # the legacy sample's versions (its report)
VBIOS_RIM = "96.00.5E.00.01"  # as the VBIOS RIM spells it


def _store(tmp_path: Path, *, driver: bool = True, vbios: bool = True) -> Path:
    d = tmp_path / "rims"
    d.mkdir()
    drv, vb = legacy_rims()
    if driver:
        (d / "a.swidtag").write_bytes(drv)
    if vbios:
        (d / "b.xml").write_bytes(vb)
    (d / "README.txt").write_text("not a RIM")  # skipped
    (d / ".hidden.swidtag").write_bytes(drv)  # hidden files are ignored
    return d


def _reason(fn, *a, **kw) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(AttestationError) as ei:
        fn(*a, **kw)
    return str(ei.value.reason), str(ei.value)


def test_store_picks_the_pair_and_verifies_like_explicit_rims(tmp_path: Path) -> None:
    store = RimStore(_store(tmp_path))
    assert store.versions() == {"a.swidtag": DRIVER, "b.xml": VBIOS_RIM}
    rep, certs = legacy()
    c = verify_gpu(rep, certs, now=RIM_VALID_AT, expected_nonce=LEGACY_NONCE, rims=store)
    ref = verify_gpu(rep, certs, now=RIM_VALID_AT, expected_nonce=LEGACY_NONCE, rims=legacy_rims())
    assert c.measurements_verified is True and c == ref
    assert store.select(DRIVER.upper(), VBIOS.upper()) == tuple(legacy_rims())  # versions compare case-blind


def test_store_rims_are_still_verified(tmp_path: Path) -> None:
    d = _store(tmp_path)
    rep, certs = legacy()
    assert _reason(verify_gpu, rep, certs, rims=RimStore(d))[0] == "attest.gpu.rim_expired"  # today
    old = b'index="7" active="True" alternatives="1" ns2:Hash0="0e0ee161'
    drv = (d / "a.swidtag").read_bytes()
    (d / "a.swidtag").write_bytes(drv.replace(old, old[:-1] + b"2"))
    assert _reason(verify_gpu, rep, certs, now=RIM_VALID_AT, rims=RimStore(d))[0] == "attest.gpu.rim"


def test_missing_and_ambiguous_versions(tmp_path: Path) -> None:
    rep, certs = legacy()
    d = _store(tmp_path, vbios=False)
    reason, msg = _reason(verify_gpu, rep, certs, now=RIM_VALID_AT, rims=RimStore(d))
    assert reason == "attest.gpu.rim" and f"no RIM for VBIOS version {VBIOS}" in msg
    (d / "b.xml").write_bytes(legacy_rims()[1])
    (d / "copy-of-driver.swidtag").write_bytes(legacy_rims()[0])
    reason, msg = _reason(verify_gpu, rep, certs, now=RIM_VALID_AT, rims=RimStore(d))
    assert reason == "attest.gpu.rim" and "several RIMs for driver version 545.00" in msg
    assert "a.swidtag" in msg and "copy-of-driver.swidtag" in msg
    # a report from another driver finds nothing (the hopper sample runs driver 550.90.07)
    hrep, hcerts = hopper()
    reason, msg = _reason(verify_gpu, hrep, hcerts, now=RIM_VALID_AT, rims=RimStore(d))
    assert reason == "attest.gpu.rim" and "no RIM for driver version 550.90.07" in msg


def test_changes_are_picked_up_without_a_new_store(tmp_path: Path) -> None:
    d = _store(tmp_path, driver=False)
    store = RimStore(d)
    assert store.versions() == {"b.xml": VBIOS_RIM}
    (d / "a.swidtag").write_bytes(legacy_rims()[0])
    assert store.versions() == {"a.swidtag": DRIVER, "b.xml": VBIOS_RIM}
    (d / "b.xml").write_text("<broken")
    st = (d / "b.xml").stat()
    os.utime(d / "b.xml", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # another mtime
    assert store.versions() == {"a.swidtag": DRIVER}
    (d / "a.swidtag").unlink()
    assert store.versions() == {}


def test_missing_directory(tmp_path: Path) -> None:
    reason, msg = _reason(RimStore, tmp_path / "absent")
    assert reason == "attest.gpu.rim" and "does not exist" in msg


def test_directory_removed_under_a_running_service(tmp_path: Path) -> None:
    d = _store(tmp_path)
    store = RimStore(d)
    assert len(store.versions()) == 2
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    reason, msg = _reason(store.versions)
    assert reason == "attest.gpu.rim" and "cannot list RIM directory" in msg
    rep, certs = legacy()
    assert _reason(verify_gpu, rep, certs, now=RIM_VALID_AT, rims=store)[0] == "attest.gpu.rim"
