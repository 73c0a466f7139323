"""Parsing one received NETCONF message, with the limits that keep hostile XML cheap.

libxml2 (without XML_PARSE_HUGE) already refuses nesting deeper than 256
and text nodes over 10 MB; entities are never expanded, nothing is fetched,
and a document type declaration is refused. What libxml2 does not bound:

- *attribute floods*: lxml handles an element's attributes in quadratic time
  (``dict(element.attrib)``, ``attrib.items()``, canonicalization: 100,000
  attributes on ``<rpc>`` took 105 s to answer), so an element may carry at
  most :data:`MAX_ATTRIBUTES`;
- *namespace floods*: every element's in-scope namespaces are looked at
  (``nsmap``) and leaf values that may hold prefixes keep them, so at most
  :data:`MAX_NAMESPACES_IN_SCOPE` declarations may be in scope at once
  (8,000 declarations on ``<rpc>`` made an edit of 200 leaves take 37 s);
- *element floods*: a parsed element costs ~130 bytes, 32 times what
  ``<a/>`` costs on the wire, and more again in whatever walks it: a 13 MiB
  ``<filter>`` of 3.5 million empty elements took the agent to 1.7 GB and
  20 s, and four of them at once killed it. So a message may hold at most
  :data:`MAX_TAGS` tags (``<``), about half as many elements: an edit of
  10,000 trustpoints as the benchmark writes them has 160,000.

The checks cost nothing for ordinary messages: they only run when a count
of ``=`` or ``xmlns`` in the raw bytes shows they could fail, and counting
``<`` runs at C speed (~2 ms for 16 MiB).
"""

from __future__ import annotations

import io
import threading

from lxml import etree

from agent.xmltree import ThreadXPath, has_doctype

MAX_ATTRIBUTES = 64  # per element (NETCONF uses a handful: message-id, operation, insert, key, ...)
MAX_NAMESPACES_IN_SCOPE = 128  # declarations in scope at any element
MAX_TAGS = 1_000_000  # '<' in one message: at most ~500,000 elements (~65 MB parsed)


class _Parsers(threading.local):
    """This thread's parsers: each session parses with its own.

    lxml lets threads share a parser by taking turns on a lock, and a thread
    keeps that lock while it waits for the GIL after libxml2's part of the
    parse: one session's large request (a 6 MB edit: 0.19 s) held every other
    session's request. In the 100-session benchmark per-thread parsers halved
    the median read and doubled the p99 (the shared lock had served parses
    roughly in turn): see bench/results/NOTES.md, stop 40.
    """

    def __init__(self) -> None:
        self.message = etree.XMLParser(
            remove_blank_text=True, resolve_entities=False, no_network=True, huge_tree=False,
            remove_comments=True, load_dtd=False,
        )
        self.hello = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


_PARSERS = _Parsers()
_TOO_MANY_ATTRIBUTES = ThreadXPath(f"/descendant-or-self::*[count(@*) > {MAX_ATTRIBUTES}][1]")


class NotWellFormed(ValueError):
    """The message is not a well-formed XML document acceptable in NETCONF (the message says why)."""


class TooComplex(ValueError):
    """Well-formed, but beyond the agent's limits (attributes, namespaces); the message says which."""


def parse_message(message: bytes) -> etree._Element:
    """The root element of ``message`` (leading whitespace allowed).

    Raises NotWellFormed (bad XML, or a DOCTYPE) or TooComplex.
    """
    data = message.lstrip()
    if len(data) > MAX_TAGS and data.count(b"<") > MAX_TAGS:
        raise TooComplex(f"the message has more than {MAX_TAGS} tags")
    try:
        if data.count(b"xmlns") > MAX_NAMESPACES_IN_SCOPE:
            root = _parse_counting_namespaces(data)
        else:
            root = etree.fromstring(data, _PARSERS.message)
    except etree.XMLSyntaxError as error:
        raise NotWellFormed(str(error)) from None
    if has_doctype(root):
        raise NotWellFormed("a document type declaration is not allowed in a NETCONF message")
    if data.count(b"=") > MAX_ATTRIBUTES:
        flooded = _TOO_MANY_ATTRIBUTES(root)
        if isinstance(flooded, list) and flooded:
            element = flooded[0]
            name = etree.QName(element).localname if isinstance(element, etree._Element) else "?"
            raise TooComplex(f"element <{name}> has more than {MAX_ATTRIBUTES} attributes")
    return root


def hello_parser() -> etree.XMLParser:
    """This thread's parser for a client's <hello> (comments and blank text kept, as received)."""
    return _PARSERS.hello


def _parse_counting_namespaces(data: bytes) -> etree._Element:
    """Parse while counting the namespace declarations in scope (one event per declaration)."""
    events = etree.iterparse(
        io.BytesIO(data), events=("start-ns", "end-ns"), remove_blank_text=True, resolve_entities=False,
        no_network=True, huge_tree=False, remove_comments=True, load_dtd=False,
    )
    in_scope = 0
    for event, _ in events:
        if event == "start-ns":
            in_scope += 1
            if in_scope > MAX_NAMESPACES_IN_SCOPE:
                raise TooComplex(f"more than {MAX_NAMESPACES_IN_SCOPE} namespace declarations in scope")
        else:
            in_scope -= 1
    root: etree._Element = events.root
    return root
