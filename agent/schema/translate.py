"""Translating yangson's validation exceptions into :class:`agent.errors.SchemaError`.

This is the one place that knows yangson's exception classes and tags; it
maps them to RFC 6241 Appendix A / RFC 7950 section 15 error tags and
app-tags, renders yangson instance nodes as absolute XPaths with the
modules' prefixes and key predicates, and writes messages for people.
"""

from __future__ import annotations

import re
from typing import Any

from yangson.constraint import Must
from yangson.datatype import LinkType
from yangson.enumerations import ContentType
from yangson.exceptions import SchemaError as YangsonSchemaError
from yangson.exceptions import SemanticError, YangsonException, YangTypeError
from yangson.instance import ArrayEntry, InstanceNode
from yangson.instvalue import ArrayValue, ObjectValue
from yangson.schemanode import (
    ChoiceNode,
    ContainerNode,
    DataNode,
    InputNode,
    InternalNode,
    LeafListNode,
    ListNode,
    NotificationNode,
    OutputNode,
    RpcActionNode,
    SchemaNode,
    SequenceNode,
    TerminalNode,
)

from agent.errors import SchemaError
from agent.schema.convert import Converter, xpath_literal
from agent.schema.model import SchemaModel

__all__ = ["instance_path", "missing_data", "missing_instance", "must_violation", "translate"]


def _qname(model: SchemaModel, node: SchemaNode) -> str:
    module = model.module(str(node.ns))
    return f"{module.prefix if module is not None else node.ns}:{node.name}"


def _entry_predicates(model: SchemaModel, node: ListNode | LeafListNode, value: Any, index: int) -> str:
    if isinstance(node, LeafListNode):
        return f"[.={xpath_literal(str(node.type.canonical_string(value)))}]"
    if not node.keys or not isinstance(value, ObjectValue):
        return f"[{index + 1}]"
    preds = []
    for name, ns in node.keys:
        key_node = node.get_data_child(name, ns)
        member = name if ns == node.ns else f"{ns}:{name}"
        raw = value.get(member)
        text = raw if key_node is None or raw is None else key_node.type.canonical_string(raw)
        preds.append(f"[{_qname(model, key_node or node)}={xpath_literal(str(text))}]")
    return "".join(preds)


def instance_path(model: SchemaModel, inst: InstanceNode) -> str:
    """Return the absolute XPath of a yangson instance node, with prefixes and key predicates.

    For an instance inside RPC input, the path starts at the RPC (``/p:rpc/p:leaf``).
    Never raises.
    """
    steps: list[str] = []
    node: InstanceNode | None = inst
    while node is not None and node.parinst is not None:
        sn = node.schema_node
        if isinstance(node, ArrayEntry):
            assert isinstance(sn, (ListNode, LeafListNode))
            steps.append(_qname(model, sn) + _entry_predicates(model, sn, node.value, node.index))
            node = node.parinst.parinst  # skip the array holding the entry
            continue
        if not isinstance(sn, (InputNode, OutputNode)):
            steps.append(_qname(model, sn))
        node = node.parinst
    if node is not None and isinstance(node.schema_node, RpcActionNode):
        steps.append(_qname(model, node.schema_node))
    return "/" + "/".join(reversed(steps))


def _child_path(model: SchemaModel, inst: InstanceNode, child: SchemaNode) -> str:
    base = instance_path(model, inst)
    return ("" if base == "/" else base) + "/" + _qname(model, child)


# --------------------------------------------------------------------------
# Translating yangson's exceptions


def translate(model: SchemaModel, conv: Converter, exc: YangsonException, ctype: ContentType) -> SchemaError:
    try:
        if isinstance(exc, YangsonSchemaError):
            return _schema_error(model, exc, ctype)
        if isinstance(exc, SemanticError):
            return _semantic_error(model, exc)
        if isinstance(exc, YangTypeError):
            return _type_error(model, conv, exc)
    except YangsonException as again:  # pragma: no cover - defensive
        return SchemaError(f"validation failed: {again}", error_tag="operation-failed")
    return SchemaError(f"validation failed: {type(exc).__name__}: {exc}", error_tag="operation-failed")


def _schema_error(model: SchemaModel, exc: YangsonSchemaError, ctype: ContentType) -> SchemaError:
    inst = exc.instance
    sn = inst.schema_node
    tag = exc.tag or ""
    if tag.endswith("member-not-allowed") and isinstance(sn, InternalNode):
        member = exc.message or ""
        child = sn.get_data_child(*sn._iname2qname(member))
        name = child.name if child is not None else member
        path = _child_path(model, inst, child) if child is not None else instance_path(model, inst)
        return SchemaError(
            f"{name} is not allowed here: a 'when' condition on it is false",
            error_tag="unknown-element",
            path=path,
            info={"bad-element": str(name)},
        )
    if tag == "missing-data" and isinstance(sn, InternalNode):
        return missing_data(model, inst, sn, ctype)
    if tag == "list-key-missing":
        return SchemaError(
            f"list entry has no key {exc.message}",
            error_tag="missing-element",
            path=instance_path(model, inst),
            info={"bad-element": str(exc.message)},
        )
    return SchemaError(
        f"invalid data in {sn.name}: {tag} {exc.message or ''}".rstrip(),
        error_tag="invalid-value",
        path=instance_path(model, inst),
    )


def missing_data(model: SchemaModel, inst: InstanceNode, sn: InternalNode, ctype: ContentType) -> SchemaError:
    """Say which mandatory node, choice or list entries are missing under ``inst``.

    Worked out from the schema rather than from yangson's error (whose
    ``_mandatory_members`` crashes on some choices, see :mod:`agent.schema.validate`).
    """
    value = inst.value if isinstance(inst.value, ObjectValue) else ObjectValue()
    where = sn.name or "the top level"
    found = _first_missing(sn, inst, value, ctype)
    if found is None:
        return SchemaError(
            f"mandatory data missing in {where}",
            error_tag="missing-element",
            path=instance_path(model, inst),
        )
    if isinstance(found, ChoiceNode):
        options = ", ".join(str(n.name) for n in found.data_children())
        return SchemaError(
            f"choice {found.name} in {where} is mandatory: one of {options} must be set",
            error_tag="data-missing",
            error_app_tag="missing-choice",
            path=instance_path(model, inst),
            info={"missing-choice": str(found.name)},
        )
    child = found
    if isinstance(child, SequenceNode) and child.min_elements > 0:
        return SchemaError(
            f"{child.name} needs at least {child.min_elements} entries, has none",
            error_tag="operation-failed",
            error_app_tag="too-few-elements",
            path=_child_path(model, inst, child),
        )
    path = _child_path(model, inst, child)
    missing: SchemaNode = child
    # Point at the mandatory leaf inside a missing non-presence container.
    while isinstance(missing, ContainerNode) and not missing.presence:
        inner = next(
            (
                c
                for c in missing.data_children()
                if (c.mandatory_config if ctype == ContentType.config else c.mandatory)
            ),
            None,
        )
        if inner is None:
            break
        missing = inner
        path += "/" + _qname(model, inner)
    return SchemaError(
        f"mandatory {_kind(missing)} {missing.name} is missing",
        error_tag="missing-element",
        path=path,
        info={"bad-element": str(missing.name)},
    )


def _first_missing(
    sn: InternalNode, inst: InstanceNode, value: ObjectValue, ctype: ContentType
) -> DataNode | ChoiceNode | None:
    """Return the first mandatory child (or unset mandatory choice) of ``sn`` absent from ``value``."""
    for child in sn.children:
        if isinstance(child, (RpcActionNode, NotificationNode)):
            continue
        if ctype == ContentType.config and not child.config:
            continue
        if isinstance(child, ChoiceNode):
            active = child._active_case(value)
            if active is None:
                if child.mandatory and _when_holds(child, inst):
                    return child
            elif _when_holds(active, inst):
                found = _first_missing(active, inst, value, ctype)
                if found is not None:
                    return found
        elif isinstance(child, DataNode):
            mandatory = child.mandatory_config if ctype == ContentType.config else child.mandatory
            if mandatory and child.iname() not in value and _when_holds(child, inst, child.iname()):
                return child
    return None


def _when_holds(node: SchemaNode, inst: InstanceNode, member: str | None = None) -> bool:
    """Evaluate ``node``'s ``when`` as yangson does (on a placeholder member); true if none."""
    if node.when is None:
        return True
    try:
        context = inst.put_member(member, (None,)) if member else inst
        return bool(node.when.evaluate(context))
    except YangsonException:
        return True


def _kind(node: SchemaNode) -> str:
    return node._yang_class().replace("_", "-") if isinstance(node, DataNode) else "node"


def _semantic_error(model: SchemaModel, exc: SemanticError) -> SchemaError:
    inst = exc.instance
    sn = inst.schema_node
    tag = exc.tag or ""
    if isinstance(inst.value, ArrayValue) and not isinstance(inst, ArrayEntry):
        return _list_error(model, inst, sn, tag)
    if isinstance(sn, DataNode):
        for must in sn.must:
            if not must.expression.evaluate(inst):
                return must_violation(model, sn, must, inst)
    if tag == "instance-required" and isinstance(sn, TerminalNode):
        return missing_instance(model, sn, inst)
    return SchemaError(
        f"{sn.name}: {exc.message or tag}",
        error_tag="operation-failed",
        error_app_tag=tag or None,
        path=instance_path(model, inst),
    )


def must_violation(model: SchemaModel, sn: DataNode, must: Must, inst: InstanceNode) -> SchemaError:
    """The RFC 7950 15.4 error for ``must`` of ``sn`` being false at ``inst``."""
    message = must.error_message or (
        f"{sn.name} violates the condition {_prefixed_xpath(model, str(must.expression))!r}"
    )
    return SchemaError(
        message,
        error_tag="operation-failed",
        error_app_tag=must.error_tag or "must-violation",
        path=instance_path(model, inst),
    )


def missing_instance(model: SchemaModel, sn: TerminalNode, inst: InstanceNode) -> SchemaError:
    """The RFC 7950 15.5 error for a leafref/instance-identifier whose target is missing."""
    typ = sn.type
    target = getattr(typ, "path", None) if isinstance(typ, LinkType) else None
    toward = f" (no {_prefixed_xpath(model, str(target))} has that value)" if target is not None else ""
    shown = typ.canonical_string(inst.value)
    return SchemaError(
        f"{sn.name} refers to {shown!r}, which does not exist{toward}",
        error_tag="data-missing",
        error_app_tag="instance-required",
        path=instance_path(model, inst),
    )


def _list_error(model: SchemaModel, inst: InstanceNode, sn: SchemaNode, tag: str) -> SchemaError:
    """Errors about a whole list or leaf-list: cardinality, keys, ``unique``."""
    path = instance_path(model, inst)
    count = len(inst.value)
    if tag in ("too-many-elements", "too-few-elements") and isinstance(sn, SequenceNode):
        few = tag == "too-few-elements"
        return SchemaError(
            f"{sn.name} has {count} entries, {'fewer' if few else 'more'} than the "
            f"{'min' if few else 'max'}-elements {sn.min_elements if few else sn.max_elements}",
            error_tag="operation-failed",
            error_app_tag=tag,
            path=path,
        )
    if tag.startswith("data-not-unique") and isinstance(sn, ListNode) and sn.unique:
        return not_unique(model, inst, sn, sn.unique[0], tag)
    if tag in ("non-unique-key", "repeated-leaf-list-value"):
        return SchemaError(
            f"{sn.name} has duplicate entries", error_tag="invalid-value", path=path, info={"bad-element": str(sn.name)}
        )
    return SchemaError(f"{sn.name}: {tag}", error_tag="operation-failed", error_app_tag=tag or None, path=path)


def not_unique(model: SchemaModel, inst: InstanceNode, sn: ListNode, spec: list[Any], tag: str) -> SchemaError:
    """The RFC 7950 15.1 error: an entry of list ``inst`` repeats the ``unique`` values ``spec``.

    ``tag`` is yangson's ``data-not-unique: entry N``, the index of the offending entry.
    """
    count = len(inst.value)
    index = int(tag.rpartition(" ")[2]) if tag[-1:].isdigit() else 0
    entry = inst.value[index] if index < count else None
    entry_path = instance_path(model, inst) + _entry_predicates(model, sn, entry, index)
    leaves = [_prefixed_xpath(model, str(expr)) for expr in spec]
    return SchemaError(
        f"entries of {sn.name} must have unique values of {', '.join(leaves)}; "
        "this entry repeats those of an earlier one",
        error_tag="operation-failed",
        error_app_tag="data-not-unique",
        path=entry_path,
        info={"non-unique": " ".join(f"{entry_path}/{leaf}" for leaf in leaves)},
    )


def _type_error(model: SchemaModel, conv: Converter, exc: YangTypeError) -> SchemaError:
    inst = exc.instance
    sn = inst.schema_node
    if isinstance(sn, TerminalNode):
        text = sn.type.canonical_string(inst.value) if inst.value is not None else ""
        message, app_tag = conv.explain(sn.type, str(text), None, str(sn.name))
    else:  # pragma: no cover - yangson raises this for terminal nodes only
        message, app_tag = f"invalid value for {sn.name}: {exc.message}", None
    return SchemaError(
        message,
        error_tag="invalid-value",
        error_app_tag=app_tag,
        path=instance_path(model, inst),
        info={"bad-element": str(sn.name)},
    )


_MODULE_PREFIX = re.compile(r"([A-Za-z_][\w.-]*):")


def _prefixed_xpath(model: SchemaModel, text: str) -> str:
    """Replace yangson's module-name qualifiers in an XPath rendering by YANG prefixes."""

    def repl(m: re.Match[str]) -> str:
        module = model.module(m.group(1))
        return (module.prefix if module is not None else m.group(1)) + ":"

    return _MODULE_PREFIX.sub(repl, text)
