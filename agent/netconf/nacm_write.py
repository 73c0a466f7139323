"""RFC 8341 3.4.5 for writes: what an edit, a copy or a commit changes, checked node by node.

The edit engine (agent/datastore/edit.py) asks :class:`UserWriteGuard` about
each change it makes; ``copy-config`` and ``commit`` ask about a whole new
tree. Either way the guard compares the old and new subtrees and checks
``create`` for nodes that appear, ``delete`` for nodes that disappear and
``update`` for leaves whose value changes (and entries of a user-ordered
list that move), using the decisions of :class:`agent.netconf.nacm.View`.
Nodes that do not change need no access at all (RFC 8341 3.2.5, 3.2.8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lxml import etree

from agent.errors import DatastoreError
from agent.netconf.nacm_rules import Access
from agent.schema.convert import xpath_literal
from agent.schema.model import NodeInfo, NodeKind

if TYPE_CHECKING:
    from agent.netconf.nacm import AccessSchema, View

__all__ = ["UserWriteGuard", "instance_path"]

log = logging.getLogger(__name__)


class UserWriteGuard:
    """The edit engine's WriteGuard (agent/datastore/edit.py) for one user and one request.

    ``denied`` is called once, at the first refusal (the RFC counts denied
    requests, not nodes).
    """

    def __init__(self, view: View, denied: Callable[[], None]) -> None:
        self.view = view
        self.schema = view.schema
        self._denied = denied
        self._counted = False

    def check_change(
        self,
        parent: etree._Element,
        old: etree._Element | None,
        new: etree._Element | None,
        info: NodeInfo,
        path: str,
    ) -> None:
        """See WriteGuard.check_change. Raises DatastoreError access-denied."""
        chain, infos = self._ancestors(parent)
        if infos is None:
            return
        self._diff(old, new, info, infos, chain)

    def check_replace(self, old_root: etree._Element, new_root: etree._Element) -> None:
        """See WriteGuard.check_replace. Raises DatastoreError access-denied."""
        self._diff_children(old_root, new_root, None, [], [])

    # -- walking -----------------------------------------------------------------
    def _ancestors(self, parent: etree._Element) -> tuple[list[etree._Element], list[NodeInfo] | None]:
        chain: list[etree._Element] = []
        node: etree._Element | None = parent
        while node is not None and node.getparent() is not None:
            chain.append(node)
            node = node.getparent()
        chain.reverse()
        infos: list[NodeInfo] = []
        info: NodeInfo | None = None
        for element in chain:
            info = self.schema.node_info(info, str(element.tag))
            if info is None:
                return chain, None
            infos.append(info)
        return chain, infos

    def _diff(
        self,
        old: etree._Element | None,
        new: etree._Element | None,
        info: NodeInfo,
        infos: list[NodeInfo],
        chain: list[etree._Element],
    ) -> None:
        node = new if new is not None else old
        assert node is not None
        infos.append(info)
        chain.append(node)
        try:
            if old is None:
                self._check_subtree(Access.CREATE, node, info, infos, chain)
            elif new is None:
                self._check_subtree(Access.DELETE, node, info, infos, chain)
            elif info.ref is None:
                if not _same_value(old, new):
                    self._check(Access.UPDATE, info, infos, chain)
            elif not self._writes_permitted(info, infos):
                self._diff_children(old, new, info, infos, chain)
        finally:
            infos.pop()
            chain.pop()

    def _writes_permitted(self, info: NodeInfo, infos: list[NodeInfo]) -> bool:
        view = self.view
        return all(view.subtree_permitted(info, op, infos) for op in (Access.CREATE, Access.UPDATE, Access.DELETE))

    def _diff_children(
        self,
        old: etree._Element,
        new: etree._Element,
        info: NodeInfo | None,
        infos: list[NodeInfo],
        chain: list[etree._Element],
    ) -> None:
        before: dict[tuple[str, ...], tuple[etree._Element, NodeInfo]] = {}
        for child in old:
            child_info = self._child_info(info, child)
            if child_info is not None:
                before[_identity(child, child_info)] = (child, child_info)
        moved: list[tuple[etree._Element, NodeInfo]] = []
        old_order = list(before)
        common_new: list[tuple[str, ...]] = []
        for child in new:
            child_info = self._child_info(info, child)
            if child_info is None:
                continue
            identity = _identity(child, child_info)
            pair = before.pop(identity, None)
            if pair is not None and child_info.user_ordered:
                common_new.append(identity)
                moved.append((child, child_info))
            self._diff(pair[0] if pair is not None else None, child, child_info, infos, chain)
        for old_child, child_info in before.values():
            self._diff(old_child, None, child_info, infos, chain)
        kept = set(common_new)
        if moved and [k for k in old_order if k in kept] != common_new:
            # A user-ordered list or leaf-list was reordered: each kept entry is updated.
            for child, child_info in moved:
                infos.append(child_info)
                chain.append(child)
                try:
                    self._check(Access.UPDATE, child_info, infos, chain)
                finally:
                    infos.pop()
                    chain.pop()

    def _child_info(self, info: NodeInfo | None, child: etree._Element) -> NodeInfo | None:
        if not isinstance(child.tag, str):
            return None
        return self.schema.node_info(info, child.tag)

    def _check_subtree(
        self,
        op: Access,
        element: etree._Element,
        info: NodeInfo,
        infos: list[NodeInfo],
        chain: list[etree._Element],
    ) -> None:
        if self.view.subtree_permitted(info, op, infos):
            return
        self._check(op, info, infos, chain)
        for child in element:
            child_info = self._child_info(info, child)
            if child_info is None:
                continue
            infos.append(child_info)
            chain.append(child)
            try:
                self._check_subtree(op, child, child_info, infos, chain)
            finally:
                infos.pop()
                chain.pop()

    def _check(self, op: Access, info: NodeInfo, infos: list[NodeInfo], chain: list[etree._Element]) -> None:
        if self.view.decision(info, op, infos, chain):
            return
        if not self._counted:
            self._counted = True
            self._denied()
        path = instance_path(self.schema, infos, chain)
        log.warning("NACM: user %s may not %s %s", self.view.username, op.label, path)
        raise DatastoreError(
            f"access denied: user {self.view.username!r} may not {op.label} {path}",
            error_tag="access-denied",
            error_type="application",
            path=path,
        )


def _identity(child: etree._Element, info: NodeInfo) -> tuple[str, ...]:
    if info.kind is NodeKind.LIST:
        return (str(child.tag), *((child.findtext(key) or "").strip() for key in info.keys))
    if info.kind is NodeKind.LEAF_LIST:
        return (str(child.tag), (child.text or "").strip())
    return (str(child.tag),)


def _same_value(old: etree._Element, new: etree._Element) -> bool:
    if len(old) == 0 and len(new) == 0:
        return (old.text or "").strip() == (new.text or "").strip()
    return etree.tostring(old, method="c14n") == etree.tostring(new, method="c14n")


def instance_path(schema: AccessSchema, infos: Sequence[NodeInfo], chain: Sequence[etree._Element]) -> str:
    steps: list[str] = []
    for info, element in zip(infos, chain, strict=False):
        step = info.qualified_name
        if info.kind is NodeKind.LIST:
            for key in info.keys:
                key_info = schema.node_info(info, key)
                key_name = key_info.qualified_name if key_info is not None else etree.QName(key).localname
                step += f"[{key_name}={xpath_literal((element.findtext(key) or '').strip())}]"
        elif info.kind is NodeKind.LEAF_LIST:
            step += f"[.={xpath_literal((element.text or '').strip())}]"
        steps.append(step)
    return "/" + "/".join(steps)
