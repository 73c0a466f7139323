"""RFC 8341 access control rules, compiled from the ``/nacm`` configuration.

Pure data and parsing, no I/O: :func:`compile_policy` turns the ``/nacm``
subtree of the running configuration into a :class:`Policy` (the global
switches, who is in which group, and the rule-lists in configuration order);
:func:`parse_node_path` compiles a rule's ``path`` (a YANG
node-instance-identifier) into steps that can be matched against the schema
(to decide once per schema node) or against one instance.

The decisions themselves are made by :mod:`agent.netconf.nacm`.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

__all__ = [
    "NACM_NS",
    "Access",
    "NodePath",
    "PathMatch",
    "PathStep",
    "Policy",
    "Rule",
    "RuleKind",
    "compile_policy",
    "parse_node_path",
]

NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
log = logging.getLogger(__name__)


def _nacm(name: str) -> str:
    return f"{{{NACM_NS}}}{name}"


class Access(enum.Flag):
    """The access-operations bits of RFC 8341 (CRUDX)."""

    CREATE = enum.auto()
    READ = enum.auto()
    UPDATE = enum.auto()
    DELETE = enum.auto()
    EXEC = enum.auto()
    ALL = CREATE | READ | UPDATE | DELETE | EXEC

    @property
    def label(self) -> str:
        """The bit's name as the YANG bits type spells it."""
        return (self.name or "").lower()


WRITES = (Access.CREATE, Access.UPDATE, Access.DELETE)


class PathMatch(enum.Enum):
    """How a rule path relates to a schema node, before looking at instances."""

    NEVER = "never"  # the node is not the path's node nor below it
    ALWAYS = "always"  # every instance of the node is at or below the path
    DEPENDS = "depends"  # the path has key predicates: only some instances match


USER_VARIABLE = object()
"""A predicate value standing for ``$USER``, the name of the session's user."""


@dataclass(frozen=True)
class PathStep:
    """One step of a node-instance-identifier: a node and its predicates.

    Each predicate is (key leaf Clark tag, or None for ``.``; the value or
    :data:`USER_VARIABLE`).
    """

    tag: str
    predicates: tuple[tuple[str | None, object], ...] = ()


@dataclass(frozen=True)
class NodePath:
    """A compiled rule path; no steps means ``/`` (every node)."""

    text: str
    steps: tuple[PathStep, ...]

    def relation(self, tags: Sequence[str]) -> PathMatch:
        """How this path relates to the schema node reached by ``tags`` (Clark tags from the top).

        A path matches the node it names and every descendant (RFC 8341 3.4.5).
        Raises nothing.
        """
        if len(self.steps) > len(tags):
            return PathMatch.NEVER
        depends = False
        for step, tag in zip(self.steps, tags, strict=False):
            if step.tag != tag:
                return PathMatch.NEVER
            depends = depends or bool(step.predicates)
        return PathMatch.DEPENDS if depends else PathMatch.ALWAYS

    def matches(self, chain: Sequence[etree._Element], username: str) -> bool:
        """Whether the instance whose ancestor-or-self elements (from the top) are ``chain`` is at or below the path.

        Raises nothing.
        """
        if len(self.steps) > len(chain):
            return False
        for step, element in zip(self.steps, chain, strict=False):
            if step.tag != element.tag:
                return False
            for key, value in step.predicates:
                wanted = username if value is USER_VARIABLE else value
                actual = element.text if key is None else element.findtext(key)
                if (actual or "").strip() != wanted:
                    return False
        return True


class RuleKind(enum.Enum):
    """The rule-type choice of a rule (no leaf set: the rule matches every request)."""

    ANY = "any"
    RPC = "protocol-operation"
    NOTIFICATION = "notification"
    DATA = "data-node"


@dataclass(frozen=True)
class Rule:
    """One compiled ``/nacm/rule-list/rule``. ``None`` for a name or module means ``*``."""

    rule_list: str
    name: str
    module: str | None
    kind: RuleKind
    operation: str | None  # rpc-name or notification-name
    path: NodePath | None
    access: Access
    permit: bool

    def covers_module(self, module: str) -> bool:
        return self.module is None or self.module == module

    def covers_name(self, name: str) -> bool:
        return self.operation is None or self.operation == name


@dataclass(frozen=True)
class RuleList:
    name: str
    groups: frozenset[str]  # "*": every group
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Policy:
    """The compiled ``/nacm`` configuration (RFC 8341 section 3.5 data model)."""

    enabled: bool = True
    read_permit: bool = True
    write_permit: bool = False
    exec_permit: bool = True
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)  # user -> groups
    rule_lists: tuple[RuleList, ...] = ()
    broken: tuple[str, ...] = ()  # rules left out because they could not be compiled

    def groups_of(self, username: str) -> frozenset[str]:
        return self.groups.get(username, frozenset())

    def rules_for(self, username: str) -> tuple[Rule, ...]:
        """The rules that apply to the user, in the order RFC 8341 3.4.4 step 6 processes them.

        A user in no group gets no rules: only the defaults apply (step 5),
        even for rule-lists of group ``*``. Raises nothing.
        """
        groups = self.groups_of(username)
        if not groups:
            return ()
        rules: list[Rule] = []
        for rule_list in self.rule_lists:
            if "*" in rule_list.groups or groups & rule_list.groups:
                rules.extend(rule_list.rules)
        return tuple(rules)


PrefixResolver = Callable[[str], "str | None"]
"""Maps a prefix (or a module name, as in JSON-encoded paths) to a namespace; None if unknown."""


def compile_policy(running: etree._Element, resolve: PrefixResolver) -> Policy:
    """Compile the ``/nacm`` subtree of a configuration tree (its absence: RFC 8341 defaults).

    A rule that cannot be compiled (a path that does not parse) is left out
    and named in :attr:`Policy.broken`; :func:`parse_node_path` errors are
    reported at commit by the validator, so this only happens for a
    configuration loaded from disk. Raises nothing.
    """
    nacm = running.find(_nacm("nacm"))
    if nacm is None:
        return Policy()

    def flag(name: str, default: str) -> str:
        return (nacm.findtext(_nacm(name)) or default).strip()

    groups: dict[str, set[str]] = {}
    for group in nacm.iterfind(f"{_nacm('groups')}/{_nacm('group')}"):
        group_name = (group.findtext(_nacm("name")) or "").strip()
        for user in group.iterfind(_nacm("user-name")):
            groups.setdefault((user.text or "").strip(), set()).add(group_name)
    rule_lists: list[RuleList] = []
    broken: list[str] = []
    for entry in nacm.iterfind(_nacm("rule-list")):
        list_name = (entry.findtext(_nacm("name")) or "").strip()
        rules: list[Rule] = []
        for rule_el in entry.iterfind(_nacm("rule")):
            try:
                rules.append(_compile_rule(list_name, rule_el, resolve))
            except ValueError as error:
                broken.append(f"{list_name}/{rule_el.findtext(_nacm('name'))}: {error}")
                log.error("NACM rule %s/%s ignored: %s", list_name, rule_el.findtext(_nacm("name")), error)
        rule_groups = frozenset((g.text or "").strip() for g in entry.iterfind(_nacm("group")))
        rule_lists.append(RuleList(list_name, rule_groups, tuple(rules)))
    return Policy(
        enabled=flag("enable-nacm", "true") == "true",
        read_permit=flag("read-default", "permit") == "permit",
        write_permit=flag("write-default", "deny") == "permit",
        exec_permit=flag("exec-default", "permit") == "permit",
        groups={user: frozenset(names) for user, names in groups.items()},
        rule_lists=tuple(rule_lists),
        broken=tuple(broken),
    )


def _compile_rule(list_name: str, rule_el: etree._Element, resolve: PrefixResolver) -> Rule:
    name = (rule_el.findtext(_nacm("name")) or "").strip()
    module = (rule_el.findtext(_nacm("module-name")) or "*").strip()
    kind, operation, path = RuleKind.ANY, None, None
    rpc_name = rule_el.findtext(_nacm("rpc-name"))
    notification_name = rule_el.findtext(_nacm("notification-name"))
    path_el = rule_el.find(_nacm("path"))
    if rpc_name is not None:
        kind, operation = RuleKind.RPC, rpc_name.strip()
    elif notification_name is not None:
        kind, operation = RuleKind.NOTIFICATION, notification_name.strip()
    elif path_el is not None:
        kind, path = RuleKind.DATA, parse_node_path(path_el.text or "", _in_scope(path_el), resolve)
    return Rule(
        rule_list=list_name,
        name=name,
        module=None if module == "*" else module,
        kind=kind,
        operation=None if operation == "*" else operation,
        path=path,
        access=parse_access_operations(rule_el.findtext(_nacm("access-operations")) or "*"),
        permit=(rule_el.findtext(_nacm("action")) or "").strip() == "permit",
    )


def _in_scope(element: etree._Element) -> dict[str, str]:
    """The prefixed namespace declarations in scope on ``element`` (RFC 8341: the path's context)."""
    return {prefix: ns for prefix, ns in element.nsmap.items() if prefix}


def parse_access_operations(text: str) -> Access:
    """``*`` or a space-separated set of create/read/update/delete/exec. Raises ValueError for another word."""
    words = text.split()
    if words == ["*"]:
        return Access.ALL
    access = Access(0)
    for word in words:
        try:
            access |= Access[word.upper()]
        except KeyError:
            raise ValueError(f"unknown access operation {word!r}") from None
    return access


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<slash>/)
      | (?P<name>(?:[A-Za-z_][\w.\-]*:)?[A-Za-z_][\w.\-]*)
      | (?P<dot>\.)
      | (?P<open>\[)
      | (?P<close>\])
      | (?P<eq>=)
      | '(?P<single>[^']*)'
      | "(?P<double>[^"]*)"
      | (?P<user>\$USER)
    )""",
    re.VERBOSE,
)


def parse_node_path(text: str, nsmap: Mapping[str, str], resolve: PrefixResolver) -> NodePath:
    """Compile a node-instance-identifier such as ``/sys:aaa/sys:user[sys:name='bob']/sys:password-hash``.

    Prefixes come from ``nsmap`` (the declarations in scope on the ``path``
    leaf), else from ``resolve`` (module prefixes and module names, so the
    JSON form ``/ca-agent-system:aaa/user`` works too); an unprefixed step
    inherits the namespace of the step before it. Predicates compare a key
    leaf (or ``.`` for a leaf-list entry) with a literal or ``$USER``. ``/``
    alone names every node.

    Raises ValueError (with a message for a person) when the text is not such a path.
    """
    tokens = _tokens(text)
    if tokens == [("slash", "/")]:
        return NodePath(text.strip(), ())
    steps: list[PathStep] = []
    namespace: str | None = None
    position = 0

    def take(kind: str) -> str:
        nonlocal position
        if position >= len(tokens) or tokens[position][0] != kind:
            found = tokens[position][1] if position < len(tokens) else "the end"
            raise ValueError(f"expected {kind!r} in path {text!r}, found {found!r}")
        position += 1
        return tokens[position - 1][1]

    def qualify(name: str, default_ns: str | None) -> str:
        prefix, _, local = name.rpartition(":")
        if not prefix:
            if default_ns is None:
                raise ValueError(f"{name!r} in path {text!r} has no prefix")
            return f"{{{default_ns}}}{local}"
        ns = nsmap.get(prefix) or resolve(prefix)
        if ns is None:
            raise ValueError(f"unknown prefix {prefix!r} in path {text!r}")
        return f"{{{ns}}}{local}"

    if not tokens:
        raise ValueError("a path cannot be empty")
    while position < len(tokens):
        take("slash")
        tag = qualify(take("name"), namespace)
        namespace = etree.QName(tag).namespace
        predicates: list[tuple[str | None, object]] = []
        while position < len(tokens) and tokens[position][0] == "open":
            position += 1
            key: str | None = None
            if position < len(tokens) and tokens[position][0] == "dot":
                position += 1
            else:
                key = qualify(take("name"), namespace)
            take("eq")
            kind, value = tokens[position] if position < len(tokens) else ("end", "")
            if kind not in ("single", "double", "user"):
                raise ValueError(f"a predicate in path {text!r} must compare with a quoted value or $USER")
            position += 1
            predicates.append((key, USER_VARIABLE if kind == "user" else value))
            take("close")
        steps.append(PathStep(tag, tuple(predicates)))
    return NodePath(text.strip(), tuple(steps))


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read path {text!r} at {stripped[position:position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens
