"""The one place that relies on pyhanko-certvalidator behaviour outside its documented API.

pyhanko-certvalidator reports a certificate whose signature does not verify
as a plain ``PathValidationError`` (no subclass). It raises that error inside
``except InvalidSignature:``, so Python chains the ``InvalidSignature`` as the
error's ``__context__``; :func:`is_bad_signature` reads that to tell "bad
signature" from other path failures, instead of parsing the message.
tests/unit/pki/test_certvalidator_adapter.py proves it on a forged certificate.

The version is checked at import: a release outside the tested range fails
loudly here instead of silently changing a verdict.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator import __version_info__ as _VERSION
from pyhanko_certvalidator.errors import PathValidationError

__all__ = ["SUPPORTED_VERSIONS", "is_bad_signature"]

SUPPORTED_VERSIONS = ((0, 33), (0, 34))
"""[low, high) major.minor range of pyhanko-certvalidator whose behaviour is tested."""

if not SUPPORTED_VERSIONS[0] <= tuple(_VERSION[:2]) < SUPPORTED_VERSIONS[1]:  # pragma: no cover - install-time guard
    raise ImportError(
        f"pyhanko-certvalidator {'.'.join(map(str, _VERSION))} is outside the tested range "
        f"{SUPPORTED_VERSIONS[0]}..{SUPPORTED_VERSIONS[1]}: re-run tests/unit/pki/test_certvalidator_adapter.py "
        "and widen SUPPORTED_VERSIONS in agent/pki/certvalidator_adapter.py"
    )


def is_bad_signature(error: BaseException) -> bool:
    """Whether a path validation error means a certificate's signature did not verify. Raises nothing."""
    return isinstance(error, PathValidationError) and isinstance(error.__context__, InvalidSignature)
