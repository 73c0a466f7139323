"""RFC 6243 with-defaults: how default values appear in replies.

The datastores store what clients set (basic mode ``explicit``): a leaf is
there only if a client wrote it, whatever its value. On request:

* ``trim`` drops leaves whose value is their schema default;
* ``report-all`` adds every default leaf (and the non-presence containers
  that hold them) that is in effect: not inside an inactive case of a
  choice, not under a ``when``;
* ``report-all-tagged`` does the same and marks every leaf whose value is
  its default with ``wd:default="true"``.

Pure functions on lxml trees; the input tree is never mutated.
"""

from __future__ import annotations

import copy
import enum

from lxml import etree
from yangson.schemanode import CaseNode, ChoiceNode, InternalNode, LeafNode, SchemaNode

from agent.errors import NetconfError
from agent.schema.model import NodeInfo, NodeKind, SchemaModel, SchemaNodeRef
from agent.xmltree import default_ns

WD_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
WD_ATTRIBUTE_NS = "urn:ietf:params:xml:ns:netconf:default:1.0"
DEFAULT_ATTRIBUTE = f"{{{WD_ATTRIBUTE_NS}}}default"
CAPABILITY = (
    "urn:ietf:params:netconf:capability:with-defaults:1.0"
    "?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim"
)


class WithDefaults(enum.Enum):
    REPORT_ALL = "report-all"
    REPORT_ALL_TAGGED = "report-all-tagged"
    TRIM = "trim"
    EXPLICIT = "explicit"


def parse_with_defaults(element: etree._Element | None) -> WithDefaults:
    """The mode asked for by a ``<with-defaults>`` parameter (absent: explicit, the basic mode).

    Raises NetconfError invalid-value for an unknown mode.
    """
    if element is None:
        return WithDefaults.EXPLICIT
    text = (element.text or "").strip()
    try:
        return WithDefaults(text)
    except ValueError:
        modes = ", ".join(mode.value for mode in WithDefaults)
        raise NetconfError(
            f"<with-defaults> must be one of {modes}, not {text!r}",
            error_tag="invalid-value",
            error_type="protocol",
            info={"bad-element": "with-defaults"},
        ) from None


def apply_with_defaults(
    tree: etree._Element, mode: WithDefaults, model: SchemaModel, include_state: bool
) -> etree._Element:
    """``tree`` (a datastore root) as ``mode`` wants it reported; ``tree`` itself is returned for explicit."""
    if mode is WithDefaults.EXPLICIT:
        return tree
    result = copy.deepcopy(tree)
    if mode is WithDefaults.TRIM:
        _trim(result, None, model)
    else:
        _fill(result, None, model, include_state, mode is WithDefaults.REPORT_ALL_TAGGED)
    return result


def is_default(info: NodeInfo, text: str | None) -> bool:
    """Whether a leaf's text is its schema default (compared as values, not strings)."""
    node = info.schema_node
    if info.kind is not NodeKind.LEAF or not isinstance(node, LeafNode) or node.default is None:
        return False
    value = node.type.parse_value((text or "").strip())
    return value is not None and value == node.default


def _trim(element: etree._Element, ref: SchemaNodeRef | None, model: SchemaModel) -> None:
    table = model.child_table(ref)
    for child in list(element):
        if not isinstance(child.tag, str):
            continue
        info = table.get(str(child.tag))
        if info is None:
            continue
        if info.kind is NodeKind.LEAF and is_default(info, child.text):
            element.remove(child)
        elif info.ref is not None:
            _trim(child, info.ref, model)


def _fill(
    element: etree._Element, ref: SchemaNodeRef | None, model: SchemaModel, include_state: bool, tagged: bool
) -> None:
    table = model.child_table(ref)
    present = {str(child.tag) for child in element if isinstance(child.tag, str)}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        info = table.get(str(child.tag))
        if info is None:
            continue
        if info.kind is NodeKind.LEAF:
            if tagged and is_default(info, child.text):
                child.set(DEFAULT_ATTRIBUTE, "true")
        elif info.ref is not None:
            _fill(child, info.ref, model, include_state, tagged)
    for info in model.children(ref):
        if info.tag in present or (not include_state and not info.config):
            continue
        if not _in_effect(info, present, model):
            continue
        if info.kind is NodeKind.LEAF and info.default is not None:
            leaf = _default_leaf(info, model)
            if tagged:
                leaf.set(DEFAULT_ATTRIBUTE, "true")
            element.append(leaf)
        elif info.kind is NodeKind.CONTAINER and not info.presence and info.ref is not None:
            container = etree.Element(info.tag, nsmap=_own_nsmap(info.tag))
            _fill(container, info.ref, model, include_state, tagged)
            if len(container):
                element.append(container)


def _in_effect(info: NodeInfo, present: set[str], model: SchemaModel) -> bool:
    """No ``when`` on the way, and every enclosing case is the active (or default) one."""
    node: SchemaNode | None = info.schema_node
    if node is None or node.when is not None:
        return False
    parent = node.parent
    while isinstance(parent, (CaseNode, ChoiceNode)):
        if parent.when is not None:
            return False
        if isinstance(parent, CaseNode):
            choice = parent.parent
            assert isinstance(choice, ChoiceNode)
            active = _active_case(choice, present, model)
            if active is None:
                if choice.default_case != (parent.name, parent.ns):
                    return False
            elif active is not parent:
                return False
        parent = parent.parent
    return True


def _active_case(choice: ChoiceNode, present: set[str], model: SchemaModel) -> CaseNode | None:
    for case in choice.children:
        if isinstance(case, CaseNode) and any(tag in present for tag in _data_tags(case, model)):
            return case
    return None


def _data_tags(node: InternalNode, model: SchemaModel) -> list[str]:
    tags: list[str] = []
    for child in node.children:
        if isinstance(child, (CaseNode, ChoiceNode)):
            tags.extend(_data_tags(child, model))
        else:
            tags.append(model.clark(child))
    return tags


def _default_leaf(info: NodeInfo, model: SchemaModel) -> etree._Element:
    text = info.default or ""
    leaf = etree.Element(info.tag, nsmap=_own_nsmap(info.tag))
    module, colon, name = text.partition(":")
    namespace = model.namespace_of(module) if colon else None
    if namespace is not None:  # an identityref default, "module:identity" in yangson's form
        prefix = model.prefix_of_namespace(namespace) or module
        leaf = etree.Element(info.tag, nsmap={**_own_nsmap(info.tag), prefix: namespace})
        text = f"{prefix}:{name}"
    leaf.text = text
    return leaf


def _own_nsmap(tag: str) -> dict[str, str]:
    return dict(default_ns(etree.QName(tag).namespace))
