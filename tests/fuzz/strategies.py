"""Hypothesis strategies for hostile NETCONF input: framed streams, <rpc> messages, <config> documents.

Messages are built from the agent's own YANG schema (so that edits and
filters reach deep into the engine) and then made hostile in the ways other
NETCONF servers were crashed: deep nesting, entities/DOCTYPE/XXE, text mixed
into <rpc>, unknown elements (in <rpc>, in filters, in <config>), subtree
filters without a namespace, attribute and namespace floods, odd encodings,
truncation and byte-level mutation. Framing gets chunk-size anomalies:
leading zeros, zero, huge sizes, missing newlines, truncated chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

from agent.schema.model import NodeKind

from .harness import CANARY_TEXT, NC, schema

NC_OP = "nc:operation"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
WD = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"


def chance(draw: st.DrawFn, percent: int) -> bool:
    """True about ``percent`` % of the time; False for hypothesis's simplest choice (0)."""
    return draw(st.integers(0, 99)) >= 100 - percent


# -- the schema, as a skeleton to generate from ---------------------------------------
@dataclass(frozen=True)
class Node:
    tag: str
    kind: NodeKind
    config: bool
    keys: tuple[str, ...]
    children: tuple[Node, ...]


@lru_cache(maxsize=1)
def skeleton() -> tuple[Node, ...]:
    model = schema()

    def build(ref: object, depth: int) -> tuple[Node, ...]:
        if depth > 8:
            return ()
        nodes = []
        for info in model.children(ref):  # type: ignore[arg-type]
            children = build(info.ref, depth + 1) if info.ref is not None else ()
            nodes.append(Node(info.tag, info.kind, info.config, tuple(info.keys), children))
        return tuple(nodes)

    return build(None, 0)


VALUES = [
    "", "a", "admin", "x" * 300, "0", "1", "60", "61", "4294967296", "-1", "true", "false", "http://127.0.0.1:1/x",
    "ldap://h/cn=x", "$0$secret", "$scrypt$n=1,r=1,p=200$AA==$AA==", "crypto:general", "sys:x", "nacm:permit",
    "permit", "deny", "*", "/sys:aaa/sys:user", "udp", "rfc5424", "2c", "10.0.0.1", "::1", "h-1.example",
    "ünïcödé", "a b", " padded ", "&lt;&amp;", "]]>]]>", "\n#5\n", "$USER", "exec", "read create update delete",
]


def _split_tag(tag: str) -> tuple[str, str]:
    namespace, _, name = tag[1:].partition("}")
    return namespace, name


# -- a tiny XML writer that can also write wrong XML ---------------------------------------
@dataclass
class Element:
    name: str  # as written: "x", "p:x"
    attributes: list[tuple[str, str]]
    children: list[Element | str]  # str: raw text (already escaped or deliberately not)

    def render(self) -> str:
        attributes = "".join(f" {name}={quoteattr(value)}" for name, value in self.attributes)
        if not self.children:
            return f"<{self.name}{attributes}/>"
        inner = "".join(child if isinstance(child, str) else child.render() for child in self.children)
        return f"<{self.name}{attributes}>{inner}</{self.name}>"


def _element(tag: str, with_namespace: bool, attributes: list[tuple[str, str]] | None = None) -> Element:
    namespace, name = _split_tag(tag)
    attrs = list(attributes or [])
    if with_namespace:
        attrs.insert(0, ("xmlns", namespace))
    return Element(name, attrs, [])


@st.composite
def data_tree(draw: st.DrawFn, nodes: tuple[Node, ...], config_only: bool, depth: int = 0,
              namespace: str | None = None) -> list[Element]:
    """A few instances of ``nodes`` (recursively), with operations, odd values and unknown siblings."""
    candidates = [n for n in nodes if n.config or not config_only]
    chosen = draw(st.lists(st.sampled_from(candidates), max_size=3)) if candidates and depth < 7 else []
    out: list[Element] = []
    for node in chosen:
        node_ns, _ = _split_tag(node.tag)
        # Where the namespace changes it must be declared; sometimes it is not (then it is another one).
        declare = node_ns != namespace and not chance(draw, 5)
        attrs: list[tuple[str, str]] = []
        if chance(draw, 25):
            attrs.append((NC_OP, draw(st.sampled_from(["merge", "replace", "create", "delete", "remove", "none",
                                                       "bogus", ""]))))
        element = _element(node.tag, declare, attrs)
        if node.kind in (NodeKind.LEAF, NodeKind.LEAF_LIST, NodeKind.ANYDATA):
            value = draw(st.sampled_from(VALUES) | st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                                                           max_size=20))
            element.children.append(escape(value))
        else:
            inner_ns = node_ns if declare else namespace
            if node.kind is NodeKind.LIST and not chance(draw, 10):
                for key in node.keys:
                    key_el = _element(key, False)
                    key_el.children.append(escape(draw(st.sampled_from(VALUES[:8]))))
                    element.children.append(key_el)
            element.children.extend(draw(data_tree(node.children, config_only, depth + 1, inner_ns)))
        if chance(draw, 6):
            element.children.append(Element(draw(st.sampled_from(["unknown", "x:y", "rpc", "data"])), [], []))
        out.append(element)
    return out


# -- XPath expressions (a filter's select) --------------------------------------------------
_XPATH_NAMES = ["sys:hostname", "sys:aaa", "sys:user", "sys:name", "crypto:crypto", "crypto:ca", "crypto:trustpoint",
                "crypto:name", "nacm:nacm", "nacm:rule", "ncm:netconf-state", "ncm:session", "*", "node()", "text()",
                "@*", "unknown", "nope:x"]
xpath_expressions = st.recursive(
    st.sampled_from(["/", ".", "..", *(f"/{n}" for n in _XPATH_NAMES), *(f"//{n}" for n in _XPATH_NAMES)]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["/", "//"]), st.sampled_from(_XPATH_NAMES)).map("".join),
        st.tuples(inner, inner).map(lambda t: f"{t[0]} | {t[1]}"),
        st.tuples(inner, st.sampled_from(["1", "last()", "sys:name='admin'", "count(//*) > 3", "position() = 2",
                                          "contains(., 'a')", "string-length(.) > 2"])).map(lambda t: f"{t[0]}[{t[1]}]"),
        inner.map(lambda e: f"//*[count({e}) > 0]"),
        inner.map(lambda e: f"count({e})"),
        inner.map(lambda e: f"{e}["),
    ),
    max_leaves=5,
)


# -- <rpc> messages --------------------------------------------------------------------------
def _datastore(draw: st.DrawFn, holder: str) -> Element:
    element = Element(holder, [], [])
    for name in draw(st.sampled_from([["running"], ["candidate"], ["running"], ["candidate"], [], ["startup"],
                                      ["config"], ["url"], ["bogus"], ["running", "candidate"]])):
        element.children.append(Element(name, [], []))
    return element


@st.composite
def _filter(draw: st.DrawFn) -> Element:
    kind = draw(st.sampled_from(["subtree", "xpath", None, "bogus"]))
    attrs = [("type", kind)] if kind else []
    element = Element("filter", attrs, [])
    if kind == "xpath":
        element.attributes.append(("select", draw(xpath_expressions)))
        if draw(st.booleans()):
            element.attributes.append(("xmlns:sys", SYS))
    else:
        trees = draw(data_tree(skeleton(), config_only=False))
        if chance(draw, 25):  # a subtree filter without namespace
            for tree in trees:
                tree.attributes = [a for a in tree.attributes if a[0] != "xmlns"]
        element.children.extend(trees)
    return element


@st.composite
def _operation(draw: st.DrawFn) -> Element:
    name = draw(st.sampled_from([
        "get", "get-config", "edit-config", "copy-config", "delete-config", "lock", "unlock", "validate", "commit",
        "cancel-commit", "discard-changes", "close-session", "kill-session", "get-schema", "get-data", "edit-data",
        "unknown-op",
    ]))
    op = Element(name, [], [])
    if name in ("get", "get-config"):
        if name == "get-config":
            op.children.append(_datastore(draw, "source"))
        if draw(st.booleans()):
            op.children.append(draw(_filter()))
        if chance(draw, 20):
            op.children.append(Element("with-defaults", [("xmlns", WD)], [draw(st.sampled_from(
                ["report-all", "trim", "explicit", "report-all-tagged", "bogus"]))]))
    elif name in ("edit-config", "copy-config", "validate"):
        if name != "validate":
            op.children.append(_datastore(draw, "target"))
        else:
            op.children.append(_datastore(draw, "source"))
        if name == "edit-config":
            for param, values in (("default-operation", ["merge", "replace", "none", "delete", "x"]),
                                  ("test-option", ["test-then-set", "set", "test-only", "x"]),
                                  ("error-option", ["stop-on-error", "continue-on-error", "rollback-on-error", "x"])):
                if chance(draw, 33):
                    op.children.append(Element(param, [], [draw(st.sampled_from(values))]))
        config = Element("config", [("xmlns:nc", NC)], draw(data_tree(skeleton(), config_only=True)))
        if name == "edit-config":
            op.children.append(config)
        elif chance(draw, 80):
            op.children.append(Element("source", [], [config]))
    elif name in ("lock", "unlock", "delete-config"):
        op.children.append(_datastore(draw, "target"))
    elif name == "commit":
        for param in draw(st.lists(st.sampled_from(["confirmed", "confirm-timeout", "persist", "persist-id"]),
                                   max_size=3)):
            text = draw(st.sampled_from(["", "1", "600", "0", "4294967296", "abc", "p1"]))
            op.children.append(Element(param, [], [text] if param != "confirmed" else []))
    elif name == "cancel-commit" and draw(st.booleans()):
        op.children.append(Element("persist-id", [], [draw(st.sampled_from(["", "p1", "x"]))]))
    elif name == "kill-session":
        op.children.append(Element("session-id", [], [draw(st.sampled_from(["0", "1", "2", "99999999999999", "x", ""]))]))
    elif name == "get-schema":
        op.attributes.append(("xmlns", NCM))
        op.children.append(Element("identifier", [], [draw(st.sampled_from(
            ["ca-agent-crypto", "ietf-netconf-acm", "../../etc/passwd", "", "x" * 200]))]))
        if draw(st.booleans()):
            op.children.append(Element("format", [], [draw(st.sampled_from(["yang", "yin", "x"]))]))
    elif name in ("get-data", "edit-data"):
        op.attributes += [("xmlns", NMDA), ("xmlns:ds", DS)]
        op.children.append(Element("datastore", [], [draw(st.sampled_from(
            ["ds:running", "ds:candidate", "ds:operational", "ds:startup", "running", "x:y"]))]))
        if name == "get-data":
            for param in draw(st.lists(st.sampled_from(["xpath-filter", "subtree-filter", "max-depth", "config-filter",
                                                        "with-origin", "origin-filter"]), max_size=2)):
                if param == "xpath-filter":
                    op.children.append(Element(param, [("xmlns:sys", SYS)], [escape(draw(xpath_expressions))]))
                elif param == "subtree-filter":
                    op.children.append(Element(param, [], draw(data_tree(skeleton(), config_only=False))))
                else:
                    op.children.append(Element(param, [], [draw(st.sampled_from(["1", "0", "true", "or:intended",
                                                                               "unbounded", "x"]))]))
        else:
            op.children.append(Element("config", [], draw(data_tree(skeleton(), config_only=True))))
    if chance(draw, 8):  # an unknown element in the operation
        op.children.insert(draw(st.integers(0, len(op.children))), Element("bogus-param", [], []))
    return op


def _deep(depth: int, name: str = "a") -> str:
    return f"<{name}>" * depth + f"</{name}>" * depth


@st.composite
def rpc_messages(draw: st.DrawFn) -> bytes:
    """One message as a client could send it (mostly an <rpc>, often a broken or hostile one)."""
    rpc = Element("rpc", [("xmlns", NC), ("xmlns:nc", NC)], [])
    message_id = draw(st.sampled_from(["1", "1", "1", "101", "", "x" * 100, "<&>", None]))
    if message_id is not None:
        rpc.attributes.append(("message-id", message_id))
    count = draw(st.sampled_from([1] * 18 + [0, 2]))
    operations = [draw(_operation()) for _ in range(count)]
    rpc.children.extend(operations)
    hostile = draw(st.sampled_from([None] * 24 + [
        "text", "deep", "deep-config", "doctype", "entity", "xxe", "xinclude",
        "attribute-flood", "namespace-flood", "wrong-root", "no-namespace", "declaration", "bom", "utf16", "cdata",
        "comment", "pi", "extra-rpc-attributes", "truncated", "nul",
    ]))
    if hostile == "text":
        rpc.children.insert(draw(st.integers(0, len(rpc.children))), escape(draw(st.sampled_from(["x", " y ", "&"]))))
    elif hostile == "deep":
        rpc.children.append(_deep(draw(st.integers(200, 300))))
    elif hostile == "deep-config":
        rpc.children = [f"<edit-config><target><candidate/></target><config><aaa xmlns='{SYS}'>"
                        f"{_deep(draw(st.integers(1, 260)), 'user')}</aaa></config></edit-config>"]
    elif hostile == "attribute-flood":
        count = draw(st.sampled_from([65, 500, 5000]))
        target = draw(st.sampled_from(["rpc", "operation"]))
        flood = [(f"a{i}", "v") for i in range(count)]
        if target == "rpc" or not operations:
            rpc.attributes += flood
        else:
            operations[0].attributes += flood
    elif hostile == "namespace-flood":
        count = draw(st.sampled_from([129, 1000, 5000]))
        rpc.attributes += [(f"xmlns:p{i}", f"urn:p{i}") for i in range(count)]
    elif hostile == "wrong-root":
        rpc.name = draw(st.sampled_from(["hello", "rpc-reply", "notification", "x"]))
    elif hostile == "no-namespace":
        rpc.attributes = [a for a in rpc.attributes if a[0] != "xmlns"]
    elif hostile == "extra-rpc-attributes":
        rpc.attributes += [("xmlns:ex", "urn:ex"), ("ex:user", "fred"), ("xml:lang", "en")]
    elif hostile == "cdata":
        rpc.children.append("<![CDATA[<get/>]]>")
    elif hostile == "comment":
        rpc.children.insert(0, "<!-- c -->")
    elif hostile == "pi":
        rpc.children.insert(0, "<?pi x?>")
    body = rpc.render()
    if hostile == "doctype":
        body = "<!DOCTYPE rpc [<!ELEMENT rpc ANY>]>" + body
    elif hostile == "entity":
        body = ('<!DOCTYPE rpc [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>' + body.replace("</rpc>", "&c;</rpc>"))
    elif hostile == "xxe":
        body = (f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "file://{draw(st.sampled_from(["/etc/passwd", CANARY_PATH]))}">]>'
                + body.replace("</rpc>", "&x;</rpc>"))
    elif hostile == "xinclude":
        body = body.replace("</rpc>", f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{CANARY_PATH}"'
                                      ' parse="text"/></rpc>')
    elif hostile == "declaration":
        body = draw(st.sampled_from(['<?xml version="1.0"?>', '<?xml version="1.1" encoding="UTF-8"?>',
                                     '<?xml version="1.0" encoding="ISO-8859-1"?>', "\n  <?xml version='1.0'?>",
                                     '<?xml version="2.0"?>'])) + body
    data = body.encode("utf-8")
    if hostile == "bom":
        data = b"\xef\xbb\xbf" + data
    elif hostile == "utf16":
        data = ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16")
    elif hostile == "truncated" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif hostile == "nul":
        position = draw(st.integers(0, len(data)))
        data = data[:position] + b"\x00" + data[position:]
    return draw(mutated(data))


CANARY_PATH = "/tmp/ca-agent-fuzz-canary.txt"


def write_canary() -> None:
    """The file hostile messages try to read (XXE, XInclude); its content must never come back."""
    with open(CANARY_PATH, "w", encoding="utf-8") as handle:
        handle.write(CANARY_TEXT)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data``, usually unchanged, else with a few byte-level mutations."""
    if not chance(draw, 15) or not data:
        return data
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "interesting"]))
        position = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "flip" and out:
            out[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and out:
            del out[position : position + draw(st.integers(1, 16))]
        elif kind == "duplicate" and out:
            out[position:position] = out[position : position + draw(st.integers(1, 64))]
        else:
            out[position:position] = draw(st.sampled_from([b"<", b">", b"&", b"]]>", b"<![CDATA[", b"&#0;", b"&#x10FFFF;",
                                                           b"\xff\xfe", b"\xc0\x80", b"xmlns=''", b"nc:operation='x'"]))
    return bytes(out)


# -- framed streams ----------------------------------------------------------------------------
CHUNK_ANOMALIES = [
    b"\n#0\n", b"\n#01\n", b"\n#007\n", b"\n#4294967295\n", b"\n#4294967296\n", b"\n#99999999999\n", b"\n#5",
    b"\n#5x\n", b"#5\n", b"\n##", b"\n##\n", b"\n#-1\n", b"\n# 5\n", b"\n#\n", b"\r\n#5\r\n", b"\n#1\n",
    b"\n#10\n", b"]]>]]>", b"]]>", b"\n##\n\n##\n",
]


@st.composite
def chunked_frame(draw: st.DrawFn, message: bytes) -> bytes:
    """``message`` in one or more chunks of random sizes."""
    if not message:
        return b"\n##\n"
    out = []
    position = 0
    while position < len(message):
        size = draw(st.integers(1, max(1, len(message) - position)))
        out.append(b"\n#%d\n" % size + message[position : position + size])
        position += size
    return b"".join(out) + b"\n##\n"


@st.composite
def framed_streams(draw: st.DrawFn) -> tuple[bytes, list[int], bool, bool]:
    """(stream, cut points, chunked?, hello first?): framed messages with anomalies spliced in."""
    chunked = draw(st.booleans())
    messages = draw(st.lists(st.binary(max_size=64) | st.sampled_from([b"<rpc/>", b"", b"]]>]]", b"\n#3\n"]),
                             max_size=4))
    parts = []
    for message in messages:
        parts.append(draw(chunked_frame(message)) if chunked else message + b"]]>]]>")
        if chance(draw, 33):
            parts.append(draw(st.sampled_from(CHUNK_ANOMALIES)))
    stream = draw(mutated(b"".join(parts)))
    cuts = draw(st.lists(st.integers(0, 1 << 16), max_size=6))
    return stream, cuts, chunked, chance(draw, 20)


# -- <config> documents for the edit engine ---------------------------------------------------
@st.composite
def config_documents(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """(a <config> document, default-operation index, error-option index)."""
    config = Element("config", [("xmlns", NC), ("xmlns:nc", NC)], draw(data_tree(skeleton(), config_only=True)))
    if chance(draw, 10):
        config.children.append(_deep(draw(st.integers(1, 255)), draw(st.sampled_from(["aaa", "user", "x"]))))
    if chance(draw, 10):
        config.children.append(f"<hostname xmlns='{SYS}'" + "".join(f" a{i}='v'" for i in range(64)) + ">h</hostname>")
    return draw(mutated(config.render().encode("utf-8"))), draw(st.integers(0, 5)), draw(st.integers(0, 2))
