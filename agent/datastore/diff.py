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
    """:func:`_diff_children` restricted to the touched children (in the same order).

    Into a :class:`_FirstChange` each touched child is compared as it is found: the order does not
    matter there, and a bulk create differs at its first entry.
    """
    eager = isinstance(out, _FirstChange)
    present: list[tuple[int, etree._Element, etree._Element | None, NodeInfo | None, _Tree | None, tuple[str, ...]]] = []
    gone: list[tuple[int, etree._Element, NodeInfo | None, tuple[str, ...]]] = []
    finder = _TouchedChildren(tree, positions=not eager)
    for step, sub in tree.items():
        info = schema.node_info(parent_info, step[0])
        after = finder.at(new, step, info)
        was = finder.at(old, step, info)
        if after is not None:
            present.append((after[0], after[1], was[1] if was is not None else None, info, sub, step))
        elif was is not None:
            gone.append((was[0], was[1], info, step))
        if eager:
            _touched_present(present, parent_path, schema, namer, out)
            _touched_gone(gone, parent_path, namer, out)
            present.clear()
            gone.clear()
    present.sort(key=lambda item: item[0])
    _touched_present(present, parent_path, schema, namer, out)
    gone.sort(key=lambda item: item[0])
    _touched_gone(gone, parent_path, namer, out)


class _TouchedChildren:
    """Finds the touched children of a parent: many entries of one list through one index, their
    positions through one pass (lxml's index() walks the siblings)."""

    def __init__(self, tree: _Tree, positions: bool) -> None:
        self.per_tag: dict[str, int] = {}
        for step in tree:
            self.per_tag[step[0]] = self.per_tag.get(step[0], 0) + 1
        self.positions = positions  # False: no position is needed (0 is given)
        self.indexes: dict[tuple[int, str], dict[tuple[str, ...], tuple[int, etree._Element]]] = {}
        self.where: dict[int, dict[etree._Element, int]] = {}
        self.scans: dict[str, int] = {}

    def at(
        self, parent: etree._Element, step: tuple[str, ...], info: NodeInfo | None
    ) -> tuple[int, etree._Element] | None:
        """(position among all of ``parent``'s children, child) of ``step``, None if absent."""
        tag = step[0]
        if info is not None and info.kind is NodeKind.LIST and self.per_tag[tag] > MANY_LOOKUPS:
            # Without positions (an "any change?" walk, likely done at the first entry) a few scans first.
            scans = self.scans.get(tag, 0)
            if self.positions or scans >= 2 * MANY_LOOKUPS:
                return self._indexed(parent, step, info)
            self.scans[tag] = scans + 1
        found = _child_at(parent, step, info)
        if found is None:
            return None
        return (parent.index(found) if self.positions else 0), found

    def _indexed(
        self, parent: etree._Element, step: tuple[str, ...], info: NodeInfo
    ) -> tuple[int, etree._Element] | None:
        index = self.indexes.get((id(parent), step[0]))
        if index is None:
            index = self.indexes[(id(parent), step[0])] = keyed_index(parent, step[0], info.keys)
        hit = index.get(step[1:])
        if hit is None:
            return None
        if not self.positions:
            return 0, hit[1]
        where = self.where.get(id(parent))
        if where is None:
            where = self.where[id(parent)] = {child: n for n, child in enumerate(parent)}
        return where[hit[1]], hit[1]


def _touched_present(
    present: list[tuple[int, etree._Element, etree._Element | None, NodeInfo | None, _Tree | None, tuple[str, ...]]],
    parent_path: str,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
) -> None:
    for _, child, before, info, sub, step in present:
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


def _touched_gone(
    gone: list[tuple[int, etree._Element, NodeInfo | None, tuple[str, ...]]],
    parent_path: str,
    namer: PathNamer,
    out: list[Change],
) -> None:
    for _, child, info, step in gone:
        _gone(child, info, parent_path, namer, out, step)


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
            _gone(child, info_of(child), parent_path, namer, out)


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
        _expand(child, info, path, schema, namer, out)
        return None
    return path


def _gone(
    child: etree._Element,
    info: NodeInfo | None,
    parent_path: str,
    namer: PathNamer,
    out: list[Change],
    step: tuple[str, ...] = (),
) -> None:
    """Record ``child`` of the old tree, which the new tree no longer has (a secret only as its parent).

    Once, with its old value if it is a leaf: not the nodes inside it (``no crypto ca trustpoint T``,
    as IOS XR shows it and RFC 6470 names it; what it held is in the configuration before).
    """
    if _secret(info):
        out.append(Change(parent_path, ChangeKind.REPLACE, hidden=True))
        return
    out.append(Change(f"{parent_path}/{_step(child, info, namer, step[1:])}", ChangeKind.DELETE,
                      old_value=_leaf_value(child, info)))


def _expand(
    element: etree._Element,
    info: NodeInfo | None,
    path: str,
    schema: SchemaLookup,
    namer: PathNamer,
    out: list[Change],
) -> None:
    """The leaves inside a created node, each as a change of its own.

    So the record says what a new trustpoint holds (``show configuration
    commit changes`` prints every line), not only that ``/crypto`` appeared.
    """
    if info is None or info.ref is None:
        return
    create = ChangeKind.CREATE  # a local: read per leaf
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
        out.append(_tuple_new(Change, (child_path, create, None, value, False)))
        if child_info is not None and child_info.ref is not None:
            _expand(child, child_info, child_path, schema, namer, out)


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
