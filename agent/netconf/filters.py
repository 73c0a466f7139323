"""NETCONF ``<filter>`` processing on lxml trees: subtree (RFC 6241 §6) and XPath (§8.9).

Pure functions, no I/O. The input datastore tree is never mutated; every
result is a new ``<data>`` element.

Both filter kinds work in two phases:

1. *select* -- walk the datastore once and record which data nodes are in the
   output, either in ``full`` (the node with its whole subtree) or in
   ``partial`` (the node itself, as an ancestor of something selected);
2. *build* -- copy the datastore in document order, keeping what phase 1
   recorded, plus the key leaves of every list entry that is copied only
   partially (so the reply identifies the instance, RFC 6241 §6.2.5 and the
   examples in §6.4.5-6.4.7).

Recording selections as sets of data nodes merges overlapping selections for
free: a node selected twice appears once, and a fully selected ancestor
includes its selected descendants. Phase 2 is linear in the size of the
datastore; phase 1 is whatever the filter asks for (an XPath expression can
be made to cost any power of the datastore's size), so it runs against a
:class:`~agent.netconf.budget.FilterBudget`: CPU seconds, and the session's
cancellation.

XPath and the root node
-----------------------
RFC 6241 §8.9 evaluates the expression with the *root node* as context node,
and that root has every top-level data node as a child (the XSLT 1.0 §3.1
extension of the XPath data model). libxml2 cannot hold a document with
several root elements, and the ``<data>`` element is an element, not the root
node, so ``/crypto:crypto`` evaluated directly would look for a *document*
element named ``crypto``. Rather than copying the datastore into a synthetic
wrapper per request, the expression is rewritten (agent/netconf/xpath_rewrite.py,
which also meters every step against the filter's CPU budget): every ``/`` or
``//`` that *starts* an absolute location path (XPath 1.0 §3.7 disambiguation
rules) is prefixed with a variable bound to the ``<data>`` element, so ``/crypto:crypto[crypto:name='x'] | //sys:hostname``
becomes ``$r/crypto:crypto[crypto:name='x'] | $r//sys:hostname`` and a bare
``/`` becomes ``$r``. The context node is the ``<data>`` element, so relative
paths also start at the top-level nodes. Selecting ``<data>`` itself (``/``)
selects the whole datastore; nodes outside ``<data>`` (``/..``) select nothing.
The one visible difference from a true root node: ``<data>`` is an element,
so e.g. ``count(/x:top/ancestor::*)`` counts it.

Unprefixed names in the expression follow XPath 1.0 (no namespace), so they
match nothing in YANG data; the default namespace in scope on ``<filter>`` is
not applied to them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

from agent.errors import NetconfError
from agent.netconf.budget import FilterBudget, Meter
from agent.netconf.xpath_rewrite import METER_FUNCTION, METER_NS, METER_PREFIX, rewrite, shown

__all__ = ["FilterBudget", "KeyLookup", "NC_NS", "apply_filter", "subtree_filter", "xpath_filter"]

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"

KeyLookup = Callable[[etree._Element], Sequence[str]]
"""Given an element of the datastore, the Clark tags of its list keys (empty if not a list entry)."""

# RFC 6241 Appendix A: invalid-value may be of error-type "protocol" or
# "application". The <filter> (its type, its select expression) is a parameter
# of the <get>/<get-config> operation itself, i.e. the Operations layer, not
# data-model content, so filter errors are reported with error-type "protocol".
_ERROR_TYPE = "protocol"

_ROOT_VAR = "ca_agent_filter_root"

MAX_XPATH_LENGTH = 256 * 1024
"""Characters in an XPath filter's ``select``: its tokens are Python objects before libxml2 compiles it (a 4.9 MB
expression took 2.1 s and 320 MB). Asking for 1,000 entries by key with ``or`` takes ~30 KB."""

MAX_SUBTREE_FILTER_NODES = 100_000
"""A subtree filter is planned node by node before it is metered (~500 bytes and 5 µs a node): 350,000 empty
nodes took 1.7 s and 176 MB. Asking for 10,000 entries by key takes 20,000-30,000."""

_Element = etree._Element


# --------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------


def apply_filter(
    data: _Element,
    filter_el: _Element | None,
    keys_of: KeyLookup,
    module_prefixes: Mapping[str, str] | None = None,
    budget: FilterBudget | None = None,
) -> _Element:
    """Apply a NETCONF ``<filter>`` to a ``<data>`` tree and return a new ``<data>``.

    ``filter_el`` is the ``<filter>`` element of the request; ``None`` returns
    a copy of the whole datastore. Its ``type`` attribute selects subtree
    filtering (absent or ``"subtree"``) or XPath filtering (``"xpath"``, with
    the expression in ``select``, evaluated with the namespace prefixes in
    scope on ``filter_el``). A prefix not declared there but equal to a YANG
    module's prefix (``module_prefixes``) means that module: clients such as
    ncclient send ``select`` without declarations, and a module prefix is
    unambiguous within one server.

    ``budget`` bounds the CPU the filter may use and stops it when its
    session closes (default: :class:`FilterBudget`'s, never cancelled).

    Raises:
        NetconfError: ``bad-attribute`` for an unknown filter type,
            ``missing-attribute`` for an XPath filter without ``select``,
            ``invalid-value`` for an XPath expression that does not parse,
            uses an unknown prefix or variable, or does not yield a node-set
            (all with error-type ``protocol``); ``operation-failed``
            (error-type ``application``) when the budget is spent or the
            session closed.
    """
    if filter_el is None:
        return _copy_whole(data)
    kind = _filter_attr(filter_el, "type") or "subtree"
    if kind == "subtree":
        return subtree_filter(data, filter_el, keys_of, budget)
    if kind == "xpath":
        select = _filter_attr(filter_el, "select")
        if select is None:
            raise NetconfError(
                'an XPath filter (type="xpath") needs a "select" attribute',
                error_tag="missing-attribute",
                error_type=_ERROR_TYPE,
                info={"bad-attribute": "select", "bad-element": "filter"},
            )
        namespaces = dict(module_prefixes or {})
        namespaces.update({prefix: uri for prefix, uri in filter_el.nsmap.items() if prefix})
        return xpath_filter(data, select, namespaces, keys_of, budget)
    raise NetconfError(
        f'unsupported filter type "{kind}" (expected "subtree" or "xpath")',
        error_tag="bad-attribute",
        error_type=_ERROR_TYPE,
        info={"bad-attribute": "type", "bad-element": "filter"},
    )


def _filter_attr(filter_el: _Element, name: str) -> str | None:
    value = filter_el.get(name)
    if value is None:
        value = filter_el.get(f"{{{NC_NS}}}{name}")
    return value if value is None else str(value)


# --------------------------------------------------------------------------
# subtree filtering (RFC 6241 section 6)
# --------------------------------------------------------------------------


def subtree_filter(
    data: _Element, filter_el: _Element, keys_of: KeyLookup, budget: FilterBudget | None = None
) -> _Element:
    """Apply the subtree filter whose criteria are the children of ``filter_el``.

    Follows RFC 6241 §6.2-6.4: namespace selection (a filter element without
    a namespace, ``xmlns=""``, matches any namespace), attribute match
    expressions, containment, selection and content match nodes; sibling
    content match nodes are ANDed and included in the output; a filter with
    no element children selects nothing. The top-level filter elements form
    one sibling set per namespace (RFC 6241 §6.3). Text is compared with
    leading and trailing whitespace removed; whitespace-only text is no text.

    Raises:
        NetconfError: ``operation-failed`` when ``budget`` is spent or its
            session closed. A subtree filter that matches nothing yields an
            empty ``<data/>``, which is not an error (RFC 6241 §6.4.2).
    """
    for count, _ in enumerate(filter_el.iterdescendants(), 1):  # stops at the limit: no walk of a huge filter
        if count > MAX_SUBTREE_FILTER_NODES:
            raise NetconfError(
                f"the subtree filter has more than the {MAX_SUBTREE_FILTER_NODES} nodes allowed",
                error_tag="too-big",
                error_type=_ERROR_TYPE,
            )
    meter = (budget or FilterBudget()).meter(hint="fewer or less deeply nested filter nodes")
    full: set[_Element] = set()
    partial: set[_Element] = set()
    by_namespace: dict[str | None, list[_Element]] = {}
    for node in _element_children(filter_el):
        by_namespace.setdefault(_filter_namespace(node.tag), []).append(node)
    for namespace, roots in by_namespace.items():
        _match_sibling_set(data, _plan(roots), full, partial, meter, namespace)
    return _build(data, full, partial, keys_of)


@dataclass(frozen=True)
class _NodeTest:
    """Namespace selection, name and attribute match expressions of one filter node."""

    pattern: str  # for iterchildren(): the Clark tag, or "{*}name" for any namespace
    attributes: tuple[tuple[str, str], ...]

    def candidates(self, parent: _Element, meter: Meter) -> Iterator[_Element]:
        for child in parent.iterchildren(self.pattern):
            meter.tick()
            if all(child.get(name) == value for name, value in self.attributes):
                yield child


@dataclass(frozen=True)
class _SiblingSet:
    """One filter sibling set, classified once (the filter is small, the data is not)."""

    content_match: tuple[tuple[_NodeTest, str], ...]
    selection: tuple[_NodeTest, ...]
    containment: tuple[tuple[_NodeTest, _SiblingSet], ...]
    keyed: tuple[_KeyedContainment, ...] = ()


@dataclass(frozen=True)
class _KeyedContainment:
    """Sibling containment nodes with the same test whose first content match tests the same leaf.

    A controller asking for many list entries by key sends one such node per
    entry: matched one by one, each node scanned every entry (1,000 names
    among 300 trustpoints took 0.7 s, among 10,000 more than the filter's
    budget). Here the data's entries are grouped once by that leaf's text,
    and each node is matched only against the entries carrying its text.
    """

    test: _NodeTest
    leaf: _NodeTest
    by_text: dict[str, list[_SiblingSet]]


_KEYED_FROM = 4  # sibling containment nodes alike before they are matched through one grouping of the data


def _plan(filters: Iterable[_Element]) -> _SiblingSet:
    content_match: list[tuple[_NodeTest, str]] = []
    selection: list[_NodeTest] = []
    containment: list[tuple[_NodeTest, _SiblingSet]] = []
    for node in filters:
        tag = str(node.tag)
        namespace = _filter_namespace(tag)
        test = _NodeTest(
            pattern=tag if namespace is not None else "{*}" + etree.QName(tag).localname,
            attributes=tuple((str(name), str(value)) for name, value in node.attrib.items()),
        )
        nested = list(_element_children(node))
        text = (node.text or "").strip()
        if nested:  # mixed content: the text is ignored
            containment.append((test, _plan(nested)))
        elif text:
            content_match.append((test, text))
        else:  # empty or whitespace-only (RFC 6241 6.2.4, 6.2.5)
            selection.append(test)
    alike: dict[tuple[_NodeTest, _NodeTest], list[tuple[str, _SiblingSet]]] = {}
    for test, inner in containment:
        if inner.content_match:
            leaf, text = inner.content_match[0]
            alike.setdefault((test, leaf), []).append((text, inner))
    keyed: list[_KeyedContainment] = []
    for (test, leaf), members in alike.items():
        if len(members) >= _KEYED_FROM:
            by_text: dict[str, list[_SiblingSet]] = {}
            for text, inner in members:
                by_text.setdefault(text, []).append(inner)
            keyed.append(_KeyedContainment(test, leaf, by_text))
    if keyed:
        grouped = {id(inner) for group in keyed for inners in group.by_text.values() for inner in inners}
        containment = [(test, inner) for test, inner in containment if id(inner) not in grouped]
    return _SiblingSet(tuple(content_match), tuple(selection), tuple(containment), tuple(keyed))


def _match_sibling_set(
    parent: _Element,
    plan: _SiblingSet,
    full: set[_Element],
    partial: set[_Element],
    meter: Meter,
    everything_namespace: str | None = None,
) -> bool:
    """Select among ``parent``'s children per one filter sibling set; True if anything was.

    Nothing is recorded unless True is returned. ``everything_namespace``
    limits the "no selection or containment nodes: take every sibling" rule to
    one namespace (used for the top-level sibling sets, RFC 6241 6.3).
    """
    content_hits: list[_Element] = []
    for test, text in plan.content_match:
        hits = [d for d in test.candidates(parent, meter) if len(d) == 0 and (d.text or "").strip() == text]
        if not hits:  # content match nodes are ANDed
            return False
        content_hits.extend(hits)

    if not plan.selection and not plan.containment and not plan.keyed:
        if not plan.content_match:
            return False
        chosen = [
            child
            for child in _element_children(parent)
            if everything_namespace is None or _namespace(child.tag) == everything_namespace
        ]
        full.update(chosen)
        return bool(chosen)

    selected = bool(content_hits)
    full.update(content_hits)
    for test in plan.selection:
        for child in test.candidates(parent, meter):
            full.add(child)
            selected = True
    for test, nested in plan.containment:
        for child in test.candidates(parent, meter):
            if _match_sibling_set(child, nested, full, partial, meter):
                partial.add(child)
                selected = True
    for group in plan.keyed:
        entries: dict[str, list[_Element]] = {}
        for child in group.test.candidates(parent, meter):
            for leaf in group.leaf.candidates(child, meter):
                if len(leaf) == 0:
                    entries.setdefault((leaf.text or "").strip(), []).append(child)
        for text, nesteds in group.by_text.items():
            for child in dict.fromkeys(entries.get(text, ())):  # once, even with two leaves of that text
                for nested in nesteds:  # still matched in full: the grouping only skips entries that cannot match
                    if _match_sibling_set(child, nested, full, partial, meter):
                        partial.add(child)
                        selected = True
    return selected


# --------------------------------------------------------------------------
# XPath filtering (RFC 6241 section 8.9)
# --------------------------------------------------------------------------


def xpath_filter(
    data: _Element,
    select: str,
    namespaces: Mapping[str, str],
    keys_of: KeyLookup,
    budget: FilterBudget | None = None,
) -> _Element:
    """Apply the XPath 1.0 expression ``select`` to ``data`` (RFC 6241 §8.9).

    ``namespaces`` maps the prefixes usable in the expression (those in scope
    on the ``<filter>`` element) to namespace URIs. Absolute paths start at the
    top-level data nodes (see the module docstring). The output holds every
    selected element with its whole subtree and its ancestors (list entries
    with their keys); a selected text or attribute node selects the element
    that carries it. Document order is kept and overlaps are merged.

    Every location step is metered (agent/netconf/xpath_rewrite.py), so the
    evaluation stops when ``budget`` is spent or its session closes.

    Raises:
        NetconfError: ``invalid-value`` (error-type ``protocol``) when the
            expression does not parse, uses a prefix missing from
            ``namespaces`` or an unbound variable, or evaluates to a boolean,
            number or string instead of a node-set; ``operation-failed``
            (error-type ``application``) when the budget is spent or the
            session closed; ``too-big`` for an expression longer than
            :data:`MAX_XPATH_LENGTH`.
    """
    if len(select) > MAX_XPATH_LENGTH:
        raise NetconfError(
            f"the XPath expression has {len(select)} characters, more than the {MAX_XPATH_LENGTH} allowed",
            error_tag="too-big",
            error_type=_ERROR_TYPE,
        )
    usable = {prefix: uri for prefix, uri in namespaces.items() if prefix}
    expression = rewrite(select, usable, _ROOT_VAR)
    usable[METER_PREFIX] = METER_NS
    meter = (budget or FilterBudget()).meter()
    variables: dict[str, Any] = {_ROOT_VAR: [data]}  # a node-set holding <data>
    try:
        compiled = etree.XPath(
            expression, namespaces=usable, extensions={(METER_NS, METER_FUNCTION): meter.tick}
        )
    except etree.XPathError as exc:
        raise _invalid(f"invalid XPath expression {shown(select)}: {exc}") from exc
    try:
        result = compiled(data, **variables)
    except etree.XPathError as exc:
        raise _invalid(f"cannot evaluate XPath expression {shown(select)}: {exc}") from exc
    if not isinstance(result, list):
        raise _invalid(
            f"XPath filter {shown(select)} evaluates to a {_xpath_type(result)}, "
            "but a filter must select a node-set (RFC 6241 section 8.9)"
        )

    full: set[_Element] = set()
    partial: set[_Element] = set()
    for item in result:
        element = _owner_element(item)
        if element is None:
            continue
        if element is data:
            return _copy_whole(data)
        chain: list[_Element] = []
        ancestor = element.getparent()
        while ancestor is not None and ancestor is not data and ancestor not in partial:
            chain.append(ancestor)
            ancestor = ancestor.getparent()
        if ancestor is None:  # not inside <data> (e.g. "/..")
            continue
        full.add(element)
        partial.update(chain)
    return _build(data, full, partial, keys_of)


def _invalid(message: str) -> NetconfError:
    return NetconfError(message, error_tag="invalid-value", error_type=_ERROR_TYPE)


def _xpath_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _owner_element(item: object) -> _Element | None:
    """The data element an XPath result item selects, or None if it selects none."""
    if isinstance(item, etree._Element):
        if isinstance(item.tag, str):
            return item
        return item.getparent()  # a comment or processing instruction
    getparent = getattr(item, "getparent", None)
    if not isinstance(item, str) or getparent is None:
        return None  # namespace nodes and other non-node values
    parent: _Element | None = getparent()
    if parent is None:
        return None
    if getattr(item, "is_attribute", False):
        return parent
    if getattr(item, "is_tail", False):
        parent = parent.getparent()
        if parent is None or not item.strip():
            return None  # indentation between elements is no data node
        return parent
    if not item.strip() and len(parent):
        return None  # indentation inside a container is no data node
    return parent


# --------------------------------------------------------------------------
# building the output
# --------------------------------------------------------------------------


def _build(data: _Element, full: set[_Element], partial: set[_Element], keys_of: KeyLookup) -> _Element:
    out = etree.Element(data.tag, attrib=_attributes(data), nsmap=_nsmap(data))
    _copy_selected(data, out, full, partial, keys_of, ())
    return out


def _copy_selected(
    source: _Element,
    target: _Element,
    full: set[_Element],
    partial: set[_Element],
    keys_of: KeyLookup,
    keys: Sequence[str],
) -> None:
    for child in _element_children(source):
        if child in full or child.tag in keys:
            target.append(_deep_copy(child))
        elif child in partial:
            shallow = etree.SubElement(target, child.tag, attrib=_attributes(child), nsmap=_nsmap(child))
            _copy_selected(child, shallow, full, partial, keys_of, tuple(keys_of(child)))


def _copy_whole(data: _Element) -> _Element:
    return _deep_copy(data)


def _attributes(element: _Element) -> dict[str, str]:
    return {str(name): str(value) for name, value in element.attrib.items()}


def _nsmap(element: _Element) -> Mapping[str, str]:
    # lxml-stubs types nsmap keys as str, but lxml takes the None key (the
    # default namespace) both ways; copying nsmap keeps the client-visible prefixes.
    return cast("Mapping[str, str]", element.nsmap)


def _deep_copy(element: _Element) -> _Element:
    duplicate: _Element = copy.deepcopy(element)
    duplicate.tail = None
    return duplicate


def _element_children(element: _Element) -> Iterable[_Element]:
    return (child for child in element if isinstance(child.tag, str))


def _filter_namespace(tag: str) -> str | None:
    """The namespace a filter node selects; None: any (RFC 6241 6.2.1).

    A filter element written without a namespace inside an ``<rpc>`` whose
    default namespace is the base one, e.g. ``<filter><crypto/></filter>``,
    is in the base namespace by XML's rules; no data lives there, so it is
    read as written without one, as routers do.
    """
    namespace = _namespace(tag)
    return None if namespace == NC_NS else namespace


def _namespace(tag: str) -> str | None:
    if tag.startswith("{"):
        return tag[1 : tag.index("}")]
    return None
