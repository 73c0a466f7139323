"""Errors of the SCEP client and message layer (all are :class:`PkiError`)."""

from __future__ import annotations

from agent.errors import PkiError

__all__ = [
    "ScepError",
    "ScepHttpError",
    "ScepProtocolError",
    "ScepRedirectError",
    "ScepTransportError",
    "ScepUrlError",
    "ScepVerificationError",
]


class ScepError(PkiError):
    """Root of every SCEP failure."""

    error_tag = "operation-failed"
    error_app_tag = "scep-error"


class ScepUrlError(ScepError, ValueError):
    """The enrollment URL is not an http(s) URL with a host."""

    error_tag = "invalid-value"
    error_app_tag = "scep-bad-url"


class ScepTransportError(ScepError):
    """The SCEP server could not be reached, or did not answer in time."""

    error_app_tag = "scep-unreachable"

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, info={"url": url})
        self.url = url


class ScepHttpError(ScepTransportError):
    """The SCEP server answered with an HTTP error status."""

    error_app_tag = "scep-http-error"

    def __init__(self, message: str, *, url: str, status: int) -> None:
        super().__init__(message, url=url)
        self.status = status
        self.info["http-status"] = str(status)


class ScepRedirectError(ScepTransportError):
    """The SCEP server redirected to another scheme, host or port, or redirected too often."""

    error_app_tag = "scep-redirect-refused"


class ScepProtocolError(ScepError):
    """A SCEP message is malformed, of the wrong type, or not what was asked for."""

    error_app_tag = "scep-protocol-error"


class ScepVerificationError(ScepError):
    """A SCEP response failed verification: signer, signature, nonce or transaction ID."""

    error_app_tag = "scep-verification-failed"
