"""NETCONF access control (RFC 8341 NACM): the one place that decides who may do what.

:class:`AccessControl` is fed by the running configuration (``/nacm`` of
``ietf-netconf-acm``, with the users of ``/aaa/user``) and by the
``nacm:default-deny-*`` markings of the YANG modules. It answers, per user:

* may this protocol operation run (3.4.4)? -- :meth:`AccessControl.authorize`,
  called by the dispatcher before every operation;
* which data may be read (3.4.5)? -- :meth:`AccessControl.read_view` /
  :meth:`AccessControl.prune`, applied to every reply's data *before* any
  filter, so a filter cannot probe data the user may not read;
* may this edit create, change or delete these nodes (3.4.5)? --
  :meth:`AccessControl.write_guard`, passed into the edit engine
  (agent/datastore/edit.py ``WriteGuard``), which reports exactly what an
  edit creates, updates and deletes; ``copy-config`` and ``commit`` (3.2.6,
  3.2.8) ask it about the nodes that differ between the old and new tree;
* may this notification be sent to the user (3.4.6)? --
  :meth:`AccessControl.may_receive`.

Services and the PKI backend never check permissions themselves.

Decisions follow RFC 8341 3.4.4-3.4.6: ``enable-nacm`` false permits
everything; ``close-session`` is always allowed; a user's groups select the
rule-lists (in configuration order, a user in no group gets only the
defaults); the first rule whose module-name, rule type (rpc-name,
notification-name or path) and access-operations match decides; otherwise
``nacm:default-deny-all`` (also ``kill-session`` and ``delete-config``) or
``nacm:default-deny-write`` deny, and then read-default, write-default and
exec-default decide. ``get``, ``get-config`` (and ``get-data``) need no exec
permit: without a matching rule they run, and what they return is filtered.
A data node that may not be read is left out of the reply with all its
descendants (a list entry whose key may not be read is left out whole).

``copy-config`` from a datastore copies the whole source (RFC 8341 3.2.6
skips source nodes the user may not read; here they are copied, but every
node that ends up different in the target needs write access, so a copy can
neither show nor change what the user may not touch).

Refusals are ``access-denied``: error-type ``protocol`` for a protocol
operation (the operation layer refuses it), ``application`` for a data node
an edit may not change (the content layer), both allowed by RFC 6241
Appendix A; the error-path names the operation (``/nc:rpc/nc:edit-config``)
or the data node. ``get-schema`` of a module whose ``/netconf-state/schemas``
entry the user may not read answers exactly as for a module that does not
exist. The RFC's counters (denied-operations, denied-data-writes,
denied-notifications) are state leaves of ``/nacm``.

Cost: the policy is compiled once per running configuration; each user's
view of it is built once and remembers, per schema node, every decision that
does not depend on instance values, and whether a whole subtree is
permitted, so a user whose rules cannot deny anything in a subtree costs
nothing there (``root-system`` costs nothing anywhere).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lxml import etree

from agent.datastore.edit import WriteGuard
from agent.errors import NetconfError, SchemaError
from agent.netconf.nacm_rules import (
    NACM_NS,
    Access,
    PathMatch,
    Policy,
    Rule,
    RuleKind,
    compile_policy,
    parse_node_path,
)
from agent.netconf.nacm_write import UserWriteGuard
from agent.schema.convert import xpath_literal
from agent.schema.model import AccessDefault, NodeInfo
from agent.xmltree import ThreadXPath, default_ns

__all__ = ["NACM_NS", "AccessControl", "AccessPolicy", "AccessSchema", "OpenAccess", "Statistics", "View"]

log = logging.getLogger(__name__)

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
NCM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NETMOD_NOTIFICATION_NS = "urn:ietf:params:xml:ns:netmod:notification"
BASE_MODULE = "ietf-netconf"  # the module of the base operations, for rules' module-name
# RFC 5277's namespaces, whose YANG modules (as named by the YANG catalog and
# netopeer2) the schema does not hold: rules name them by these module names.
_UNMODELLED_MODULES = {NOTIFICATION_NS: "notifications", NETMOD_NOTIFICATION_NS: "nc-notifications"}

_ALWAYS_ALLOWED = frozenset({f"{{{NC_NS}}}close-session"})
_READ_OPERATIONS = frozenset({f"{{{NC_NS}}}get", f"{{{NC_NS}}}get-config", f"{{{NMDA_NS}}}get-data"})
_DENIED_BY_DEFAULT = frozenset({f"{{{NC_NS}}}kill-session", f"{{{NC_NS}}}delete-config"})
_ALWAYS_DELIVERED = frozenset(
    {f"{{{NETMOD_NOTIFICATION_NS}}}replayComplete", f"{{{NETMOD_NOTIFICATION_NS}}}notificationComplete"}
)
_GET_SCHEMA = f"{{{NCM_NS}}}get-schema"
_DATA_ACCESSES = (Access.READ, Access.CREATE, Access.UPDATE, Access.DELETE)
_RULE_PATHS = ThreadXPath("n:nacm/n:rule-list/n:rule/n:path", {"n": NACM_NS})


class AccessSchema(Protocol):
    """What access control needs of the YANG schema (agent/netconf/yang.py provides it)."""

    def node_info(self, parent: NodeInfo | None, tag: str) -> NodeInfo | None: ...

    def children(self, info: NodeInfo) -> Sequence[NodeInfo]: ...

    def module_of_namespace(self, namespace: str) -> str | None: ...

    def prefix_of_namespace(self, namespace: str) -> str: ...

    def resolve_prefix(self, name: str) -> str | None: ...

    def rpc_access_default(self, rpc_tag: str) -> AccessDefault: ...

    def notification_access_default(self, tag: str) -> AccessDefault: ...


class AccessPolicy(Protocol):
    """What the protocol core asks before and after each operation (:class:`AccessControl`, :class:`OpenAccess`)."""

    def authorize(self, username: str, operation: etree._Element) -> None:
        """Raise an AgentError (access-denied) if the user may not invoke ``operation``."""
        ...

    def read_view(self, username: str, tree: etree._Element) -> etree._Element:
        """``tree`` without what the user may not read (never mutates ``tree``)."""
        ...

    def prune(self, username: str, tree: etree._Element) -> None:
        """Remove what the user may not read from a tree the caller owns."""
        ...

    def write_guard(self, username: str) -> WriteGuard | None:
        """The guard an edit by this user must pass (None: anything goes)."""
        ...

    def may_receive(self, username: str, notification: etree._Element) -> bool:
        """Whether the user may receive ``notification``."""
        ...


@dataclass
class Statistics:
    """RFC 8341 counters (``/nacm/denied-*``), since the agent started."""

    denied_operations: int = 0
    denied_data_writes: int = 0
    denied_notifications: int = 0


class OpenAccess:
    """No access control: every operation, read, write and notification is allowed.

    The default of a :class:`~agent.netconf.dispatch.NetconfAgent` until the
    application installs :class:`AccessControl`.
    """

    def authorize(self, username: str, operation: etree._Element) -> None:
        """Allow everything. Raises nothing."""

    def read_view(self, username: str, tree: etree._Element) -> etree._Element:
        """``tree`` itself. Raises nothing."""
        return tree

    def prune(self, username: str, tree: etree._Element) -> None:
        """Leave ``tree`` as it is. Raises nothing."""

    def write_guard(self, username: str) -> WriteGuard | None:
        """No guard: every change is allowed. Raises nothing."""
        return None

    def may_receive(self, username: str, notification: etree._Element) -> bool:
        """True. Raises nothing."""
        return True


class View:
    """One user's rules under one policy, with the decisions that do not depend on instances remembered."""

    def __init__(self, policy: Policy, username: str, schema: AccessSchema) -> None:
        self.username = username
        self.schema = schema
        self.policy = policy
        rules = policy.rules_for(username)
        self.data_rules: dict[Access, tuple[Rule, ...]] = {
            op: tuple(r for r in rules if r.kind in (RuleKind.ANY, RuleKind.DATA) and op in r.access)
            for op in _DATA_ACCESSES
        }
        self.exec_rules = tuple(r for r in rules if r.kind in (RuleKind.ANY, RuleKind.RPC) and Access.EXEC in r.access)
        self.notification_rules = tuple(
            r for r in rules if r.kind in (RuleKind.ANY, RuleKind.NOTIFICATION) and Access.READ in r.access
        )
        self.defaults = {
            Access.READ: policy.read_permit,
            Access.CREATE: policy.write_permit,
            Access.UPDATE: policy.write_permit,
            Access.DELETE: policy.write_permit,
        }
        self.unrestricted = {op: _permits_every_node(self.data_rules[op]) for op in _DATA_ACCESSES}
        self._static: dict[tuple[NodeInfo, Access], bool | None] = {}
        self._subtree: dict[tuple[NodeInfo, Access], bool] = {}
        self._exec: dict[str, bool] = {}

    # -- data nodes ----------------------------------------------------------
    def default(self, op: Access, info: NodeInfo) -> bool:
        """RFC 8341 3.4.5 steps 9-12: no rule matched."""
        if info.default_deny is AccessDefault.DENY_ALL:
            return False
        if op is not Access.READ and info.default_deny is AccessDefault.DENY_WRITE:
            return False
        return self.defaults[op]

    def static_decision(self, info: NodeInfo, op: Access, infos: Sequence[NodeInfo]) -> bool | None:
        """The decision for every instance of ``info`` (reached through ``infos``), None if it depends on one."""
        key = (info, op)
        try:
            return self._static[key]
        except KeyError:
            pass
        tags = [i.tag for i in infos]
        result: bool | None = None
        for rule in self.data_rules[op]:
            if not rule.covers_module(info.module):
                continue
            if rule.path is not None:
                relation = rule.path.relation(tags)
                if relation is PathMatch.NEVER:
                    continue
                if relation is PathMatch.DEPENDS:
                    break
            result = rule.permit
            break
        else:
            result = self.default(op, info)
        self._static[key] = result
        return result

    def decision(
        self, info: NodeInfo, op: Access, infos: Sequence[NodeInfo], chain: Sequence[etree._Element]
    ) -> bool:
        """May ``op`` be done on the instance whose ancestor-or-self elements are ``chain``?"""
        static = self.static_decision(info, op, infos)
        if static is not None:
            return static
        for rule in self.data_rules[op]:
            if not rule.covers_module(info.module):
                continue
            if rule.path is not None and not rule.path.matches(chain, self.username):
                continue
            return rule.permit
        return self.default(op, info)

    def subtree_permitted(self, info: NodeInfo, op: Access, infos: list[NodeInfo]) -> bool:
        """Whether ``op`` is permitted on every possible instance of ``info`` and of all its descendants."""
        key = (info, op)
        cached = self._subtree.get(key)
        if cached is not None:
            return cached
        permitted = self.static_decision(info, op, infos) is True
        if permitted:
            for child in self.schema.children(info):
                infos.append(child)
                try:
                    permitted = self.subtree_permitted(child, op, infos)
                finally:
                    infos.pop()
                if not permitted:
                    break
        self._subtree[key] = permitted
        return permitted

    # -- operations ----------------------------------------------------------
    def may_exec(self, tag: str) -> bool:
        """RFC 8341 3.4.4 steps 3-12 for operation ``tag`` (Clark)."""
        cached = self._exec.get(tag)
        if cached is not None:
            return cached
        decision = self._exec_decision(tag)
        self._exec[tag] = decision
        return decision

    def _exec_decision(self, tag: str) -> bool:
        if tag in _ALWAYS_ALLOWED:
            return True
        namespace, name = _split(tag)
        module = BASE_MODULE if namespace == NC_NS else self.module_of(namespace)
        for rule in self.exec_rules:
            if rule.covers_module(module) and rule.covers_name(name):
                return rule.permit
        if tag in _DENIED_BY_DEFAULT or self.schema.rpc_access_default(tag) is AccessDefault.DENY_ALL:
            return False
        if tag in _READ_OPERATIONS:
            return True
        return self.policy.exec_permit

    def module_of(self, namespace: str) -> str:
        """The module name rules use for ``namespace`` ("" if none is known)."""
        return self.schema.module_of_namespace(namespace) or _UNMODELLED_MODULES.get(namespace, "")

    def may_read_unmodelled(self, module: str) -> bool:
        """RFC 8341 3.4.5 for data of a module the schema does not hold (RFC 5277's /netconf).

        Only rules without a path (or with the root path) can name such
        data: a rule path must resolve in the schema (check_config).
        """
        for rule in self.data_rules[Access.READ]:
            if rule.covers_module(module) and (rule.path is None or not rule.path.steps):
                return rule.permit
        return self.policy.read_permit

    def may_receive(self, tag: str) -> bool:
        """RFC 8341 3.4.6 for a notification whose event element is ``tag``."""
        if tag in _ALWAYS_DELIVERED:
            return True
        namespace, name = _split(tag)
        module = self.module_of(namespace)
        for rule in self.notification_rules:
            if rule.covers_module(module) and rule.covers_name(name):
                return rule.permit
        if self.schema.notification_access_default(tag) is AccessDefault.DENY_ALL:
            return False
        return self.policy.read_permit


def _permits_every_node(rules: Sequence[Rule]) -> bool:
    """Whether the first rule that could apply permits every node (e.g. root-system's permit-all)."""
    if not rules:
        return False
    first = rules[0]
    universal = first.module is None and (first.path is None or not first.path.steps)
    return universal and first.permit


@dataclass
class _Compiled:
    root: etree._Element
    policy: Policy
    views: dict[str, View]
    source: bytes = b""  # the /nacm subtree it was compiled from


class AccessControl:
    """RFC 8341 NACM over the running configuration; see the module docstring."""

    def __init__(self, schema: AccessSchema, running: Callable[[], etree._Element]) -> None:
        self.schema = schema
        self._running = running
        self._compiled: _Compiled | None = None
        self._mutex = threading.Lock()
        self.statistics = Statistics()

    # -- policy ----------------------------------------------------------------
    def _view(self, username: str) -> View | None:
        """The user's view of the current policy; None when NACM is disabled."""
        root = self._running()
        compiled = self._compiled
        if compiled is None or compiled.root is not root:
            # Most commits leave /nacm alone: keep the policy (and the users' views) when it is the same.
            nacm = root.find(f"{{{NACM_NS}}}nacm")
            source = etree.tostring(nacm) if nacm is not None else b""
            if compiled is not None and compiled.source == source:
                compiled = _Compiled(root, compiled.policy, compiled.views, source)
            else:
                compiled = _Compiled(root, compile_policy(root, self.schema.resolve_prefix), {}, source)
            self._compiled = compiled
        if not compiled.policy.enabled:
            return None
        view = compiled.views.get(username)
        if view is None:
            view = compiled.views[username] = View(compiled.policy, username, self.schema)
        return view

    def _count(self, counter: str) -> None:
        with self._mutex:
            setattr(self.statistics, counter, getattr(self.statistics, counter) + 1)

    # -- 3.4.4 protocol operations -------------------------------------------------
    def may_exec(self, username: str, operation_tag: str) -> bool:
        """Whether the user may invoke the operation ``operation_tag`` (Clark). Raises nothing."""
        view = self._view(username)
        return view is None or view.may_exec(operation_tag)

    def authorize(self, username: str, operation: etree._Element) -> None:
        """Check the user may invoke ``operation`` (the element inside ``<rpc>``); count a refusal.

        Raises NetconfError access-denied (error-type protocol, error-path
        naming the operation); for ``get-schema`` of a schema the user may
        not read, SchemaError invalid-value exactly as for an unknown schema.
        """
        view = self._view(username)
        if view is None:
            return
        tag = str(operation.tag)
        if not view.may_exec(tag):
            self._count("denied_operations")
            namespace, name = _split(tag)
            prefix = "nc" if namespace == NC_NS else self.schema.prefix_of_namespace(namespace)
            step = f"{prefix}:{name}" if prefix else name
            log.warning("NACM: user %s may not invoke %s", username, step)
            raise NetconfError(
                f"access denied: user {username!r} may not invoke {name!r}",
                error_tag="access-denied",
                error_type="protocol",
                path=f"/nc:rpc/{step}",
            )
        if tag == _GET_SCHEMA:
            self._check_schema_readable(view, operation)

    def _check_schema_readable(self, view: View, operation: etree._Element) -> None:
        identifier = (operation.findtext(f"{{{NCM_NS}}}identifier") or "").strip()
        version = operation.findtext(f"{{{NCM_NS}}}version")
        state = etree.Element(f"{{{NCM_NS}}}netconf-state", nsmap=default_ns(NCM_NS))
        entry = etree.SubElement(etree.SubElement(state, f"{{{NCM_NS}}}schemas"), f"{{{NCM_NS}}}schema")
        etree.SubElement(entry, f"{{{NCM_NS}}}identifier").text = identifier
        etree.SubElement(entry, f"{{{NCM_NS}}}version").text = (version or "").strip()
        etree.SubElement(entry, f"{{{NCM_NS}}}format", nsmap={"ncm": NCM_NS}).text = "ncm:yang"
        holder = etree.Element("holder")
        holder.append(state)
        if self._denied_nodes(view, holder):
            raise SchemaError(
                f"no schema named {identifier!r} is available on this server",
                error_tag="invalid-value",
                info={"bad-element": "identifier"},
            )

    # -- 3.4.5 reading ---------------------------------------------------------------
    def read_view(self, username: str, tree: etree._Element) -> etree._Element:
        """``tree`` (a ``<data>``-like root) without what the user may not read.

        Never mutates ``tree``: returns it unchanged when nothing is denied,
        else a pruned copy. Raises nothing.
        """
        view = self._view(username)
        if view is None or view.unrestricted[Access.READ]:
            return tree
        denied = self._denied_nodes(view, tree)
        if not denied:
            return tree
        positions = [_position(element, tree) for element in denied]
        pruned = copy.deepcopy(tree)
        _remove([_at(pruned, position) for position in positions])
        return pruned

    def prune(self, username: str, tree: etree._Element) -> None:
        """Remove from ``tree`` (which the caller owns) what the user may not read. Raises nothing."""
        view = self._view(username)
        if view is None or view.unrestricted[Access.READ]:
            return
        _remove(self._denied_nodes(view, tree))

    def _denied_nodes(self, view: View, tree: etree._Element) -> list[etree._Element]:
        denied: list[etree._Element] = []
        for top in tree:
            if not isinstance(top.tag, str):
                continue
            info = self.schema.node_info(None, top.tag)
            if info is not None:
                self._collect_denied(view, top, info, [info], [top], denied)
            else:
                module = _UNMODELLED_MODULES.get(_split(str(top.tag))[0])
                if module is not None and not view.may_read_unmodelled(module):
                    denied.append(top)
        return denied

    def _collect_denied(
        self,
        view: View,
        element: etree._Element,
        info: NodeInfo,
        infos: list[NodeInfo],
        chain: list[etree._Element],
        denied: list[etree._Element],
    ) -> None:
        if view.subtree_permitted(info, Access.READ, infos):
            return
        if not view.decision(info, Access.READ, infos, chain):
            denied.append(element)
            return
        if info.ref is None:
            return
        start = len(denied)
        for child in element:
            if not isinstance(child.tag, str):
                continue
            child_info = self.schema.node_info(info, child.tag)
            if child_info is None:
                continue
            infos.append(child_info)
            chain.append(child)
            self._collect_denied(view, child, child_info, infos, chain, denied)
            infos.pop()
            chain.pop()
        if info.keys and any(d.tag in info.keys and d.getparent() is element for d in denied[start:]):
            # An entry without its key would not say which entry it is: leave it out whole.
            del denied[start:]
            denied.append(element)

    # -- 3.4.5 writing ---------------------------------------------------------------
    def write_guard(self, username: str) -> WriteGuard | None:
        """The guard to pass into an edit for this user; None when the user may change everything.

        Raises nothing (the guard raises DatastoreError access-denied).
        """
        view = self._view(username)
        if view is None or all(view.unrestricted[op] for op in (Access.CREATE, Access.UPDATE, Access.DELETE)):
            return None
        return UserWriteGuard(view, lambda: self._count("denied_data_writes"))

    # -- 3.4.6 notifications ------------------------------------------------------------
    def may_receive(self, username: str, notification: etree._Element) -> bool:
        """Whether the user may receive ``notification`` (a ``<notification>`` or its event element).

        Counts a refusal in denied-notifications. Raises nothing.
        """
        view = self._view(username)
        if view is None:
            return True
        event = notification
        if notification.tag == f"{{{NOTIFICATION_NS}}}notification":
            events = [c for c in notification if isinstance(c.tag, str) and c.tag != f"{{{NOTIFICATION_NS}}}eventTime"]
            if not events:
                return True
            event = events[0]
        permitted = view.may_receive(str(event.tag))
        if not permitted:
            self._count("denied_notifications")
        return permitted

    # -- /nacm state and configuration checks -------------------------------------------
    def state(self) -> list[etree._Element]:
        """The config-false counters of ``/nacm`` (a state provider for <get>). Raises nothing."""
        nacm = etree.Element(f"{{{NACM_NS}}}nacm", nsmap=default_ns(NACM_NS))
        with self._mutex:
            counters = (
                ("denied-operations", self.statistics.denied_operations),
                ("denied-data-writes", self.statistics.denied_data_writes),
                ("denied-notifications", self.statistics.denied_notifications),
            )
        for name, value in counters:
            etree.SubElement(nacm, f"{{{NACM_NS}}}{name}").text = str(value)
        return [nacm]

    def check_config(self, root: etree._Element) -> None:
        """Refuse a configuration whose NACM rule paths cannot be read.

        A path that does not parse would never match: a deny rule that
        silently protects nothing. Raises SchemaError invalid-value with the
        path of the offending leaf.
        """
        # One compiled XPath (~1.5 µs): walking the rule-lists and rules with find() took
        # ~19 µs on the first-start /nacm, which has no rule path, on every validation.
        paths = _RULE_PATHS(root)
        assert isinstance(paths, list)
        for path_el in paths:
            assert isinstance(path_el, etree._Element)
            scoped = {p: ns for p, ns in path_el.nsmap.items() if p}
            try:
                parse_node_path(path_el.text or "", scoped, self.schema.resolve_prefix)
            except ValueError as error:
                rule = path_el.getparent()
                assert rule is not None
                rule_list = rule.getparent()
                assert rule_list is not None
                list_name = xpath_literal(rule_list.findtext(f"{{{NACM_NS}}}name") or "")
                rule_name = xpath_literal(rule.findtext(f"{{{NACM_NS}}}name") or "")
                raise SchemaError(
                    f"invalid NACM rule path: {error}",
                    error_tag="invalid-value",
                    path=f"/nacm:nacm/nacm:rule-list[nacm:name={list_name}]/nacm:rule[nacm:name={rule_name}]/nacm:path",
                    info={"bad-element": "path"},
                ) from None


def _position(element: etree._Element, root: etree._Element) -> list[int]:
    """Child indexes from ``root`` down to its descendant ``element`` (to find its twin in a copy)."""
    indexes: list[int] = []
    while element is not root:
        parent = element.getparent()
        assert parent is not None
        indexes.append(parent.index(element))
        element = parent
    indexes.reverse()
    return indexes


def _at(root: etree._Element, position: Sequence[int]) -> etree._Element:
    node = root
    for index in position:
        node = node[index]
    return node


def _remove(elements: Sequence[etree._Element]) -> None:
    for element in elements:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)


def _split(tag: str) -> tuple[str, str]:
    qname = etree.QName(tag)
    return qname.namespace or "", qname.localname

