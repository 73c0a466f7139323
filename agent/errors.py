"""The one exception root of the agent, and one sub-root per layer.

Only the NETCONF layer turns these into ``<rpc-error>`` (agent/netconf/rpcerror.py);
no code parses an exception's message: the tag, app-tag and path are data.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose.

    Attributes mirror RFC 6241 Appendix A so the NETCONF layer can render them
    without knowing where they came from.
    """

    error_type: str = "application"
    error_tag: str = "operation-failed"
    error_app_tag: str | None = None

    def __init__(
        self,
        message: str,
        *,
        error_tag: str | None = None,
        error_type: str | None = None,
        error_app_tag: str | None = None,
        path: str | None = None,
        info: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if error_tag is not None:
            self.error_tag = error_tag
        if error_type is not None:
            self.error_type = error_type
        if error_app_tag is not None:
            self.error_app_tag = error_app_tag
        self.path = path
        self.info: dict[str, str] = dict(info or {})


class NetconfError(AgentError):
    """A protocol-level failure (bad rpc, unknown element, lock denied...)."""

    error_type = "protocol"


class DatastoreError(AgentError):
    """A datastore operation that cannot be carried out (data-exists, in-use...)."""


class SchemaError(AgentError):
    """Instance data that does not conform to the YANG modules."""


class PkiError(AgentError):
    """A PKI backend failure; the message is meant for a person."""

    error_app_tag = "pki-error"
