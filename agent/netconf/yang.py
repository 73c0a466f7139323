"""What the NETCONF layer and the datastores need of the YANG schema, in one adapter."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from lxml import etree

from agent.datastore.edit import ChangeSet
from agent.errors import SchemaError
from agent.schema.incremental import CookedCache, validate_changes
from agent.schema.model import AccessDefault, NodeInfo, SchemaModel
from agent.schema.validate import cooked_config

_VALUE_ERRORS = frozenset({"invalid-value", "unknown-element"})
YANG_LIBRARY_CAPABILITY = "urn:ietf:params:netconf:capability:yang-library:1.1"


class YangSupport:
    """Schema lookups for edit-config, filters, error paths, hello and validation."""

    def __init__(self, model: SchemaModel) -> None:
        self.model = model
        self._prefixes = {m.prefix: m.namespace for m in model.modules}
        self._keys_of_path = lru_cache(maxsize=4096)(self._keys_for_tags)
        self._cooked = CookedCache()  # the last valid trees, the bases of incremental validation

    # -- edit engine (agent.datastore.edit.SchemaLookup / PathNamer) --------------
    def node_info(self, parent: NodeInfo | None, tag: str) -> NodeInfo | None:
        return self.model.node_info(parent.ref if parent is not None else None, tag)

    def prefix_of_namespace(self, namespace: str) -> str:
        return self.model.prefix_of_namespace(namespace) or ""

    # -- NETCONF layer (agent.netconf.dispatch.SchemaFacade) ----------------------
    def prefixes(self) -> dict[str, str]:
        return dict(self._prefixes)

    def capabilities(self) -> list[str]:
        caps = [m.capability for m in self.model.modules if m.conformance == "implement"]
        caps.append(f"{YANG_LIBRARY_CAPABILITY}?revision=2019-01-04&content-id={self.model.module_set_id}")
        return caps

    def keys_of(self, element: etree._Element) -> Sequence[str]:
        tags: list[str] = []
        node: etree._Element | None = element
        while node is not None and node.getparent() is not None:
            tags.append(str(node.tag))
            node = node.getparent()
        return self._keys_of_path(tuple(reversed(tags)))

    def _keys_for_tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        info: NodeInfo | None = None
        for tag in tags:
            info = self.node_info(info, tag)
            if info is None:
                return ()
        return tuple(info.keys) if info is not None else ()

    # -- access control (agent.netconf.nacm.AccessSchema) -------------------------
    def children(self, info: NodeInfo) -> Sequence[NodeInfo]:
        """The data children of a container or list (none for other nodes)."""
        return self.model.children(info.ref) if info.ref is not None else ()

    def module_of_namespace(self, namespace: str) -> str | None:
        return self.model.module_of_namespace(namespace)

    def resolve_prefix(self, name: str) -> str | None:
        """The namespace of a module prefix, or of a module name (JSON-style paths); None if neither."""
        return self._prefixes.get(name) or self.model.namespace_of(name)

    def rpc_access_default(self, rpc_tag: str) -> AccessDefault:
        return self.model.rpc_access_default(rpc_tag)

    def notification_access_default(self, tag: str) -> AccessDefault:
        return self.model.notification_access_default(tag)

    # -- datastores (agent.datastore.store.Validator) ----------------------------
    def validate(
        self, root: etree._Element, *, full: bool, base: etree._Element | None = None, changes: ChangeSet = None,
    ) -> bool:
        """Raise SchemaError when ``root`` is not valid configuration.

        ``full=False`` (an edit of the candidate) reports only errors of the
        edited values themselves; constraints between nodes (mandatory,
        leafref, unique, must) may be unmet until the commit, which checks all.
        Returns True when every constraint holds.

        When ``base`` is a tree validated before and ``changes`` says where
        ``root`` differs from it, only what changed and what depends on it is
        checked (agent/schema/incremental.py); the outcome is the same.
        """
        if self._cooked.get(root) is not None:
            return True
        base_value = self._cooked.get(base) if base is not None and changes is not None else None
        try:
            if base_value is not None and changes is not None:
                value = validate_changes(self.model, base_value, root, changes)
            else:
                value = cooked_config(root, self.model)
        except SchemaError as error:
            if full or error.error_tag in _VALUE_ERRORS:
                raise
            return False
        self._cooked.put(root, value)
        return True

    def release_old_bases(self) -> None:
        """Free the validated trees too old to be the base of the next validation (call after a
        commit has been answered, off the reply's path)."""
        self._cooked.trim()
