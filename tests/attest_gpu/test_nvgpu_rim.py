"""RIM (SWID + xmldsig) handling: canonicalization, structure rules, hostile XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from nvgpu_testlib import RIM_VALID_AT, legacy_rims
from weightseal.attest._errors import AttestationError
from weightseal.attest._nvgpu_rim import (
    C14N_10,
    C14N_11,
    C14N_EXC,
    _parse_xml,
    canonicalize,
    verify_rim,
)

DRV, VB = legacy_rims()


def _reason(data: bytes) -> str:
    with pytest.raises(AttestationError) as ei:
        verify_rim(data, now=RIM_VALID_AT)
    return ei.value.reason


DOC = (
    b'<r:a xmlns:r="urn:r" xmlns:u="urn:unused" xmlns="urn:d" z="1" r:b="2" a="&#xD;x&#9;">'
    b'<b   y="&quot;q&quot;" x="&lt;"><!-- c -->t&amp;&gt;<c/></b>\r\n<u:e/></r:a>'
)


def test_exclusive_c14n_matches_stdlib_c14n2_on_simple_doc() -> None:
    # C14N 2.0 (stdlib) and exclusive C14N 1.0 agree when no QName-in-content is involved.
    root = _parse_xml(DOC)
    mine = canonicalize(root, C14N_EXC).decode()
    ref = ET.canonicalize(DOC.decode(), with_comments=False)
    assert mine == ref


def test_inclusive_c14n_renders_all_inscope_namespaces_on_subtree() -> None:
    root = _parse_xml(DOC)
    b = root.elements()[0]
    out = canonicalize(b, C14N_11).decode()
    assert out.startswith('<b xmlns="urn:d" xmlns:r="urn:r" xmlns:u="urn:unused" x="&lt;" y="&quot;q&quot;">')
    assert out == canonicalize(b, C14N_10).decode()
    ex = canonicalize(b, C14N_EXC).decode()
    assert ex.startswith('<b xmlns="urn:d" x="&lt;"')
    whole = canonicalize(root, C14N_11).decode()
    assert "&#xD;" in whole and "<c></c>" in whole and "<!--" not in whole
    assert whole.startswith('<r:a xmlns="urn:d" xmlns:r="urn:r" xmlns:u="urn:unused" a="&#xD;x&#x9;" z="1" r:b="2">')


def test_real_rims_verify() -> None:
    assert verify_rim(DRV, now=RIM_VALID_AT).colloquial_version == "545.00"
    assert verify_rim(VB, now=RIM_VALID_AT).colloquial_version == "96.00.5E.00.01"


def test_hostile_xml_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxx">]><a>&x;</a>'
    assert _reason(bomb) == "attest.gpu.rim"
    assert _reason(b"<?pi x?>" + DRV) == "attest.gpu.rim"
    assert _reason(b"<a>") == "attest.gpu.rim"
    assert _reason(b"") == "attest.gpu.rim"
    assert _reason(b"\xff\xfe<") == "attest.gpu.rim"
    assert _reason(b"<a>" * 100 + b"</a>" * 100) == "attest.gpu.rim"


def test_signature_structure_rules() -> None:
    # Reference must cover the whole document
    assert _reason(DRV.replace(b'<ds:Reference URI="">', b'<ds:Reference URI="#x">')) == "attest.gpu.rim"
    # SHA-1 / unknown algorithms are refused
    assert _reason(DRV.replace(b"xmldsig-more#ecdsa-sha384", b"xmldsig-more#ecdsa-sha1")) == "attest.gpu.rim"
    assert _reason(DRV.replace(b"xmldsig-more#sha384", b"xmldsig#sha1")) == "attest.gpu.rim"
    # a second Signature element
    sig_at = DRV.index(b"<ds:Signature")
    end = DRV.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    two = DRV[:end] + DRV[sig_at:end] + DRV[end:]
    assert _reason(two) == "attest.gpu.rim"
    # no signature at all
    assert _reason(DRV[:sig_at] + DRV[end:]) == "attest.gpu.rim"
    # a comment or whitespace change inside the signed content breaks the digest? no:
    # comments are excluded from canonical XML, so adding one keeps the signature valid
    with_comment = DRV.replace(b"<ns0:Payload", b"<!-- note --><ns0:Payload", 1)
    assert verify_rim(with_comment, now=RIM_VALID_AT).colloquial_version == "545.00"
    # but whitespace text is signed
    assert _reason(DRV.replace(b"<ns0:Payload", b" <ns0:Payload", 1)) == "attest.gpu.rim"


def test_version_edit_breaks_signature() -> None:
    assert _reason(DRV.replace(b'colloquialVersion="545.00"', b'colloquialVersion="550.90.07"')) == "attest.gpu.rim"
