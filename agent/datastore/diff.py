"""What changed between two configuration trees, as a list of edits.

Used for the commit history (``show configuration commit changes``) and for
RFC 6470 ``netconf-config-change`` notifications: each :class:`Change` names
one node by a prefixed instance-identifier and says whether it was created,
deleted or replaced (a leaf's new value, or an entry whose leaves changed).

Cost is linear in the size of the trees: subtrees whose serializations are
equal are skipped whole (one C-level comparison), and list entries are
paired by their keys, not by position. When the edit engine said which
subtrees it touched (:data:`agent.datastore.edit.ChangeSet`), only those
are compared, so the cost follows the size of the change; the result is the
same, in the same order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple

from lxml import etree

from agent.datastore.edit import ChangeSet, NodePath, PathNamer, SchemaLookup
from agent.schema.convert import xpath_literal
from agent.schema.model import AccessDefault, NodeInfo, NodeKind
from agent.xmltree import MANY_LOOKUPS, keyed_children, keyed_index


class ChangeKind(enum.StrEnum):
    """A str as well, so that JSON writes a change (a named tuple) as it is: ``[path, "create", old, new]``."""

    CREATE = "create"
    DELETE = "delete"
    REPLACE = "replace"


class Change(NamedTuple):
    """One changed node: ``path`` (prefixed instance-identifier), kind, and leaf values.

    ``hidden``: something inside a secret node (``nacm:default-deny-all``:
    a password hash, ``/nacm``) changed; ``path`` is then the secret's
    parent ("" at the top level), never the secret itself. (A named tuple:
    a bulk create records thousands, and a frozen dataclass costs twice as
    much to make.)
    """

    path: str
    kind: ChangeKind
    old_value: str | None = None
    new_value: str | None = None
    hidden: bool = False


_tuple_new = tuple.__new__


def diff_trees(
    old: etree._Element, new: etree._Element, schema: SchemaLookup, namer: PathNamer, touched: ChangeSet = None,
) -> list[Change]:
    """The changes that turn ``old`` into ``new`` (both datastore roots), in document order.

    ``touched``, when known, lists every subtree where the trees may differ.
    """
    changes: list[Change] = []
    _diff_roots(old, new, schema, namer, touched, changes)
    return changes


def _diff_roots(
    old: etree._Element, new: etree._Element, schema: SchemaLookup, namer: PathNamer, touched: ChangeSet,
    out: list[Change],
) -> None:
    if touched is None or () in touched:
        _diff_children(old, new, None, "", schema, namer, out)
    else:
        _diff_touched(old, new, None, "", schema, namer, out, _tree_of(touched))


class _Differs(Exception):
    """Raised at the first change found by :func:`trees_differ`."""


class _FirstChange(list[Change]):
    """An output list that stops the walk at its first change."""

    def append(self, change: Change) -> None:
        raise _Differs


def trees_differ(
    old: etree._Element, new: etree._Element, schema: SchemaLookup, namer: PathNamer, touched: ChangeSet = None,
) -> bool:
    """Whether :func:`diff_trees` would find any change (it stops at the first: a bulk create is new at once)."""
    try:
        _diff_roots(old, new, schema, namer, touched, _FirstChange())
    except _Differs:
        return True
    return False


_Tree = dict[tuple[str, ...], "_Tree | None"]  # None: the whole subtree may have changed


def _tree_of(touched: frozenset[NodePath]) -> _Tree:
    root: _Tree = {}
    for path in sorted(touched, key=len):
        level: _Tree | None = root
        for index, step in enumerate(path):
            assert level is not None
            if step in level and level[step] is None:
                break  # an ancestor is touched whole
            if index == len(path) - 1:
                level[step] = None
            else:
                level = level.setdefault(step, {})
    return root


def _child_at(parent: etree._Element, step: tuple[str, ...], info: NodeInfo | None) -> etree._Element | None:
    if info is not None and info.kind is NodeKind.LIST and len(step) > 1:
        hits = keyed_children(parent, step[0], info.keys, step[1:])
        return hits[0] if hits else None
    return parent.find(step[0])


def _diff_touched(
    old: etree._Element,
    new: etree._Element,
    parent_info: NodeInfo | None,
    parent_path: str,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
    tree: _Tree,
) -> None:
    """:func:`_diff_children` restricted to the touched children (in the same order)."""
    present: list[tuple[int, etree._Element, etree._Element | None, NodeInfo | None, _Tree | None, tuple[str, ...]]] = []
    gone: list[tuple[int, etree._Element, NodeInfo | None]] = []
    per_tag: dict[str, int] = {}
    for step in tree:
        per_tag[step[0]] = per_tag.get(step[0], 0) + 1
    indexes: dict[tuple[int, str], dict[tuple[str, ...], tuple[int, etree._Element]]] = {}
    positions: dict[int, dict[etree._Element, int]] = {}

    def child_at(
        parent: etree._Element, step: tuple[str, ...], info: NodeInfo | None
    ) -> tuple[int, etree._Element] | None:
        """(position among all of ``parent``'s children, child) of ``step``: many entries of one list are
        found through one index, and their positions through one pass (lxml's index() walks the siblings)."""
        if info is not None and info.kind is NodeKind.LIST and per_tag[step[0]] > MANY_LOOKUPS:
            index = indexes.get((id(parent), step[0]))
            if index is None:
                index = indexes[(id(parent), step[0])] = keyed_index(parent, step[0], info.keys)
            hit = index.get(step[1:])
            if hit is None:
                return None
            where = positions.get(id(parent))
            if where is None:
                where = positions[id(parent)] = {child: n for n, child in enumerate(parent)}
            return where[hit[1]], hit[1]
        found = _child_at(parent, step, info)
        return (parent.index(found), found) if found is not None else None

    for step, sub in tree.items():
        info = schema.node_info(parent_info, step[0])
        after = child_at(new, step, info)
        was = child_at(old, step, info)
        if after is not None:
            present.append((after[0], after[1], was[1] if was is not None else None, info, sub, step))
        elif was is not None:
            gone.append((was[0], was[1], info))
    for _, child, before, info, sub, step in sorted(present, key=lambda item: item[0]):
        path = _present(before, child, info, parent_path, schema, namer, out, step)
        if path is None:
            continue
        assert before is not None
        if _compared_whole(before, child, info):
            if _serialized(before) != _serialized(child):
                out.append(Change(path, ChangeKind.REPLACE, _leaf_value(before, info), _leaf_value(child, info)))
        elif sub is not None:  # only deeper nodes were touched: no need to compare the whole subtree
            _diff_touched(before, child, info, path, schema, namer, out, sub)
        elif _serialized(before) != _serialized(child):
            _diff_children(before, child, info, path, schema, namer, out)
    for _, child, info in sorted(gone, key=lambda item: item[0]):
        _gone(child, info, parent_path, schema, namer, out)


def _compared_whole(before: etree._Element, child: etree._Element, info: NodeInfo | None) -> bool:
    """Whether a changed node is one replace (a leaf, or nothing inside either side), not its children's changes.

    A container emptied by the commit lists what it lost: deleting every trustpoint is their deletions.
    """
    return (info is None or info.kind in (NodeKind.LEAF, NodeKind.LEAF_LIST, NodeKind.ANYDATA)
            or len(child) == len(before) == 0)


def _serialized(element: etree._Element) -> bytes:
    return etree.tostring(element)


_QUALIFIED: dict[tuple[int, str], str] = {}


def _qualified(tag: str, namer: PathNamer) -> str:
    """``prefix:name`` of a Clark tag, cached per namer (asked for every created or deleted leaf)."""
    name = _QUALIFIED.get((id(namer), tag))
    if name is None:
        qname = etree.QName(tag)
        prefix = namer.prefix_of_namespace(qname.namespace or "") if qname.namespace else ""
        name = f"{prefix}:{qname.localname}" if prefix else qname.localname
        if len(_QUALIFIED) > 4096:
            _QUALIFIED.clear()
        _QUALIFIED[(id(namer), tag)] = name
    return name


def _step(element: etree._Element, info: NodeInfo | None, namer: PathNamer, keys: Sequence[str] = ()) -> str:
    """``element``'s path step; ``keys``: a list entry's (stripped) key values, if known."""
    name = _qualified(str(element.tag), namer)
    if info is not None and info.kind is NodeKind.LIST:
        values = keys or [(element.findtext(key) or "").strip() for key in info.keys]
        for key, value in zip(info.keys, values, strict=True):
            name += f"[{_qualified(key, namer)}={xpath_literal(value)}]"
    elif info is not None and info.kind is NodeKind.LEAF_LIST:
        name += f"[.={xpath_literal((element.text or '').strip())}]"
    return name


def _identity(element: etree._Element, info: NodeInfo | None) -> tuple[str, ...]:
    """What pairs a node of ``old`` with its counterpart in ``new``."""
    if info is None:
        return (str(element.tag),)
    if info.kind is NodeKind.LIST:
        return (str(element.tag), *((element.findtext(key) or "").strip() for key in info.keys))
    if info.kind is NodeKind.LEAF_LIST:
        return (str(element.tag), (element.text or "").strip())
    return (str(element.tag),)


def _diff_children(
    old: etree._Element,
    new: etree._Element,
    parent_info: NodeInfo | None,
    parent_path: str,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
) -> None:
    infos: dict[str, NodeInfo | None] = {}

    def info_of(element: etree._Element) -> NodeInfo | None:
        tag = str(element.tag)
        if tag not in infos:
            infos[tag] = schema.node_info(parent_info, tag)
        return infos[tag]

    old_children = {
        _identity(child, info_of(child)): child for child in old if isinstance(child.tag, str)
    }
    seen: set[tuple[str, ...]] = set()
    for child in new:
        if not isinstance(child.tag, str):
            continue
        info = info_of(child)
        identity = _identity(child, info)
        seen.add(identity)
        before = old_children.get(identity)
        path = _present(before, child, info, parent_path, schema, namer, out)
        if path is None:
            continue
        assert before is not None
        if _serialized(before) == _serialized(child):
            continue
        if _compared_whole(before, child, info):
            out.append(Change(path, ChangeKind.REPLACE, _leaf_value(before, info), _leaf_value(child, info)))
            continue
        _diff_children(before, child, info, path, schema, namer, out)
    for identity, child in old_children.items():
        if identity not in seen:
            _gone(child, info_of(child), parent_path, schema, namer, out)


def _present(
    before: etree._Element | None,
    child: etree._Element,
    info: NodeInfo | None,
    parent_path: str,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
    step: tuple[str, ...] = (),
) -> str | None:
    """Record ``child`` of the new tree if it is a secret or new; else its path, to compare with ``before``.

    ``step``: the child's (tag, *key values) when known."""
    if _secret(info):
        if before is None or _serialized(before) != _serialized(child):
            out.append(Change(parent_path, ChangeKind.REPLACE, hidden=True))
        return None
    path = f"{parent_path}/{_step(child, info, namer, step[1:])}"
    if before is None:
        out.append(Change(path, ChangeKind.CREATE, new_value=_leaf_value(child, info)))
        _expand(child, info, path, ChangeKind.CREATE, schema, namer, out)
        return None
    return path


def _gone(
    child: etree._Element,
    info: NodeInfo | None,
    parent_path: str,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
) -> None:
    """Record ``child`` of the old tree, which the new tree no longer has (a secret only as its parent)."""
    if _secret(info):
        out.append(Change(parent_path, ChangeKind.REPLACE, hidden=True))
        return
    path = f"{parent_path}/{_step(child, info, namer)}"
    out.append(Change(path, ChangeKind.DELETE, old_value=_leaf_value(child, info)))
    _expand(child, info, path, ChangeKind.DELETE, schema, namer, out)


def _expand(
    element: etree._Element,
    info: NodeInfo | None,
    path: str,
    kind: ChangeKind,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
) -> None:
    """The leaves inside a created or deleted node, each as a change of its own.

    So the record says what a new trustpoint holds (``show configuration
    commit changes`` prints every line), not only that ``/crypto`` appeared.
    """
    if info is None or info.ref is None:
        return
    create = kind is ChangeKind.CREATE
    plans = _expansion_plans(schema, namer, info)
    for child in element:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        plan = plans.get(tag, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = plans[tag] = _expansion_plan(schema, namer, info, tag)
        if plan is None:
            continue  # a key (already in the entry's own path) or a secret (its parent's change is recorded)
        child_info, name, keyed, leaf = plan
        child_path = f"{path}/{_step(child, child_info, namer)}" if keyed else f"{path}/{name}"
        value = (child.text or "").strip() if leaf else None
        # tuple.__new__ skips the named tuple's __new__, a Python function (7,000 calls per 1,000 new entries).
        out.append(_tuple_new(Change, (child_path, kind, None if create else value, value if create else None, False)))
        if child_info is not None and child_info.ref is not None:
            _expand(child, child_info, child_path, kind, schema, namer, out)


_Plan = tuple["NodeInfo | None", str, bool, bool]
_UNPLANNED: _Plan = (None, "", False, False)
_PLANS: dict[tuple[int, int, int], tuple[object, object, object, dict[str, _Plan | None]]] = {}


def _expansion_plans(schema: SchemaLookup, namer: PathNamer, info: NodeInfo) -> dict[str, _Plan | None]:
    """The plans of ``info``'s children by tag (filled as tags are met): the same few serve every
    entry of a bulk create."""
    slot = (id(schema), id(namer), id(info))
    kept = _PLANS.get(slot)
    if kept is not None and kept[0] is schema and kept[1] is namer and kept[2] is info:
        return kept[3]
    if len(_PLANS) > 1024:
        _PLANS.clear()
    plans: dict[str, _Plan | None] = {}
    _PLANS[slot] = (schema, namer, info, plans)  # kept alive with their plans: their ids stay theirs
    return plans


def _expansion_plan(schema: SchemaLookup, namer: PathNamer, info: NodeInfo, tag: str) -> _Plan | None:
    """How :func:`_expand` records child ``tag`` of ``info``: (its info, its qualified name, whether its
    step has predicates, whether it has a value), or None when it is not recorded."""
    child_info = schema.node_info(info, tag)
    if child_info is not None and info.kind is NodeKind.LIST and child_info.tag in info.keys:
        return None
    if _secret(child_info):
        return None
    keyed = child_info is not None and child_info.kind in (NodeKind.LIST, NodeKind.LEAF_LIST)
    leaf = child_info is not None and child_info.kind in (NodeKind.LEAF, NodeKind.LEAF_LIST)
    return (child_info, _qualified(tag, namer), keyed, leaf)


def _secret(info: NodeInfo | None) -> bool:
    return info is not None and info.default_deny is AccessDefault.DENY_ALL


def public_changes(changes: list[Change]) -> list[Change]:
    """What a commit record may show: secrets only as "their parent changed", once per parent."""
    shown: list[Change] = []
    seen: set[str] = set()
    for change in changes:
        if change.hidden:
            if not change.path or change.path in seen:
                continue
            seen.add(change.path)
            change = Change(change.path, ChangeKind.REPLACE)
        shown.append(change)
    return shown


def _leaf_value(element: etree._Element, info: NodeInfo | None) -> str | None:
    """A leaf's value for the record; never a secret's (nacm:default-deny-all, e.g. a password hash)."""
    if info is not None and info.kind in (NodeKind.LEAF, NodeKind.LEAF_LIST):
        if info.default_deny is AccessDefault.DENY_ALL:
            return None
        return (element.text or "").strip()
    return None
