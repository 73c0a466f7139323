"""Reading RPC input and writing RPC output / state as YANG-shaped XML.

The services layer is the only one that speaks both YANG (element names,
namespaces, value formats) and the backend's Python objects; these helpers
keep that translation short and uniform.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from lxml import etree

from agent.netconf.dispatch import RpcHandler, SessionInfo
from agent.schema.model import SchemaModel
from agent.schema.validate import validate_rpc_input
from agent.xmltree import default_ns, yang_date_and_time

CRYPTO_NS = "urn:ca-agent:yang:crypto"


def tag(name: str, namespace: str = CRYPTO_NS) -> str:
    return f"{{{namespace}}}{name}"


class RpcInput:
    """The validated input leaves of one RPC call."""

    def __init__(self, operation: etree._Element, namespace: str = CRYPTO_NS) -> None:
        self._operation = operation
        self._ns = namespace

    def text(self, name: str) -> str | None:
        element = self._operation.find(tag(name, self._ns))
        if element is None:
            return None
        return element.text or ""

    def flag(self, name: str) -> bool:
        """An empty-type leaf: present or not."""
        return self._operation.find(tag(name, self._ns)) is not None

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.text(name)
        return default if value is None else value.strip() == "true"

    def integer(self, name: str, default: int) -> int:
        value = self.text(name)
        return default if value is None else int(value.strip())


def yang_rpc(model: SchemaModel, rpc_tag: str, handler: Callable[[SessionInfo, RpcInput], Iterable[etree._Element] | None]) -> RpcHandler:
    """Wrap ``handler`` so its input is checked against the RPC's YANG input first.

    Raises (from the wrapper) SchemaError with the RFC 6241 tag and a path
    relative to the RPC, before the handler runs.
    """
    namespace = etree.QName(rpc_tag).namespace or CRYPTO_NS

    def call(session: SessionInfo, operation: etree._Element) -> Iterable[etree._Element] | None:
        validate_rpc_input(rpc_tag, operation, model)
        return handler(session, RpcInput(operation, namespace))

    return call


def leaf(parent: etree._Element, name: str, value: object, namespace: str = CRYPTO_NS) -> etree._Element:
    element = etree.SubElement(parent, tag(name, namespace))
    element.text = _text(value)
    return element


def output_leaf(name: str, value: object, namespace: str = CRYPTO_NS) -> etree._Element:
    """A top-level output element (RFC 7950 7.14.4: children of <rpc-reply>)."""
    element = etree.Element(tag(name, namespace), nsmap=default_ns(namespace))
    element.text = _text(value)
    return element


def container(name: str, namespace: str = CRYPTO_NS) -> etree._Element:
    return etree.Element(tag(name, namespace), nsmap=default_ns(namespace))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return yang_date_and_time(value)
    return str(value)
