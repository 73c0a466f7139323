"""What a <get> filter can select, so state is made (and running copied) only for that.

A subtree filter names the top-level nodes it can select, and often the
list entries by their keys (``<trustpoint><name>tp5</name></trustpoint>``).
:class:`StateScope` answers both questions conservatively: ``None`` means
"anything may be selected". State providers that register with the tags
they produce are skipped when the filter cannot select those; providers that
accept a scope make state only for the entries it names. The filter is still
applied to the result, so a scope may only ever be wider than the filter.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from lxml import etree

from agent.xmltree import children_except, keyed_children

_BASE = "{urn:ietf:params:xml:ns:netconf:base:1.0}"


def _namespaced(tag: object) -> bool:
    """Whether a filter node names its module's namespace.

    A node without one, or in the base namespace (``<filter><crypto/>`` under
    a default ``xmlns`` of the base), matches any namespace, as the filter
    itself treats it (agent/netconf/filters.py).
    """
    return isinstance(tag, str) and tag.startswith("{") and not tag.startswith(("{}", _BASE))


@dataclass(frozen=True)
class StateScope:
    """The part of the datastore a filter can select (from a subtree filter; None: everything)."""

    filter_el: etree._Element | None = None
    # Answers already worked out: every state provider and the pruning ask about the same lists.
    _keys: dict[tuple[tuple[str, ...], str], set[str] | None] = field(default_factory=dict, compare=False, repr=False)
    _selectable: dict[tuple[str, ...], bool] = field(default_factory=dict, compare=False, repr=False)

    # Worked out once, when made: every state provider asks, and so does the pruning (11 times per <get>).
    # Not a functools.cached_property: until Python 3.12 its first read takes one lock shared by every
    # instance, and with 50 sessions reading, a thread holding it while it waited for the GIL queued
    # every other <get> behind it.
    _top_tags: frozenset[str] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_top_tags", _top_level_tags(self.filter_el))

    @property
    def everything(self) -> bool:
        return self.filter_el is None

    def top_tags(self) -> frozenset[str] | None:
        """The top-level Clark tags the filter can select; None when it may select any."""
        return self._top_tags

    def wants(self, tags: Iterable[str]) -> bool:
        """Whether the filter can select any of these top-level tags."""
        selected = self.top_tags()
        return selected is None or not selected.isdisjoint(tags)

    def can_select(self, path: tuple[str, ...]) -> bool:
        """Whether the filter may select anything at or below the node at ``path`` (Clark tags from
        the top). Conservative: True whenever it cannot tell (see :meth:`_filter_nodes`)."""
        if self.filter_el is None:
            return True
        known = self._selectable.get(path)
        if known is None:
            nodes = self._filter_nodes(path)
            known = self._selectable[path] = nodes is None or bool(nodes)
        return known

    def list_keys(self, list_tags: tuple[str, ...], key_tag: str) -> set[str] | None:
        """The key values of the entries of the list at ``list_tags`` the filter can select.

        A set only when every filter node for that list matches its key by
        content; None when the filter may select entries by anything else.
        """
        if self.filter_el is None:
            return None
        slot = (list_tags, key_tag)
        if slot not in self._keys:
            self._keys[slot] = self._list_keys(list_tags, key_tag)
        known = self._keys[slot]
        return None if known is None else set(known)

    def _list_keys(self, list_tags: tuple[str, ...], key_tag: str) -> set[str] | None:
        nodes = self._filter_nodes(list_tags)
        if nodes is None:
            return None
        keys: set[str] = set()
        for node in nodes:
            key = node.find(key_tag)
            if key is None or len(key) or not (key.text or "").strip() or node.attrib:
                return None
            keys.add((key.text or "").strip())
        return keys

    def _filter_nodes(self, path: tuple[str, ...]) -> list[etree._Element] | None:
        """The filter nodes standing for the node at ``path`` (none: the filter selects nothing
        there); None when the filter may select anything there: a selection node on the way, a
        filter node without namespace, or a sibling set of content match nodes only, which
        selects its whole sibling set (RFC 6241 6.2.5)."""
        assert self.filter_el is not None
        level = [self.filter_el]
        for tag in path:
            below: list[etree._Element] = []
            for node in level:
                # One pass per node (every state provider of a <get> asks): element children only,
                # whether any is more than a content match node, and their namespaces.
                selects_all = True
                for child in node.iterchildren(etree.Element):
                    child_tag = child.tag
                    if not _namespaced(child_tag):
                        return None
                    if selects_all and (len(child) or not (child.text or "").strip()):
                        selects_all = False
                    if child_tag == tag:
                        below.append(child)
                if selects_all:  # no element children, or content match nodes only
                    return None
            level = below
        return level


def _top_level_tags(filter_el: etree._Element | None) -> frozenset[str] | None:
    if filter_el is None:
        return None
    tags = set()
    for child in filter_el:
        if not isinstance(child.tag, str):
            continue
        if not _namespaced(child.tag):
            return None  # a filter node without namespace matches any namespace (RFC 6241 6.2.1)
        tags.add(child.tag)
    return frozenset(tags)


EVERYTHING = StateScope()


def scope_of(filter_el: etree._Element | None) -> StateScope:
    """The scope of a <filter> element: subtree filters narrow it, anything else selects everything."""
    if filter_el is None:
        return EVERYTHING
    kind = next((v for k, v in filter_el.attrib.items() if etree.QName(k).localname == "type"), "subtree")
    return StateScope(filter_el) if kind == "subtree" else EVERYTHING


def pruned(root: etree._Element, scope: StateScope, lists: Iterable[tuple[tuple[str, ...], str]] = ()) -> etree._Element:
    """A copy of datastore ``root`` with what ``scope`` cannot select left out.

    Top-level nodes the filter cannot select are dropped, and so are the
    entries of each list in ``lists`` ((path of Clark tags, key tag)) whose
    key the filter does not name. Only what is kept is copied.
    """
    tags = scope.top_tags()
    keep_entries = {path: (key, scope.list_keys(path, key)) for path, key in lists}
    out = etree.Element(root.tag, nsmap=cast("Mapping[str, str]", root.nsmap))
    for child in root:
        if tags is not None and child.tag not in tags:
            continue
        out.append(_copy(child, (str(child.tag),), keep_entries))
    return out


def _copy(element: etree._Element, path: tuple[str, ...],
          keep: dict[tuple[str, ...], tuple[str, set[str] | None]]) -> etree._Element:
    if not any(p[: len(path)] == path and len(p) > len(path) for p, (_, keys) in keep.items() if keys is not None):
        return copy.deepcopy(element)
    shell = etree.Element(element.tag, nsmap=cast("Mapping[str, str]", element.nsmap))
    for name, value in element.attrib.items():
        shell.set(name, value)
    shell.text = element.text
    narrowed = {p[-1]: rule for p, rule in keep.items() if len(p) == len(path) + 1 and p[:-1] == path
                and rule[1] is not None}
    # The entries of a narrowed list are added below, found by key; the other children are
    # selected at C speed (a Python loop here would visit every one of 10,000 entries).
    for child in children_except(element, frozenset(narrowed)):
        shell.append(_copy(child, (*path, str(child.tag)), keep))
    for tag, (key, values) in narrowed.items():
        assert values is not None
        for value in sorted(values):
            for entry in keyed_children(element, tag, (key,), (value,)):
                shell.append(copy.deepcopy(entry))
    return shell
