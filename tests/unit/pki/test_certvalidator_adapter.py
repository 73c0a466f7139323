"""agent.pki.certvalidator_adapter: the pyhanko-certvalidator behaviour the agent relies on beyond its API."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path

import pytest
from asn1crypto import x509 as ax509
from pyhanko_certvalidator import CertificateValidator, ValidationContext, __version_info__
from pyhanko_certvalidator.errors import PathValidationError

sys.path.insert(0, str(Path(__file__).parent))

from trust_helpers import NOW, MiniCa, der  # noqa: E402

from agent.pki.certvalidator_adapter import SUPPORTED_VERSIONS, is_bad_signature  # noqa: E402


def _validate(ca: MiniCa, cert) -> Exception:
    context = ValidationContext(trust_roots=[ax509.Certificate.load(der(ca.cert))], moment=NOW)
    with pytest.raises(PathValidationError) as caught:
        asyncio.run(CertificateValidator(ax509.Certificate.load(der(cert)), validation_context=context).async_validate_path())
    return caught.value


def test_version_in_tested_range() -> None:
    assert SUPPORTED_VERSIONS[0] <= tuple(__version_info__[:2]) < SUPPORTED_VERSIONS[1]


def test_a_forged_signature_is_recognised() -> None:
    ca = MiniCa.root("Adapter CA")
    forged, _ = ca.issue("forged", sign_with=MiniCa.root("impostor").key)
    assert is_bad_signature(_validate(ca, forged))


def test_other_failures_are_not_signature_failures() -> None:
    ca = MiniCa.root("Adapter CA 2")
    expired, _ = ca.issue("old", not_before=NOW - dt.timedelta(days=9), not_after=NOW - dt.timedelta(days=1))
    assert not is_bad_signature(_validate(ca, expired))
    assert not is_bad_signature(ValueError("signature"))
