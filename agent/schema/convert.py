"""From lxml trees to yangson instance values, checking what parsing can check.

yangson's own ``from_xml`` works on ``xml.etree`` elements, reports errors as
JSON pointers and has gaps for NETCONF (empty strings, XML-prefixed
identityrefs, anydata). This module walks the lxml tree alongside the schema
instead (one cached dict lookup per element) and rejects, with an
RFC 6241/7950 error tag, a prefixed XPath ``path`` and a message for a person:

* elements the schema does not know (``unknown-element``),
* state data in a configuration, data for two cases of one choice, a
  duplicate leaf or container, duplicate list keys or leaf-list values
  (``invalid-value``),
* list entries without their keys (``missing-element``),
* leaf values that do not parse as or do not satisfy their type: range,
  length, pattern, enumeration, bits, identity base (``invalid-value``).

What needs the whole tree (mandatory nodes, ``must``, ``when``, leafrefs,
``unique``, min/max-elements) is left to yangson's validation
(:mod:`agent.schema.validate`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree
from yangson.datatype import (
    BinaryType,
    BitsType,
    BooleanType,
    DataType,
    Decimal64Type,
    EmptyType,
    EnumerationType,
    IdentityrefType,
    InstanceIdentifierType,
    IntegralType,
    LeafrefType,
    LinearType,
    NumericType,
    StringType,
    UnionType,
)
from yangson.exceptions import YangsonException
from yangson.instvalue import ArrayValue, ObjectValue
from yangson.schemanode import SequenceNode, TerminalNode

from agent.errors import SchemaError
from agent.schema.model import NodeInfo, NodeKind, SchemaModel, SchemaNodeRef

__all__ = ["Converter", "PathSeg", "render_path", "xpath_literal"]


@dataclass(frozen=True, slots=True)
class PathSeg:
    """One step of an error path, linked to its parent; rendered only on error."""

    parent: PathSeg | None
    step: str


def render_path(seg: PathSeg | None) -> str:
    """Render a chain of :class:`PathSeg` as an absolute XPath (``/`` for none)."""
    steps: list[str] = []
    while seg is not None:
        steps.append(seg.step)
        seg = seg.parent
    return "/" + "/".join(reversed(steps))


def xpath_literal(value: str) -> str:
    """Quote ``value`` as an XPath 1.0 string literal."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = value.split("'")
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in parts) + ")"


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.([0-9]+))?|\.([0-9]+))")
_PREFIXED_NAME = re.compile(r"(?<![\w.'\"-])([A-Za-z_][\w.-]*):(?=[A-Za-z_])")


class _Bad:
    """Marker for a value that does not belong to its type."""

    __slots__ = ()


_BAD = _Bad()


class Converter:
    """Turns lxml data trees into yangson cooked values for one :class:`SchemaModel`.

    Not thread-safe: yangson records the last failure on shared type objects.
    Callers serialise use (see :mod:`agent.schema.validate`).
    """

    def __init__(self, model: SchemaModel) -> None:
        self.model = model
        self.timestamp = datetime.now()

    # ------------------------------------------------------------ structure

    def object_value(
        self, ref: SchemaNodeRef | None, el: etree._Element, path: PathSeg | None, config: bool
    ) -> ObjectValue:
        """Return the cooked object for the children of ``el`` under schema node ``ref``.

        ``config`` rejects state data (``config false`` nodes).

        Raises:
            SchemaError: as listed in the module docstring.
        """
        table = self.model.child_table(ref)
        members: dict[str, Any] = {}
        seen: dict[str, NodeInfo] = {}
        arrays: dict[str, tuple[NodeInfo, list[Any], list[etree._Element]]] | None = None
        for child in el:
            tag = child.tag
            if not isinstance(tag, str):
                continue  # comment or processing instruction
            info = table.get(tag)
            if info is None:
                raise self._unknown(tag, path)
            if config and not info.config:
                raise _bad(info, path, f"{info.name} is state data (config false) and cannot be configured")
            others = info.other_case_tags
            if others and not others.isdisjoint(seen):
                other = next(seen[t] for t in seen if t in others)
                raise _bad(
                    info,
                    path,
                    f"{info.name} and {other.name} belong to different cases of the same choice and cannot both be set",
                )
            kind = info.kind
            if kind is NodeKind.LEAF:
                if tag in seen:
                    raise _bad(info, path, f"{info.name} appears more than once")
                members[info.json_name] = self.scalar(info, child, path)
            elif kind is NodeKind.CONTAINER:
                if tag in seen:
                    raise _bad(info, path, f"{info.name} appears more than once")
                members[info.json_name] = self.object_value(info.ref, child, PathSeg(path, info.qualified_name), config)
            elif kind is NodeKind.ANYDATA:
                if tag in seen:
                    raise _bad(info, path, f"{info.name} appears more than once")
                members[info.json_name] = _anydata_value(child, self.timestamp)
            else:
                if arrays is None:
                    arrays = {}
                slot = arrays.get(tag)
                if slot is None:
                    slot = arrays[tag] = (info, [], [])
                if kind is NodeKind.LIST:
                    seg = self._entry_seg(info, child, path)
                    slot[1].append(self.object_value(info.ref, child, seg, config))
                else:
                    slot[1].append(self.scalar(info, child, path))
                slot[2].append(child)
            seen[tag] = info
        if arrays is not None:
            for info, values, elements in arrays.values():
                self._check_array(info, values, elements, path, config)
                members[info.json_name] = ArrayValue(values, self.timestamp)
        return ObjectValue(members, self.timestamp)

    def _unknown(self, tag: str, path: PathSeg | None) -> SchemaError:
        ns, _, name = tag[1:].partition("}") if tag[:1] == "{" else ("", "", tag)
        module = self.model.module_of_namespace(ns)
        where = "at the top level" if path is None else f"in {render_path(path)}"
        if not ns:
            why = f"element {name!r} has no XML namespace"
        elif module is None:
            why = f"element {name!r} is in namespace {ns!r}, which no YANG module of this server defines"
        else:
            why = f"module {module} defines no data node {name!r} {where}"
        return SchemaError(
            f"unknown element: {why}",
            error_tag="unknown-element",
            path=render_path(path),
            info={"bad-element": name},
        )

    def _entry_seg(self, info: NodeInfo, el: etree._Element, path: PathSeg | None) -> PathSeg:
        """Return the path step of a list entry, with its key predicates.

        Raises:
            SchemaError: ``missing-element`` if a key leaf is absent.
        """
        preds = []
        for key in info.keys:
            key_el = el.find(key)
            key_name = key.rpartition("}")[2]
            if key_el is None:
                raise SchemaError(
                    f"list entry of {info.name} has no key {key_name}",
                    error_tag="missing-element",
                    path=render_path(PathSeg(path, info.qualified_name)),
                    info={"bad-element": key_name},
                )
            preds.append(f"[{info.prefix}:{key_name}={xpath_literal(key_el.text or '')}]")
        return PathSeg(path, info.qualified_name + "".join(preds))

    def _check_array(
        self,
        info: NodeInfo,
        values: list[Any],
        elements: list[etree._Element],
        path: PathSeg | None,
        config: bool,
    ) -> None:
        if info.kind is NodeKind.LIST and info.keys:
            members = [self._key_member(info, k) for k in info.keys]
            seen: set[tuple[Any, ...]] = set()
            for value, el in zip(values, elements, strict=True):
                key = tuple(value.get(m) for m in members)
                if key in seen:
                    seg = self._entry_seg(info, el, path)
                    raise SchemaError(
                        f"duplicate {info.name} entry {seg.step[len(info.qualified_name) :]}",
                        error_tag="invalid-value",
                        path=render_path(seg),
                        info={"bad-element": info.name},
                    )
                seen.add(key)
        elif info.kind is NodeKind.LEAF_LIST and config:
            seen_values: set[Any] = set()
            for value, el in zip(values, elements, strict=True):
                if value in seen_values:
                    step = f"{info.qualified_name}[.={xpath_literal(el.text or '')}]"
                    raise SchemaError(
                        f"duplicate value {el.text or ''!r} in leaf-list {info.name}",
                        error_tag="invalid-value",
                        path=render_path(PathSeg(path, step)),
                        info={"bad-element": info.name},
                    )
                seen_values.add(value)
        check_element_count(info, len(values), path)

    def _key_member(self, info: NodeInfo, key_tag: str) -> str:
        assert info.ref is not None
        key_info = self.model.node_info(info.ref, key_tag)
        return key_info.json_name if key_info is not None else key_tag

    # -------------------------------------------------------------- scalars

    def scalar(self, info: NodeInfo, el: etree._Element, parent: PathSeg | None) -> Any:
        """Return the cooked value of leaf (or leaf-list entry) element ``el``.

        ``parent`` is the path of the element's parent (for error paths).

        Raises:
            SchemaError: ``invalid-value`` if the text is not a value of the type.
        """
        node = info.schema_node
        assert isinstance(node, TerminalNode)
        if len(el):
            raise _bad(info, parent, f"{info.name} is a {info.kind.value} and cannot contain elements")
        text = el.text or ""
        value = self._parser(node.type)(text, el)
        if value is _BAD:
            message, app_tag = self.explain(node.type, text, el, info.name)
            step = info.qualified_name
            if info.kind is NodeKind.LEAF_LIST:
                step += f"[.={xpath_literal(text)}]"
            raise SchemaError(
                message,
                error_tag="invalid-value",
                error_app_tag=app_tag,
                path=render_path(PathSeg(parent, step)),
                info={"bad-element": info.name},
            )
        return value

    def _parser(self, typ: DataType) -> _Parse:
        """Return the (cached) function turning text into a checked value of ``typ``."""
        entry = _PARSERS.get(id(typ))
        if entry is None or entry[0] is not typ:
            entry = _PARSERS[id(typ)] = (typ, self._make_parser(typ))
        return entry[1]

    def _make_parser(self, typ: DataType) -> _Parse:
        if isinstance(typ, UnionType):
            members = [self._parser(t) for t in typ.types]

            def parse_union(text: str, el: etree._Element | None) -> Any:
                for parse in members:
                    value = parse(text, el)
                    if value is not _BAD:
                        return value
                return _BAD

            return parse_union
        if isinstance(typ, LeafrefType):
            return self._parser(typ.ref_type)
        if isinstance(typ, StringType) and not typ.patterns and typ.length is None:
            return _identity_text

        def check(text: str, el: etree._Element | None) -> Any:
            value = self._lex(typ, text, el)
            if value is _BAD:
                return _BAD
            try:
                return value if value in typ else _BAD
            except (TypeError, YangsonException):
                return _BAD

        if isinstance(typ, (IdentityrefType, InstanceIdentifierType)):
            return check  # the value depends on the prefixes in scope at the element, not only on its text

        # A check is a pure function of the text for the other types, and their values are
        # immutable: a bulk edit repeats most values (URLs, retry settings, key labels), so
        # each distinct short text is checked once. Long texts (certificates, hostile input)
        # are never kept.
        @functools.lru_cache(maxsize=_CHECKED_TEXTS_PER_TYPE)
        def checked(text: str) -> Any:
            return check(text, None)

        def parse(text: str, el: etree._Element | None) -> Any:
            return checked(text) if len(text) <= _CHECKED_TEXT_MAX else check(text, el)

        return parse

    def _lex(self, typ: DataType, text: str, el: etree._Element | None) -> Any:
        """Parse the lexical form of a non-union value (no constraint checks)."""
        if isinstance(typ, StringType):
            return text
        if isinstance(typ, IntegralType):
            text = text.strip()
            return int(text) if _INTEGER.fullmatch(text) else _BAD
        if isinstance(typ, Decimal64Type):
            text = text.strip()
            m = _DECIMAL.fullmatch(text)
            if m is None or len(m.group(1) or m.group(2) or "") > typ.fraction_digits:
                return _BAD
            try:
                return Decimal(text).quantize(typ._epsilon)
            except InvalidOperation:
                return _BAD
        if isinstance(typ, EmptyType):
            return (None,) if not text.strip() else _BAD
        if isinstance(typ, BinaryType):
            value = typ.parse_value("".join(text.split()))
            return _BAD if value is None else value
        if isinstance(typ, IdentityrefType):
            return self._identity(text.strip(), el)
        if isinstance(typ, InstanceIdentifierType):
            value = typ.parse_value(self._json_prefixes(text.strip(), el))
            return _BAD if value is None else value
        if isinstance(typ, BitsType):
            return tuple(text.split())
        if isinstance(typ, (BooleanType, EnumerationType)):
            text = text.strip()
        value = typ.parse_value(text)
        return _BAD if value is None else value

    def _identity(self, text: str, el: etree._Element | None) -> Any:
        prefix, colon, name = text.rpartition(":")
        nsmap = el.nsmap if el is not None else {}
        ns = nsmap.get(prefix if colon else None)
        module = self.model.module_of_namespace(ns) if ns else None
        if module is None and colon and self.model.module(prefix) is not None:
            module = prefix  # RFC 7951 style "module:identity"
        if module is None or not name:
            return _BAD
        return (name, module)

    def _json_prefixes(self, text: str, el: etree._Element | None) -> str:
        """Rewrite the XML prefixes of an instance-identifier as module names."""
        nsmap = el.nsmap if el is not None else {}

        def repl(m: re.Match[str]) -> str:
            ns = nsmap.get(m.group(1))
            module = self.model.module_of_namespace(ns) if ns else None
            return (module or m.group(1)) + ":"

        return _PREFIXED_NAME.sub(repl, text)

    # ------------------------------------------------------------- messages

    def explain(self, typ: DataType, text: str, el: etree._Element | None, name: str) -> tuple[str, str | None]:
        """Return a message for a person and the YANG ``error-app-tag`` (if any)
        saying why ``text`` is not a value of ``typ`` for node ``name``."""
        if isinstance(typ, UnionType):
            kinds = ", ".join(_type_name(t) for t in typ.types)
            return f"value {text!r} is not valid for {name}: it matches none of the types {kinds}", None
        if isinstance(typ, LeafrefType):
            return self.explain(typ.ref_type, text, el, name)
        value = self._lex(typ, text, el)
        if value is _BAD:
            if isinstance(typ, EmptyType):
                return f"{name} is of type empty and cannot have a value (got {text!r})", None
            if isinstance(typ, EnumerationType):
                return _not_enum(text, typ, name), None
            if isinstance(typ, IdentityrefType):
                return f"value {text!r} of {name} does not name a known identity", None
            if isinstance(typ, Decimal64Type):
                return (
                    f"value {text!r} is not a valid decimal64 with at most {typ.fraction_digits} "
                    f"fraction digits for {name}",
                    None,
                )
            return f"value {text!r} is not a valid {_type_name(typ)} for {name}", None
        if isinstance(typ, NumericType):
            rng = typ.range
            if rng is not None and value not in rng:
                return _custom(rng, f"value {value} is out of range {rng} for {name}")
            lo, hi = typ._range
            return f"value {value} is out of range {lo}..{hi} for {name}", None
        if isinstance(typ, LinearType) and typ.length is not None and len(value) not in typ.length:
            unit = "bytes" if isinstance(typ, BinaryType) else "characters"
            return _custom(
                typ.length,
                f"value {text!r} has {len(value)} {unit}, out of the length range {typ.length} for {name}",
            )
        if isinstance(typ, StringType):
            failed = [pat for pat in typ.patterns if (pat.regex.match(value) is not None) == pat.invert_match]
            # A pattern with its own error-message says best what is wrong (a module may repeat an
            # imported type's pattern only to give it one, as ca-agent-system does for domain names).
            failed.sort(key=lambda pat: _custom(pat, "", pat_default=True)[0] == "")
            if failed:
                pat = failed[0]
                verb = "matches" if pat.invert_match else "does not match"
                return _custom(pat, f"value {text!r} {verb} pattern {pat.pattern!r} for {name}", pat_default=True)
        if isinstance(typ, EnumerationType):
            return _not_enum(text, typ, name), None
        if isinstance(typ, BitsType):
            unknown = [b for b in value if b not in typ.bit]
            allowed = ", ".join(typ.bit)
            return f"unknown bit(s) {' '.join(unknown)} for {name} (allowed: {allowed})", None
        if isinstance(typ, IdentityrefType):
            bases = ", ".join(f"{m}:{n}" for n, m in typ.bases)
            return f"identity {value[1]}:{value[0]} is not derived from {bases} for {name}", None
        value in typ  # noqa: B015 - sets typ.error_message
        app_tag = None if typ.error_tag in (None, "invalid-type") else typ.error_tag  # yangson's "no app-tag"
        return f"value {text!r} is not valid for {name}: {typ.error_message}", app_tag


_DEFAULT_MESSAGES = {"not in range", "invalid length"}

_Parse = Callable[[str, "etree._Element | None"], Any]
_PARSERS: dict[int, tuple[DataType, _Parse]] = {}
_CHECKED_TEXTS_PER_TYPE = 512
_CHECKED_TEXT_MAX = 256  # characters


def _identity_text(text: str, el: etree._Element | None) -> Any:
    return text


def _bad(info: NodeInfo, parent: PathSeg | None, message: str) -> SchemaError:
    """An ``invalid-value`` error about element ``info`` under ``parent``."""
    return SchemaError(
        message,
        error_tag="invalid-value",
        path=render_path(PathSeg(parent, info.qualified_name)),
        info={"bad-element": info.name},
    )


def _custom(constraint: Any, default: str, pat_default: bool = False) -> tuple[str, str | None]:
    """Prefer a constraint's YANG ``error-message``; return its ``error-app-tag``."""
    msg = constraint.error_message
    generic = msg is None or msg in _DEFAULT_MESSAGES or (pat_default and msg == f"pattern '{constraint.pattern}'")
    # A YANG string spread over several lines keeps its line breaks: one line reads better in an rpc-error.
    return (default if generic else " ".join(msg.split())), constraint.error_tag


def _not_enum(text: str, typ: EnumerationType, name: str) -> str:
    return f"value {text!r} is not one of {', '.join(typ.enum)} for {name}"


def _type_name(typ: DataType) -> str:
    base = typ.yang_type()
    return f"{typ.name} ({base})" if typ.name and typ.name != base else base


def _anydata_value(el: etree._Element, ts: datetime) -> ObjectValue:
    """A minimal cooked value for anydata/anyxml content (never validated)."""
    members: dict[str, Any] = {}
    for child in el:
        if isinstance(child.tag, str):
            name = etree.QName(child).localname
            members[name] = _anydata_value(child, ts) if len(child) else (child.text or "")
    return ObjectValue(members, ts)


def check_element_count(info: NodeInfo, count: int, path: PathSeg | None) -> None:
    """min-elements / max-elements of a list or leaf-list with ``count`` entries (RFC 7950 7.7.5, 7.7.6).

    Raises SchemaError operation-failed with the too-few/too-many-elements app tag.
    """
    node = info.schema_node
    if isinstance(node, SequenceNode) and (
        count < node.min_elements or (node.max_elements is not None and count > node.max_elements)
    ):
        too_few = count < node.min_elements
        limit = node.min_elements if too_few else node.max_elements
        raise SchemaError(
            f"{info.name} has {count} entries, {'fewer' if too_few else 'more'} than the "
            f"{'min' if too_few else 'max'}-elements {limit}",
            error_tag="operation-failed",
            error_app_tag="too-few-elements" if too_few else "too-many-elements",
            path=render_path(PathSeg(path, info.qualified_name)),
        )
