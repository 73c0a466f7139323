"""Key lookups in published trees (xmltree.publish): indexed after the first lookup, always the scan's answer."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from agent import xmltree

NS = "urn:test:index"
ENTRY, NAME, KIND = f"{{{NS}}}entry", f"{{{NS}}}name", f"{{{NS}}}kind"


def tree(entries: list[tuple[str, str]]) -> etree._Element:
    root = etree.Element(f"{{{NS}}}root", nsmap={None: NS})  # type: ignore[dict-item]
    for name, kind in entries:
        entry = etree.SubElement(root, ENTRY)
        etree.SubElement(entry, NAME).text = name
        etree.SubElement(entry, KIND).text = kind
    etree.SubElement(root, f"{{{NS}}}other").text = "x"
    return root


def scanned(root: etree._Element, keys: tuple[str, ...], values: tuple[str, ...]) -> list[etree._Element]:
    """The XPath scan's answer, on an unpublished copy (a deep copy is never published)."""
    found = xmltree.keyed_children(copy.deepcopy(root), ENTRY, keys, values)
    return [etree.tostring(e) for e in found]  # type: ignore[misc]


names = st.sampled_from(["a", "b", "c", "tp1", "tp10", " a", ""])
kinds = st.sampled_from(["x", "y"])


@settings(max_examples=150, deadline=None)
@given(
    entries=st.lists(st.tuples(names, kinds), max_size=12),
    lookups=st.lists(st.tuples(names, kinds, st.booleans()), min_size=1, max_size=8),
)
def test_published_lookups_agree_with_the_scan(entries: list[tuple[str, str]], lookups: list[tuple[str, str, bool]]) -> None:
    root = tree(entries)
    xmltree.publish(root)
    for name, kind, both in lookups:
        keys, values = ((NAME, KIND), (name, kind)) if both else ((NAME,), (name,))
        found = xmltree.keyed_children(root, ENTRY, keys, values)
        assert [etree.tostring(e) for e in found] == scanned(root, keys, values)
        assert all(e.getparent() is root for e in found)


def test_the_index_is_built_after_a_few_lookups_and_only_for_published_trees() -> None:
    root = tree([(f"tp{i}", "x") for i in range(50)])
    xmltree.keyed_children(root, ENTRY, (NAME,), ("tp7",))
    xmltree.keyed_children(root, ENTRY, (NAME,), ("tp7",))
    assert xmltree._published.get(id(root)) is None  # never published: always scanned
    xmltree.publish(root)
    published = xmltree._published[id(root)]
    for n in range(xmltree._INDEX_AFTER):  # the first few: scanned (a commit's own lookups)
        assert xmltree.keyed_children(root, ENTRY, (NAME,), (f"tp{n}",))[0].findtext(NAME) == f"tp{n}"
        assert not published.memo
    assert xmltree.keyed_children(root, ENTRY, (NAME,), ("tp42",))[0].findtext(NAME) == "tp42"
    assert len(published.memo) == 1  # the next built the index
    assert xmltree.keyed_children(root, ENTRY, (NAME,), ("nope",)) == []


def test_only_the_newest_published_trees_keep_indexes() -> None:
    roots = [tree([("a", "x")]) for _ in range(xmltree.PUBLISHED_KEEP + 2)]
    for root in roots:
        xmltree.publish(root)
    assert all(xmltree._published.get(id(r)) is None for r in roots[:2])
    assert all(xmltree._published[id(r)].root is r for r in roots[2:])
    for root in roots:  # dropped or kept, the answer is the same
        assert len(xmltree.keyed_children(root, ENTRY, (NAME,), ("a",))) == 1


def test_children_except_a_list_agree_with_a_loop_and_are_kept_for_published_trees() -> None:
    root = tree([(f"tp{i}", "x") for i in range(20)])
    etree.SubElement(root, f"{{{NS}}}last")
    root.append(etree.Comment("not an element"))
    expected = [c for c in root if isinstance(c.tag, str) and c.tag != ENTRY]
    assert xmltree.children_except(root, frozenset({ENTRY})) == expected
    xmltree.publish(root)
    for _ in range(xmltree._INDEX_AFTER + 2):
        assert xmltree.children_except(root, frozenset({ENTRY})) == expected
    assert xmltree.children_except(root, frozenset()) == [c for c in root if isinstance(c.tag, str)]


def test_lookups_count_for_the_element_not_for_its_python_object() -> None:
    """Each request finds the list's parent anew: lxml may give it a new Python object (and id) each time."""
    outer = etree.Element(f"{{{NS}}}top", nsmap={None: NS})  # type: ignore[dict-item]
    outer.append(tree([(f"tp{i}", "x") for i in range(30)]))
    xmltree.publish(outer)
    published = xmltree._published[id(outer)]
    for n in range(xmltree._INDEX_AFTER + 1):
        parent = outer.find(f"{{{NS}}}root")  # a fresh lookup, as a new request would make
        assert parent is not None
        assert len(xmltree.keyed_children(parent, ENTRY, (NAME,), (f"tp{n}",))) == 1
        del parent
    assert len(published.memo) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", " a", "b ", "", "c"]), st.sampled_from(["x", "y"]),
                          st.sampled_from(["keys first", "key last", "no key", "comment first"])), max_size=8))
def test_keyed_index_reads_keys_as_findtext_does_wherever_they_are(entries: list[tuple[str, str, str]]) -> None:
    """The index reads a first key at once when it is the entry's first child, else as findtext."""
    root = etree.Element(f"{{{NS}}}root", nsmap={None: NS})  # type: ignore[dict-item]
    for name, kind, layout in entries:
        entry = etree.SubElement(root, ENTRY)
        if layout == "comment first":
            entry.append(etree.Comment("c"))
        order = {"keys first": (NAME, KIND), "key last": (KIND, NAME), "no key": (KIND,)}.get(layout, (NAME, KIND))
        for tag in order:
            etree.SubElement(entry, tag).text = name if tag == NAME else kind
    for keys in ((NAME,), (NAME, KIND), (KIND, NAME)):
        expected = {tuple((e.findtext(k) or "").strip() for k in keys): (n, e)
                    for n, e in enumerate(root.iterchildren(ENTRY))}
        assert xmltree.keyed_index(root, ENTRY, keys) == expected
