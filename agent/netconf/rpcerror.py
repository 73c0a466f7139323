"""The one place where exceptions become <rpc-error> elements (RFC 6241 Appendix A)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from lxml import etree

from agent.errors import AgentError
from agent.xmltree import default_ns

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
log = logging.getLogger(__name__)


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NC_NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def rpc_error(error: AgentError, prefixes: Mapping[str, str]) -> etree._Element:
    """Render one AgentError; ``prefixes`` maps prefix -> namespace for error-path."""
    element = etree.Element(f"{{{NC_NS}}}rpc-error", nsmap=default_ns(NC_NS))
    _sub(element, "error-type", error.error_type)
    _sub(element, "error-tag", error.error_tag)
    _sub(element, "error-severity", "error")
    if error.error_app_tag:
        _sub(element, "error-app-tag", error.error_app_tag)
    if error.path:
        _sub(element, "error-path", error.path)  # its prefixes are declared on <rpc-reply>: path_prefixes()
    message = _sub(element, "error-message", error.message)
    message.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    if error.info:
        info = _sub(element, "error-info")
        for name, value in error.info.items():
            _sub(info, name, value)
    return element


def unexpected_error(exc: BaseException) -> AgentError:
    """A bug or an unforeseen failure: logged with its traceback, reported plainly."""
    log.error("unexpected error while handling an rpc", exc_info=exc)
    return AgentError(f"internal error: {type(exc).__name__}: {exc}", error_tag="operation-failed")


def path_prefixes(errors: Iterable[AgentError], prefixes: Mapping[str, str]) -> dict[str, str]:
    """The prefix declarations the errors' error-paths need (``nc`` and module prefixes)."""
    needed: dict[str, str] = {}
    for error in errors:
        if error.path:
            needed.update({p: ns for p, ns in prefixes.items() if f"{p}:" in error.path})
            if "nc:" in error.path:
                needed["nc"] = NC_NS
    return needed


def rpc_reply(
    attrib: Mapping[str, str], children: Iterable[etree._Element], nsmap: Mapping[str, str] | None = None
) -> etree._Element:
    """An <rpc-reply> carrying the rpc's attributes (message-id and any others).

    ``nsmap`` holds the rpc's prefix declarations, so that attributes in
    other namespaces come back with their own prefixes (RFC 6241 4.2), and
    those error-paths use. The base namespace stays the default one (listed
    first, lxml names the reply's elements with it).
    """
    declared = {**default_ns(NC_NS), **{p: ns for p, ns in (nsmap or {}).items() if p}}
    reply = etree.Element(f"{{{NC_NS}}}rpc-reply", nsmap=declared)
    for name, value in attrib.items():
        reply.set(name, value)
    for child in children:
        reply.append(child)
    return reply
