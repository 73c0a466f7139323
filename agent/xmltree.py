"""Small lxml helpers shared by the layers."""

from __future__ import annotations

import datetime
import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from lxml import etree

_T = TypeVar("_T")


def default_ns(namespace: str | None) -> Mapping[str, str]:
    """An nsmap making ``namespace`` the default one.

    lxml accepts ``None`` as the key of the default namespace; lxml-stubs
    types the keys as ``str``, hence the cast in this one place.
    """
    return cast("Mapping[str, str]", {None: namespace} if namespace else {})


def yang_date_and_time(value: datetime.datetime) -> str:
    """A yang:date-and-time (RFC 6991) in UTC, e.g. 2026-11-26T19:33:52Z."""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def has_doctype(root: etree._Element) -> bool:
    """True when the document of ``root`` carries a DOCTYPE (never allowed in NETCONF input)."""
    docinfo = root.getroottree().docinfo
    return bool(getattr(docinfo, "doctype", "")) or docinfo.internalDTD is not None


class ThreadXPath(threading.local):
    """A compiled XPath expression, compiled once for each thread that evaluates it.

    lxml makes the threads that evaluate one ``etree.XPath`` object take
    turns on a lock of that object, and a thread keeps the lock while it
    waits for the GIL after libxml2's part of the evaluation: with many
    sessions, every one checking its request with one shared expression
    queued behind the slowest (as with shared parsers, see
    agent/netconf/message_parser.py). 50 threads evaluating one expression
    3,000 times each took 7.6–8.8 s shared against 5.2–5.5 s with one copy
    per thread. As ``threading.local`` does for every subclass (see
    message_parser._Parsers), ``__init__`` runs again with the same arguments
    in each thread that first uses the object there.
    """

    def __init__(self, path: str, namespaces: Mapping[str, str] | None = None) -> None:
        """Raises etree.XPathSyntaxError at once for an expression that does not compile."""
        self.compiled = etree.XPath(path, namespaces=dict(namespaces or {}))

    def __call__(self, node: etree._Element, **variables: object) -> Any:
        """The expression's value at ``node`` (lxml's result: a list, a bool, a float or a string)."""
        return self.compiled(node, **variables)  # type: ignore[arg-type]


def _xpath_name(clark: str, prefixes: dict[str, str]) -> str:
    """``prefix:local`` for a Clark tag in an XPath expression, adding its namespace to ``prefixes``."""
    ns, _, local = clark[1:].partition("}") if clark.startswith("{") else ("", "", clark)
    if not ns:
        return local
    for prefix, known in prefixes.items():
        if known == ns:
            return f"{prefix}:{local}"
    prefix = f"n{len(prefixes)}"
    prefixes[prefix] = ns
    return f"{prefix}:{local}"


_KEYED: dict[tuple[str, tuple[str, ...]], tuple[ThreadXPath, ThreadXPath, ThreadXPath]] = {}


def _keyed_xpaths(tag: str, keys: tuple[str, ...]) -> tuple[ThreadXPath, ThreadXPath, ThreadXPath]:
    """Compiled (entry by key values $k0.., count of preceding entries, count of entries) for a list."""
    found = _KEYED.get((tag, keys))
    if found is None:
        prefixes: dict[str, str] = {}
        entry = _xpath_name(tag, prefixes)
        predicates = "".join(f"[{_xpath_name(key, prefixes)}=$k{i}]" for i, key in enumerate(keys))
        found = (
            ThreadXPath(f"{entry}{predicates}", prefixes),
            ThreadXPath(f"count(preceding-sibling::{entry})", prefixes),
            ThreadXPath(f"count({entry})", prefixes),
        )
        _KEYED[(tag, keys)] = found
    return found


def keyed_children(parent: etree._Element, tag: str, keys: tuple[str, ...], values: tuple[str, ...]) -> list[etree._Element]:
    """The children ``tag`` of ``parent`` whose key leaves ``keys`` have the texts ``values``.

    In a published tree (see :func:`publish`) a list looked up more than
    :data:`_INDEX_AFTER` times is indexed, and later lookups are one dict
    lookup; elsewhere one XPath scan of the list at C speed (0.2–0.4 µs per
    entry).
    """
    index = _published_index(parent, tag, keys)
    if index is not None:
        return list(index.get(values, ()))
    hits = _keyed_xpaths(tag, keys)[0](parent, **{f"k{i}": v for i, v in enumerate(values)})
    assert isinstance(hits, list)
    return [hit for hit in hits if isinstance(hit, etree._Element)]


def keyed_position(element: etree._Element, keys: tuple[str, ...]) -> int:
    """How many siblings of ``element`` with its tag come before it."""
    return int(_keyed_xpaths(str(element.tag), keys)[1](element))


def count_children(parent: etree._Element, tag: str, keys: tuple[str, ...]) -> int:
    """How many children ``tag`` ``parent`` has."""
    return int(_keyed_xpaths(tag, keys)[2](parent))


def keyed_index(parent: etree._Element, tag: str, keys: tuple[str, ...]) -> dict[tuple[str, ...], tuple[int, etree._Element]]:
    """Every child ``tag`` of ``parent`` by its (stripped) key texts, with its position among them.

    One pass over the children: cheaper than :func:`keyed_children` once more
    than a few entries are looked up in the same list.
    """
    if len(keys) == 1:  # the usual case: 0.4 µs an entry (findtext's path search: 1.8 µs)
        key = keys[0]
        index: dict[tuple[str, ...], tuple[int, etree._Element]] = {}
        for position, child in enumerate(parent.iterchildren(tag)):
            index[((_first_key_text(child, key) or "").strip(),)] = (position, child)
        return index
    return {
        (((_first_key_text(child, keys[0]) or "").strip(),)
         + tuple((child.findtext(key) or "").strip() for key in keys[1:])): (position, child)
        for position, child in enumerate(parent.iterchildren(tag))
    }


def _first_key_text(entry: etree._Element, key: str) -> str | None:
    """``entry.findtext(key)`` for a list's first key: at once when it is the first child, as the
    datastore and the edit engine keep it."""
    if len(entry):
        child = entry[0]
        if child.tag == key:
            return child.text
    return entry.findtext(key)


MANY_LOOKUPS = 8
"""More lookups than this in one list: index it once (:func:`keyed_index`) instead of one XPath each."""


# -- key indexes of published trees --------------------------------------------------------------
#
# The datastore hands out its running and candidate trees to readers and never changes them
# again (an edit changes a copy, which replaces them). Such a tree is "published": the lists in
# it can be indexed by key once, and every later lookup (a filtered get naming one trustpoint
# among 10,000, a listener finding the entries a commit touched) is a dict lookup instead of
# a scan. Trees that are still being edited are never published, so they are always scanned.

PUBLISHED_KEEP = 2
"""How many published trees keep their indexes: the newest running and candidate. Each one kept also
keeps its whole tree in memory (a superseded running of 10,000 trustpoints is ~10 MiB)."""

_INDEX_AFTER = MANY_LOOKUPS
"""A list is indexed at its ninth lookup in one published tree. Building the index costs a few
scans, and every commit makes a new tree: a commit's own few lookups (diff, validation, the
listeners) stay scans, while a tree that is read again and again (filtered gets) is indexed."""


@dataclass
class _Published:
    root: etree._Element
    # Both keep the parent element: an lxml element's Python object (and so its id) lives only as
    # long as something refers to it, and each request would otherwise count under a new id.
    lookups: dict[tuple[object, ...], tuple[etree._Element, int]] = field(default_factory=dict)
    memo: dict[tuple[object, ...], tuple[etree._Element, object]] = field(default_factory=dict)


_published: dict[int, _Published] = {}
# No lock: every step below is one dict operation, atomic under the GIL, and a race only
# builds an index twice or drops one. (A lock here, taken by readers and by the committer
# thread between its CPU-bound steps, made each edit wait for GIL switches: +3 ms per edit.)


def publish(root: etree._Element) -> None:
    """Declare that the tree of ``root`` will never be changed again, so its lists may be indexed.

    Only the :data:`PUBLISHED_KEEP` newest published trees keep their indexes.
    """
    known = _published.get(id(root))
    if known is not None and known.root is root:
        return
    _published[id(root)] = _Published(root)
    for old in list(_published)[:-PUBLISHED_KEEP]:
        _published.pop(old, None)


def _published_memo(parent: etree._Element, what: tuple[object, ...], compute: Callable[[], _T]) -> _T | None:
    """``compute()`` for ``what`` of ``parent``, kept from its :data:`_INDEX_AFTER`-th request on if
    ``parent`` is in a published tree; None when the caller should compute it itself."""
    if not _published:
        return None
    root = parent.getroottree().getroot()
    tree = _published.get(id(root))
    if tree is None or tree.root is not root:
        return None
    slot = (id(parent), *what)
    kept = tree.memo.get(slot)
    if kept is not None and kept[0] is parent:
        return cast("_T", kept[1])
    counted = tree.lookups.get(slot)
    seen = counted[1] if counted is not None and counted[0] is parent else 0
    tree.lookups[slot] = (parent, seen + 1)
    if seen < _INDEX_AFTER:
        return None
    value = compute()
    tree.memo[slot] = (parent, value)  # the parent is kept, so its id is not reused meanwhile
    return value


def _published_index(
    parent: etree._Element, tag: str, keys: tuple[str, ...]
) -> dict[tuple[str, ...], list[etree._Element]] | None:
    """The key index of list ``tag`` under ``parent`` if ``parent`` is in a published tree and the
    list has been looked up before; None when it must be scanned."""

    def build() -> dict[tuple[str, ...], list[etree._Element]]:
        # Not keyed_index: this must answer exactly as the XPath scan does (key texts as they
        # are, every entry with the same keys), keyed_index strips texts and keeps one entry.
        index: dict[tuple[str, ...], list[etree._Element]] = {}
        for child in parent.iterchildren(tag):
            index.setdefault(tuple(child.findtext(key) or "" for key in keys), []).append(child)
        return index

    return _published_memo(parent, ("index", tag, keys), build)


def children_except(parent: etree._Element, tags: frozenset[str]) -> list[etree._Element]:
    """The child elements of ``parent`` whose tag is not in ``tags``, in document order.

    At C speed, and kept for a published tree (the few containers and leaves
    beside a list of 10,000 entries, without visiting the entries again).
    """
    if not tags:
        return [child for child in parent if isinstance(child.tag, str)]

    def select() -> list[etree._Element]:
        found = _except_xpath(tags)(parent)
        assert isinstance(found, list)
        return [child for child in found if isinstance(child, etree._Element)]

    kept = _published_memo(parent, ("except", tags), select)
    return list(kept) if kept is not None else select()


@functools.lru_cache(maxsize=64)
def _except_xpath(tags: frozenset[str]) -> ThreadXPath:
    prefixes: dict[str, str] = {}
    tests = " or ".join(f"self::{_xpath_name(tag, prefixes)}" for tag in sorted(tags))
    return ThreadXPath(f"*[not({tests})]", prefixes)
