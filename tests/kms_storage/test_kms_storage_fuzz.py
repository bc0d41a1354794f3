"""Property tests: the audit-log reader/verifier and the registry parser raise only our errors."""

from __future__ import annotations

import json

import nacl.signing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from weightseal.kms._audit import AuditLog, iter_records, verify_log
from weightseal.kms._errors import AuditError, KmsError
from weightseal.kms._registry import ModelRecord

SK = nacl.signing.SigningKey(b"\x09" * 32)
PK = bytes(SK.verify_key)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_verify_never_crashes_on_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "a.log"
    p.write_bytes(data)
    res = verify_log(p, PK)
    # random bytes are never a valid log (only the empty file is)
    assert res.ok == (data == b"")
    try:
        list(iter_records(p))
    except AuditError as exc:
        assert exc.reason == "audit.parse"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0, max_value=10_000), byte=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_detected(tmp_path_factory, pos, byte):
    p = tmp_path_factory.mktemp("fz") / "a.log"
    with AuditLog(p, SK, replica="r", checkpoint_every=2) as log:
        for i in range(3):
            log.append({"kind": "grant", "model": f"m{i}", "decision": "grant"})
    data = bytearray(p.read_bytes())
    original = [json.loads(x) for x in data.splitlines()]
    i = pos % len(data)
    if data[i] == byte:
        return
    data[i] = byte
    p.write_bytes(bytes(data))
    res = verify_log(p, PK, strict=True)
    # Lines must be canonical, so no byte can change unnoticed.
    assert not res.ok and res.errors
    assert original != [] and min(x.line for x in res.errors) <= bytes(data)[:i + 1].count(b"\n") + 1


@settings(max_examples=300, deadline=None)
@given(obj=json_values)
def test_registry_parser_only_raises_kms_errors(obj):
    try:
        ModelRecord.from_json(obj)
    except KmsError as exc:
        assert exc.reason == "registry.corrupt"


@settings(max_examples=200, deadline=None)
@given(extra=st.dictionaries(st.sampled_from(["owner", "versions", "latest_version", "revoked",
                                              "policy_version", "model_id", "created_at"]),
                             json_values, max_size=3))
def test_registry_parser_mutations(extra):
    base = ModelRecord(model_id="m", owner="o", policy_json="{}", policy_digest="sha256:00",
                       policy_version=1, versions={}, latest_version=0).to_json()
    base.update(extra)
    try:
        rec = ModelRecord.from_json(base)
    except KmsError as exc:
        assert exc.reason == "registry.corrupt"
    else:
        assert rec.to_json() == base
