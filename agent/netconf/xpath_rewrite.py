"""Rewriting of an XPath 1.0 filter expression before libxml2 evaluates it.

Two rewrites, done in one pass over the tokens (XPath 1.0 section 3.7
lexical structure, enough to tell each token's role):

- *anchoring*: every ``/`` or ``//`` that starts an absolute location path
  is made to start at a variable bound to the ``<data>`` element (see
  agent/netconf/filters.py for why);
- *metering*: every node test of every location step gets a first predicate
  ``[m:tick()]``, a call of an extension function that is always true (so
  positions and ``last()`` in the predicates after it are unchanged) and that
  counts the step and stops the evaluation when its budget is spent
  (agent/netconf/budget.py). ``//`` is spelled out as
  ``/descendant-or-self::node()[m:tick()]/`` so that its implicit step is
  metered too. Abbreviated steps (``.``, ``..``) cost one node each and
  stay as they are.

Every super-linear evaluation visits nodes through location steps, so the
work between two ticks is bounded by one step's node-set handling (at most
one merge of two node-sets of the datastore's size).

The rewrite never turns an expression libxml2 would refuse into one it
accepts, nor changes which nodes a valid expression selects
(tests/unit/netconf/test_xpath_rewrite.py checks both on generated
expressions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.errors import NetconfError

METER_NS = "urn:ca-agent:xpath-meter"
METER_PREFIX = "ca-agent-meter"
METER_FUNCTION = "tick"
_TICK = f"[{METER_PREFIX}:{METER_FUNCTION}()]"

# XPath 1.0 lexical structure (section 3.7), enough to tell a "/" that starts
# an absolute location path from a "/" that separates steps, and a node test
# from a function name, an axis name or an operator.
_NCNAME = r"[^\W\d][\w.\-]*"
_TOKEN = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<literal>"[^"]*"|'[^']*')
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<variable>\$(?:{_NCNAME}:)?{_NCNAME})
  | (?P<name>{_NCNAME}(?::(?:{_NCNAME}|\*))?)
  | (?P<punct>//|::|\.\.|!=|<=|>=|[/()\[\].@,|+\-=<>*])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_OPERATOR_NAMES = frozenset({"and", "or", "mod", "div"})
_NODE_TYPES = frozenset({"node", "text", "comment", "processing-instruction"})
_ENDS_OPERAND_PUNCT = frozenset({")", "]", ".", ".."})
_STEP_START_PUNCT = frozenset({"*", "@", ".", ".."})


def shown(select: str, limit: int = 200) -> str:
    """``select`` as an error message quotes it: cut after ``limit`` characters (an rpc-error echoed it whole)."""
    return repr(select) if len(select) <= limit else f"{select[:limit]!r}... ({len(select)} characters)"


def rewrite(select: str, namespaces: Mapping[str, str], root_var: str, metered: bool = True) -> str:
    """``select`` with absolute paths anchored at ``$root_var`` and, if ``metered``, every step metered.

    Also checks that every prefixed name uses a prefix in ``namespaces``.
    The metered expression needs :data:`METER_PREFIX` bound to
    :data:`METER_NS` and the extension function ``tick`` registered there.

    Raises:
        NetconfError: ``invalid-value`` (error-type protocol) for an unknown
            namespace prefix.
    """
    tokens: list[tuple[str, str]] = []
    spaces: list[str] = []  # the whitespace before each token, kept as written
    pending = ""
    for match in _TOKEN.finditer(select):
        if match.lastgroup == "ws":
            pending = match.group()
            continue
        tokens.append((match.lastgroup or "other", match.group()))
        spaces.append(pending)
        pending = ""
    for kind, text in tokens:
        prefix, colon, _ = text.partition(":")
        if kind == "name" and colon and prefix not in namespaces:
            raise NetconfError(
                f"unknown namespace prefix {prefix!r} in XPath expression {shown(select)}; "
                "declare it with xmlns:" + prefix + " on the <filter> element or the <rpc>",
                error_tag="invalid-value",
                error_type="protocol",
            )
    out: list[str] = []
    # XPath 1.0 §3.7: after a token that ends an operand, "*" is the multiply
    # operator, an NCName is an operator name and "/" separates steps.
    ends_operand = False
    axis = "child"  # the axis of the node test to come
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        next_kind, next_text = tokens[i + 1] if i + 1 < len(tokens) else ("end", "")
        out.append(spaces[i])
        if kind == "punct" and text in ("/", "//"):
            anchor = "" if ends_operand else f"${root_var}"
            ends_operand = False
            axis = "child"
            i += 1
            if text == "/":
                starts_step = next_kind == "name" or (next_kind == "punct" and next_text in _STEP_START_PUNCT)
                # the space keeps a following "-" from joining the variable name
                out.append("/" if not anchor else f"{anchor}/" if starts_step else f"{anchor} ")
            elif not metered:
                out.append(f"{anchor}//")
            elif (child_step := _predicate_free_child_step(tokens, i)) is not None:
                # "//T" is "/descendant::T" when T has no predicate: one walk in document order
                # (the general form below makes libxml2 sort large node-sets: quadratic).
                i, test = child_step
                out.append(f"{anchor}/descendant::node(){_TICK}{_self_test(test)}")
                ends_operand = True
            else:
                out.append(f"{anchor}/descendant-or-self::node(){_TICK}/")
            continue
        node_test = _node_test(tokens, i) if not ends_operand else None
        if node_test is not None:
            i, test = node_test
            if not metered:
                out.append(test)
            elif axis in ("attribute", "namespace") or test == "node()":
                out.append(test + _TICK)
            else:
                # Every node the axis visits is counted, not only those the test lets through.
                out.append(f"node(){_TICK}{_self_test(test)}")
            ends_operand = True
            axis = "child"
            continue
        out.append(text)
        i += 1
        if kind == "name":
            if next_kind == "punct" and next_text == "::":
                axis = text
                ends_operand = False
            elif next_kind == "punct" and next_text == "(":
                ends_operand = False  # a function call
            else:
                ends_operand = not (ends_operand and text in _OPERATOR_NAMES)
        elif kind in ("literal", "number", "variable"):
            ends_operand = True
        elif kind == "punct":
            if text == "@":
                axis = "attribute"
            ends_operand = text in _ENDS_OPERAND_PUNCT  # "*" here is the multiply operator
        else:
            ends_operand = False
    return "".join(out) + pending


def _node_test(tokens: list[tuple[str, str]], i: int) -> tuple[int, str] | None:
    """The node test starting at token ``i`` (where a step may start), and the index after it; else None."""
    kind, text = tokens[i]
    following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
    if kind == "punct" and text == "*":
        return i + 1, "*"
    if kind != "name" or following == "::":
        return None
    if following != "(":
        return i + 1, text  # a name test
    if text not in _NODE_TYPES:
        return None  # a function call
    # node(), text(), comment(), processing-instruction('literal')
    j = i + 2
    argument = ""
    if j < len(tokens) and tokens[j][0] == "literal" and text == "processing-instruction":
        argument = tokens[j][1]
        j += 1
    if j < len(tokens) and tokens[j] == ("punct", ")"):
        return j + 1, f"{text}({argument})"
    return None


def _predicate_free_child_step(tokens: list[tuple[str, str]], i: int) -> tuple[int, str] | None:
    """After ``//``: a child-axis step with no predicate (its node test and end), else None."""
    if i + 1 < len(tokens) and tokens[i] == ("name", "child") and tokens[i + 1] == ("punct", "::"):
        i += 2
    if i >= len(tokens):
        return None
    found = _node_test(tokens, i)
    if found is None:
        return None
    end, test = found
    if end < len(tokens) and tokens[end] == ("punct", "["):
        return None
    return end, test


def _self_test(test: str) -> str:
    """A predicate keeping the nodes that pass ``test`` (positions after it are as if the axis had tested)."""
    return "" if test == "node()" else f"[self::{test}]"
