"""Small lxml helpers shared by the layers."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import cast

from lxml import etree


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


_KEYED: dict[tuple[str, tuple[str, ...]], tuple[etree.XPath, etree.XPath, etree.XPath]] = {}


def _keyed_xpaths(tag: str, keys: tuple[str, ...]) -> tuple[etree.XPath, etree.XPath, etree.XPath]:
    """Compiled (entry by key values $k0.., count of preceding entries, count of entries) for a list."""
    found = _KEYED.get((tag, keys))
    if found is None:
        prefixes: dict[str, str] = {}

        def name(clark: str) -> str:
            ns, _, local = clark[1:].partition("}") if clark.startswith("{") else ("", "", clark)
            if not ns:
                return local
            for prefix, known in prefixes.items():
                if known == ns:
                    return f"{prefix}:{local}"
            prefix = f"n{len(prefixes)}"
            prefixes[prefix] = ns
            return f"{prefix}:{local}"

        entry = name(tag)
        predicates = "".join(f"[{name(key)}=$k{i}]" for i, key in enumerate(keys))
        found = (
            etree.XPath(f"{entry}{predicates}", namespaces=prefixes),
            etree.XPath(f"count(preceding-sibling::{entry})", namespaces=prefixes),
            etree.XPath(f"count({entry})", namespaces=prefixes),
        )
        _KEYED[(tag, keys)] = found
    return found


def keyed_children(parent: etree._Element, tag: str, keys: tuple[str, ...], values: tuple[str, ...]) -> list[etree._Element]:
    """The children ``tag`` of ``parent`` whose key leaves ``keys`` have the texts ``values`` (C speed)."""
    hits = _keyed_xpaths(tag, keys)[0](parent, **{f"k{i}": v for i, v in enumerate(values)})
    assert isinstance(hits, list)
    return [hit for hit in hits if isinstance(hit, etree._Element)]


def keyed_position(element: etree._Element, keys: tuple[str, ...]) -> int:
    """How many siblings of ``element`` with its tag come before it."""
    return int(_keyed_xpaths(str(element.tag), keys)[1](element))  # type: ignore[arg-type]


def count_children(parent: etree._Element, tag: str, keys: tuple[str, ...]) -> int:
    """How many children ``tag`` ``parent`` has."""
    return int(_keyed_xpaths(tag, keys)[2](parent))  # type: ignore[arg-type]


def keyed_index(parent: etree._Element, tag: str, keys: tuple[str, ...]) -> dict[tuple[str, ...], tuple[int, etree._Element]]:
    """Every child ``tag`` of ``parent`` by its (stripped) key texts, with its position among them.

    One pass over the children: cheaper than :func:`keyed_children` once more
    than a few entries are looked up in the same list.
    """
    return {
        tuple((child.findtext(key) or "").strip() for key in keys): (position, child)
        for position, child in enumerate(parent.iterchildren(tag))
    }


MANY_LOOKUPS = 8
"""More lookups than this in one list: index it once (:func:`keyed_index`) instead of one XPath each."""
