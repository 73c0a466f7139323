"""The YANG data model of the agent: which modules it serves, and their schema.

:class:`SchemaModel` assembles a yangson ``DataModel`` from

* every module in the agent's own YANG directory (implemented, all features),
* the IETF modules the agent itself serves (RFC 6022 ``ietf-netconf-monitoring``,
  RFC 8525 ``ietf-yang-library`` and ``ietf-datastores``), implemented,
* any extra modules the caller names (implemented),
* and, transitively, every module those import (import-only unless implemented).

The YANG-library data that yangson needs (RFC 7895 ``modules-state`` JSON) is
built here from the module files themselves; IETF modules are read from the
copy the ``pyang`` package installs (``<prefix>/share/yang/modules``), never
from a copy in this repository.

It also answers the per-element questions the datastore edit engine asks
(:meth:`SchemaModel.node_info`) from a cache, so that an edit costs one dict
lookup per element.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path

from yangson import DataModel
from yangson.enumerations import DefaultDeny
from yangson.exceptions import YangsonException
from yangson.schemanode import (
    AnyContentNode,
    CaseNode,
    ChoiceNode,
    ContainerNode,
    DataNode,
    InternalNode,
    LeafListNode,
    LeafNode,
    ListNode,
    NotificationNode,
    RpcActionNode,
    SchemaNode,
    SchemaTreeNode,
)
from yangson.statement import ModuleParser, Statement

from agent.errors import SchemaError

__all__ = [
    "IETF_IMPLEMENTED",
    "AccessDefault",
    "Conformance",
    "ModuleInfo",
    "NodeInfo",
    "NodeKind",
    "SchemaModel",
    "SchemaNodeRef",
    "SubmoduleInfo",
    "ietf_yang_dirs",
    "own_yang_dir",
]

IETF_IMPLEMENTED: Mapping[str, tuple[str, ...]] = {
    "ietf-netconf-monitoring": (),  # RFC 6022: /netconf-state, <get-schema>
    "ietf-yang-library": (),  # RFC 8525 /yang-library and RFC 7895 /modules-state (latest revision shipped)
    # RFC 8342 identities referenced by /yang-library/datastore/name; yangson
    # registers identities of implemented modules only.
    "ietf-datastores": (),
    # RFC 6241 itself, with the features the agent has (no startup, no url).
    "ietf-netconf": ("writable-running", "candidate", "confirmed-commit", "rollback-on-error", "validate", "xpath"),
    "ietf-netconf-with-defaults": (),  # RFC 6243
    "ietf-netconf-nmda": ("origin", "with-defaults"),  # RFC 8526 <get-data>, <edit-data>
    "ietf-origin": (),  # RFC 8342 origin metadata (with-origin)
    "ietf-netconf-acm": (),  # RFC 8341: /nacm, and the default-deny-* extensions our modules use
    "ietf-netconf-notifications": (),  # RFC 6470 base notifications (config change, sessions, confirmed commit)
}
"""IETF modules the agent serves itself, always implemented."""

RFC5277_MODULES: tuple[str, ...] = ("nc-notifications",)
"""RFC 5277's /netconf/streams module. pyang ships none; Debian's libyuma-base
(installed with netconfd/yangcli) does. When found in :data:`RFC5277_DIRS` it
is implemented, so /netconf/streams is modelled data like the rest (modules
are never copied into this project). Its import ``notifications`` stays
import-only: yuma's conversion of it declares the <notification> envelope as
a config-false container with a mandatory eventTime, which would make every
operational datastore invalid."""

RFC5277_DIRS: tuple[Path, ...] = (
    Path("/usr/share/yuma/modules/ietf-derived"),
    Path("/usr/share/yuma/modules/netconfcentral"),  # yuma-ncx, which their notifications module imports
)


class Conformance(StrEnum):
    """RFC 7895/8525 conformance of a module in the data model."""

    IMPLEMENT = "implement"
    IMPORT = "import"


@dataclass(frozen=True)
class SubmoduleInfo:
    """A submodule included by a module of the data model."""

    name: str
    revision: str | None
    path: Path


@dataclass(frozen=True)
class ModuleInfo:
    """One module of the data model, as the hello, RFC 6022 and RFC 8525 list it."""

    name: str
    revision: str | None
    namespace: str
    prefix: str
    path: Path
    conformance: Conformance
    features: tuple[str, ...] = ()
    submodules: tuple[SubmoduleInfo, ...] = ()

    @property
    def capability(self) -> str:
        """The NETCONF ``<hello>`` capability URI announcing this module (RFC 6020 5.6.4)."""
        uri = f"{self.namespace}?module={self.name}"
        if self.revision:
            uri += f"&revision={self.revision}"
        if self.features:
            uri += "&features=" + ",".join(self.features)
        return uri


class AccessDefault(Enum):
    """RFC 8341 default access of a node, RPC or notification (``nacm:default-deny-*``).

    Ordered: a stricter marking of an ancestor applies to all its descendants.
    """

    NONE = 0
    DENY_WRITE = 1  # nacm:default-deny-write
    DENY_ALL = 2  # nacm:default-deny-all

    @classmethod
    def of(cls, node: SchemaNode) -> AccessDefault:
        """The marking yangson read from ``node`` (NONE for nodes that cannot carry one). Raises nothing."""
        return _ACCESS_DEFAULTS.get(getattr(node, "default_deny", DefaultDeny.none), cls.NONE)


_ACCESS_DEFAULTS = {
    DefaultDeny.none: AccessDefault.NONE,
    DefaultDeny.write: AccessDefault.DENY_WRITE,
    DefaultDeny.all: AccessDefault.DENY_ALL,
}


class NodeKind(Enum):
    """Kind of a data node, as far as the edit engine cares."""

    CONTAINER = "container"
    LIST = "list"
    LEAF = "leaf"
    LEAF_LIST = "leaf-list"
    ANYDATA = "anydata"


class SchemaNodeRef:
    """Opaque handle on a schema node whose children can be looked up.

    Obtained from :attr:`NodeInfo.ref`, :meth:`SchemaModel.rpc_input_ref` or
    :attr:`SchemaModel.root`; only :class:`SchemaModel` looks inside it.
    """

    __slots__ = ("_children", "_node")

    def __init__(self, node: InternalNode) -> None:
        self._node = node
        self._children: dict[str, NodeInfo | None] | None = None

    def __repr__(self) -> str:
        return f"SchemaNodeRef({self._node.name!r})"


@dataclass(frozen=True, slots=True, eq=False)
class NodeInfo:
    """What the edit engine needs to know about one data node.

    ``keys`` and ``other_case_tags`` hold Clark tags (``{namespace}name``).
    ``ref`` is the handle to pass back to :meth:`SchemaModel.node_info` to
    look up this node's children (``None`` for leaves, leaf-lists, anydata).
    ``qualified_name`` is ``prefix:name`` as used in error paths;
    ``json_name`` is the RFC 7951 member name (``module:name`` at the top
    level or where the module changes, else ``name``). ``default_deny`` is
    the strictest RFC 8341 marking of the node or of any ancestor (a marking
    covers the node and all its descendants). ``schema_node`` is yangson's
    node, for use inside ``agent.schema`` only.
    """

    kind: NodeKind
    tag: str
    name: str
    qualified_name: str
    module: str
    prefix: str
    keys: tuple[str, ...]
    config: bool
    user_ordered: bool
    presence: bool
    mandatory: bool
    default: str | None
    other_case_tags: frozenset[str]
    json_name: str
    default_deny: AccessDefault
    ref: SchemaNodeRef | None = field(repr=False)
    schema_node: DataNode = field(repr=False)


# --------------------------------------------------------------------------
# Locating YANG files


def own_yang_dir() -> Path:
    """Return the directory holding the agent's own YANG modules.

    ``<checkout>/yang`` when running from a source tree, else
    ``<sys.prefix>/share/ca-agent/yang`` (installed as data files).
    """
    import agent

    checkout = Path(agent.__file__).resolve().parent.parent / "yang"
    if checkout.is_dir() and any(checkout.glob("*.yang")):
        return checkout
    return Path(sys.prefix) / "share" / "ca-agent" / "yang"


def _pyang_module_roots() -> Iterator[Path]:
    """Yield candidate ``share/yang/modules`` directories of the pyang install."""
    try:
        for dist_file in importlib.metadata.files("pyang") or ():
            parts = dist_file.parts
            if "share" in parts and parts[-1] == "ietf-yang-types.yang":
                yield Path(str(dist_file.locate())).resolve().parent.parent
    except importlib.metadata.PackageNotFoundError:
        pass
    prefixes = [sys.prefix, sys.base_prefix, sysconfig.get_path("data"), site.USER_BASE]
    spec = importlib.util.find_spec("pyang")
    if spec is not None and spec.origin:
        # <prefix>/lib/pythonX.Y/site-packages/pyang/__init__.py -> <prefix>
        prefixes.extend(str(p) for p in Path(spec.origin).resolve().parents[:5])
    for prefix in prefixes:
        if prefix:
            yield Path(prefix) / "share" / "yang" / "modules"


def ietf_yang_dirs() -> list[Path]:
    """Return the directories with the IETF and IANA modules shipped by pyang.

    Raises:
        SchemaError: if pyang's module directory cannot be found.
    """
    seen: list[Path] = []
    for root in _pyang_module_roots():
        if (root / "ietf").is_dir() and root not in seen:
            seen.append(root)
    if not seen:
        raise SchemaError(
            "cannot find the IETF YANG modules installed by pyang (<sys.prefix>/share/yang/modules/ietf)",
            error_tag="operation-failed",
        )
    dirs: list[Path] = []
    for root in seen:
        for sub in ("ietf", "iana"):
            if (root / sub).is_dir():
                dirs.append(root / sub)
    return dirs


@dataclass(frozen=True)
class _Header:
    """The statements of a (sub)module header that the data model needs."""

    keyword: str
    name: str
    revision: str | None
    namespace: str
    prefix: str
    path: Path
    imports: tuple[tuple[str, str | None], ...]
    includes: tuple[tuple[str, str | None], ...]
    features: tuple[str, ...]


def _parse_header(path: Path) -> _Header:
    """Parse the header statements of a YANG file.

    Raises:
        SchemaError: if the file cannot be read or is not a YANG (sub)module.
    """
    try:
        # ModuleParser.parse() insists on an expected revision; the header is
        # what tells us the revision, so read the top statement directly.
        parser = ModuleParser(path.read_text(encoding="utf-8"))
        parser.opt_separator()
        stmt = parser.statement()
    except (OSError, UnicodeDecodeError, YangsonException) as exc:
        raise SchemaError(f"cannot parse YANG file {path}: {exc}", error_tag="operation-failed") from exc
    if stmt.keyword not in ("module", "submodule"):
        raise SchemaError(f"{path} is not a YANG module", error_tag="operation-failed")

    def arg(st: Statement | None) -> str | None:
        return None if st is None else st.argument

    def deps(keyword: str) -> tuple[tuple[str, str | None], ...]:
        return tuple((str(s.argument), arg(s.find1("revision-date"))) for s in stmt.find_all(keyword))

    if stmt.keyword == "module":
        prefix = arg(stmt.find1("prefix"))
    else:
        belongs = stmt.find1("belongs-to")
        prefix = arg(belongs.find1("prefix")) if belongs is not None else None
    return _Header(
        keyword=stmt.keyword,
        name=str(stmt.argument),
        revision=arg(stmt.find1("revision")),
        namespace=arg(stmt.find1("namespace")) or "",
        prefix=prefix or "",
        path=path,
        imports=deps("import"),
        includes=deps("include"),
        features=tuple(str(s.argument) for s in stmt.find_all("feature")),
    )


class _ModuleIndex:
    """The ``*.yang`` files of a search path, parsed on demand."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = list(dirs)
        self._files: dict[str, list[Path]] = {}
        for d in self.dirs:
            for p in sorted(d.glob("*.yang")):
                self._files.setdefault(p.stem.partition("@")[0], []).append(p)
        self._parsed: dict[Path, _Header] = {}

    def header(self, path: Path) -> _Header:
        """Return the parsed header of ``path`` (cached)."""
        hdr = self._parsed.get(path)
        if hdr is None:
            hdr = self._parsed[path] = _parse_header(path)
        return hdr

    def find(self, name: str, revision: str | None) -> _Header:
        """Return the module ``name`` at ``revision`` (``None``: the latest).

        Earlier directories win; within a directory the latest revision wins.

        Raises:
            SchemaError: if no file of the search path holds that module.
        """
        for d in self.dirs:
            found = [self.header(p) for p in self._files.get(name, ()) if p.parent == d and self.header(p).name == name]
            if revision is not None:
                found = [h for h in found if h.revision == revision]
            if found:
                return max(found, key=lambda h: h.revision or "")
        rev = f"@{revision}" if revision else ""
        raise SchemaError(
            f"YANG module {name}{rev} not found in {', '.join(map(str, self.dirs))}",
            error_tag="operation-failed",
        )


# --------------------------------------------------------------------------
# The model


_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[tuple[str, ...], tuple[str, ...]], SchemaModel] = {}


class SchemaModel:
    """The agent's YANG data model: module list, schema sources, schema tree."""

    def __init__(self, modules: Sequence[ModuleInfo], data_model: DataModel) -> None:
        """Wrap an assembled data model; use :meth:`load` instead."""
        self.modules: list[ModuleInfo] = list(modules)
        self.data_model = data_model
        self.module_set_id: str = data_model.module_set_id()
        self._by_name = {m.name: m for m in self.modules if m.conformance is Conformance.IMPLEMENT}
        for m in self.modules:
            self._by_name.setdefault(m.name, m)
        self._by_ns = {m.namespace: m for m in self._by_name.values()}
        self.root = SchemaNodeRef(data_model.schema)
        self._rpc_refs: dict[str, SchemaNodeRef | None] = {}

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, extra_modules: Sequence[str] = (), extra_dirs: Sequence[str | os.PathLike[str]] = ()) -> SchemaModel:
        """Return the data model (built once per argument set, then cached).

        ``extra_modules`` are implemented in addition to the agent's own and
        the served IETF modules; each is a module name (looked up in the
        search path) or the path of a ``.yang`` file (whose directory joins
        the search path). ``extra_dirs`` are searched after the agent's own
        YANG directory and before pyang's IETF modules.

        Raises:
            SchemaError: if a module or one of its imports cannot be found or
                yangson rejects the resulting model.
        """
        key = (tuple(extra_modules), tuple(str(d) for d in extra_dirs))
        with _LOAD_LOCK:
            model = _LOADED.get(key)
            if model is None:
                model = _LOADED[key] = cls._build(extra_modules, extra_dirs)
            return model

    @classmethod
    def _build(cls, extra_modules: Sequence[str], extra_dirs: Sequence[str | os.PathLike[str]]) -> SchemaModel:
        own = own_yang_dir()
        dirs = [own] if own.is_dir() else []
        named: list[str] = []
        for extra in extra_modules:
            if extra.endswith(".yang") or os.sep in extra:
                path = Path(extra).resolve()
                if not path.is_file():
                    raise SchemaError(f"YANG file {extra} not found", error_tag="operation-failed")
                named.append(path.stem.partition("@")[0])
                if path.parent not in dirs:
                    dirs.append(path.parent)
            else:
                named.append(extra)
        dirs.extend(Path(d).resolve() for d in extra_dirs)
        dirs.extend(ietf_yang_dirs())
        dirs.extend(d for d in RFC5277_DIRS if d.is_dir() and d not in dirs)  # last: pyang's copies win
        index = _ModuleIndex(dirs)

        implemented: dict[str, tuple[_Header, tuple[str, ...]]] = {}
        if own.is_dir():
            latest: dict[str, _Header] = {}
            for p in sorted(own.glob("*.yang")):
                hdr = index.header(p)
                if hdr.keyword == "module" and (
                    hdr.name not in latest or (hdr.revision or "") > (latest[hdr.name].revision or "")
                ):
                    latest[hdr.name] = hdr
            for hdr in latest.values():
                implemented[hdr.name] = (hdr, hdr.features)
        for name in named:
            if name not in implemented:
                hdr = index.find(name, None)
                implemented[name] = (hdr, hdr.features)
        for name, ietf_features in IETF_IMPLEMENTED.items():
            if name not in implemented:
                implemented[name] = (index.find(name, None), ietf_features)
        for name in RFC5277_MODULES:
            if name not in implemented:
                try:
                    implemented[name] = (index.find(name, None), ())
                except SchemaError:
                    pass  # not installed: /netconf/streams is then served unmodelled

        imported: dict[tuple[str, str | None], _Header] = {}
        submodules: dict[str, list[_Header]] = {}
        owner_of: dict[str, str] = {}
        todo: list[_Header] = [h for h, _ in implemented.values()]
        while todo:
            hdr = todo.pop()
            owner = hdr.name if hdr.keyword == "module" else owner_of.get(hdr.name, hdr.name)
            for sub_name, sub_rev in hdr.includes:
                if sub_name in owner_of:
                    continue
                sub = index.find(sub_name, sub_rev)
                owner_of[sub_name] = owner
                submodules.setdefault(owner, []).append(sub)
                todo.append(sub)
            for imp_name, imp_rev in hdr.imports:
                impl = implemented.get(imp_name)
                if impl is not None and imp_rev in (None, impl[0].revision):
                    continue
                dep = index.find(imp_name, imp_rev)
                if (dep.name, dep.revision) not in imported:
                    imported[(dep.name, dep.revision)] = dep
                    todo.append(dep)

        infos: list[ModuleInfo] = [
            _module_info(hdr, Conformance.IMPLEMENT, features, submodules) for hdr, features in implemented.values()
        ]
        infos.extend(_module_info(hdr, Conformance.IMPORT, (), submodules) for hdr in imported.values())
        infos.sort(key=lambda m: (m.conformance is not Conformance.IMPLEMENT, m.name))

        yang_library = _yang_library_json(infos)
        try:
            data_model = DataModel(json.dumps(yang_library), [str(d) for d in dirs])
        except YangsonException as exc:
            raise SchemaError(
                f"cannot build the YANG data model: {type(exc).__name__}: {exc}",
                error_tag="operation-failed",
            ) from exc
        # Report the files yangson actually read.
        loaded = data_model.schema_data.modules
        infos = [_replace_path(m, loaded[(m.name, m.revision or "")].path) for m in infos]
        return cls(infos, data_model)

    # -------------------------------------------------------------- modules

    def module(self, name: str) -> ModuleInfo | None:
        """Return the module called ``name`` (the implemented revision if any)."""
        return self._by_name.get(name)

    def namespace_of(self, module_name: str) -> str | None:
        """Return the XML namespace of a module, or ``None`` if it is not in the model."""
        m = self._by_name.get(module_name)
        return None if m is None else m.namespace

    def module_of_namespace(self, ns: str) -> str | None:
        """Return the name of the module with XML namespace ``ns``, or ``None``."""
        m = self._by_ns.get(ns)
        return None if m is None else m.name

    def prefix_of_namespace(self, ns: str) -> str | None:
        """Return the prefix the module with XML namespace ``ns`` declares, or ``None``."""
        m = self._by_ns.get(ns)
        return None if m is None else m.prefix

    def implemented(self) -> Iterator[ModuleInfo]:
        """Yield the implemented modules."""
        return (m for m in self.modules if m.conformance is Conformance.IMPLEMENT)

    def schema_text(self, identifier: str, version: str | None = None) -> str:
        """Return the YANG source of a module or submodule (RFC 6022 ``<get-schema>``).

        ``version`` is the revision date; ``None`` or ``""`` selects the only
        revision of that (sub)module in the model.

        Raises:
            SchemaError: ``invalid-value`` if no such (sub)module/revision is
                in the model; ``operation-failed`` with app-tag
                ``data-not-unique`` if ``version`` is omitted and several
                revisions exist; ``operation-failed`` if the file cannot be read.
        """
        candidates: dict[str | None, Path] = {}
        for m in self.modules:
            if m.name == identifier:
                candidates[m.revision] = m.path
            for s in m.submodules:
                if s.name == identifier:
                    candidates[s.revision] = s.path
        if not candidates:
            raise SchemaError(
                f"no schema named {identifier!r} is available on this server",
                error_tag="invalid-value",
                info={"bad-element": "identifier"},
            )
        if version:
            if version not in candidates:
                have = ", ".join(sorted(r or "(none)" for r in candidates))
                raise SchemaError(
                    f"schema {identifier!r} is not available in version {version!r} (available: {have})",
                    error_tag="invalid-value",
                    info={"bad-element": "version"},
                )
            path = candidates[version]
        elif len(candidates) > 1:
            have = ", ".join(sorted(r or "(none)" for r in candidates))
            raise SchemaError(
                f"schema {identifier!r} exists in several versions ({have}); give the version",
                error_tag="operation-failed",
                error_app_tag="data-not-unique",
            )
        else:
            (path,) = candidates.values()
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError(
                f"cannot read schema {identifier!r}: {exc.strerror}", error_tag="operation-failed"
            ) from exc

    # ----------------------------------------------------------- schema tree

    def node_info(self, parent: SchemaNodeRef | None, tag: str) -> NodeInfo | None:
        """Return what is known about child ``tag`` (Clark notation) of ``parent``.

        ``parent`` ``None`` means the top level of the datastore. Returns
        ``None`` if the schema has no such data node. Never raises.
        """
        ref = self.root if parent is None else parent
        children = ref._children
        if children is None:
            children = ref._children = self._index_children(ref._node)
        return children.get(tag)

    def children(self, parent: SchemaNodeRef | None) -> list[NodeInfo]:
        """Return the data children of ``parent`` (``None``: top level), in schema order."""
        return [i for i in self.child_table(parent).values() if i is not None]

    def child_table(self, parent: SchemaNodeRef | None) -> Mapping[str, NodeInfo | None]:
        """Return the (cached) mapping Clark tag -> :class:`NodeInfo` of ``parent``'s data children.

        For loops that look up many children of one node; do not modify it.
        """
        ref = self.root if parent is None else parent
        children = ref._children
        if children is None:
            children = ref._children = self._index_children(ref._node)
        return children

    def rpc_input_ref(self, rpc_tag: str) -> SchemaNodeRef | None:
        """Return a handle on the input of top-level RPC ``rpc_tag`` (Clark), or ``None``."""
        if rpc_tag in self._rpc_refs:
            return self._rpc_refs[rpc_tag]
        node = self.rpc_node(rpc_tag)
        ref = None
        if node is not None:
            inp = node.get_child("input", node.ns)
            if isinstance(inp, InternalNode):
                ref = SchemaNodeRef(inp)
        self._rpc_refs[rpc_tag] = ref
        return ref

    def rpc_node(self, rpc_tag: str) -> RpcActionNode | None:
        """Return yangson's schema node of top-level RPC ``rpc_tag`` (Clark), or ``None``."""
        ns, _, name = rpc_tag[1:].partition("}") if rpc_tag[:1] == "{" else ("", "", rpc_tag)
        module = self.module_of_namespace(ns)
        for child in self.data_model.schema.children:
            if isinstance(child, RpcActionNode) and child.name == name and child.ns == module:
                return child
        return None

    def rpc_access_default(self, rpc_tag: str) -> AccessDefault:
        """The ``nacm:default-deny-*`` marking of top-level RPC ``rpc_tag`` (Clark); NONE if unknown. Raises nothing."""
        node = self.rpc_node(rpc_tag)
        return AccessDefault.NONE if node is None else AccessDefault.of(node)

    def notification_access_default(self, tag: str) -> AccessDefault:
        """The ``nacm:default-deny-*`` marking of top-level notification ``tag`` (Clark); NONE if unknown.

        Raises nothing.
        """
        ns, _, name = tag[1:].partition("}") if tag[:1] == "{" else ("", "", tag)
        module = self.module_of_namespace(ns)
        for child in self.data_model.schema.children:
            if isinstance(child, NotificationNode) and child.name == name and child.ns == module:
                return AccessDefault.of(child)
        return AccessDefault.NONE

    def clark(self, node: SchemaNode) -> str:
        """Return the Clark tag ``{namespace}name`` of a yangson schema node."""
        return "{" + (self.namespace_of(str(node.ns)) or "") + "}" + str(node.name)

    def _index_children(self, node: InternalNode) -> dict[str, NodeInfo | None]:
        res: dict[str, NodeInfo | None] = {}
        for child, choices in _data_children(node, ()):
            others: set[str] = set()
            for choice, case in choices:
                for other in choice.children:
                    if other is not case and isinstance(other, InternalNode):
                        others.update(self.clark(n) for n, _ in _data_children(other, ()))
            info = self._make_info(child, frozenset(others))
            if info is not None:
                res[info.tag] = info
        return res

    def _make_info(self, node: DataNode, others: frozenset[str]) -> NodeInfo | None:
        module = self._by_name.get(str(node.ns))
        prefix = module.prefix if module is not None else str(node.ns)
        keys: tuple[str, ...] = ()
        default: str | None = None
        ref: SchemaNodeRef | None = None
        presence = user_ordered = False
        if isinstance(node, ListNode):
            kind = NodeKind.LIST
            keys = tuple("{" + (self.namespace_of(kns) or "") + "}" + kname for kname, kns in node.keys)
            user_ordered = node.user_ordered
            ref = SchemaNodeRef(node)
        elif isinstance(node, ContainerNode):
            kind = NodeKind.CONTAINER
            presence = node.presence
            ref = SchemaNodeRef(node)
        elif isinstance(node, LeafListNode):
            kind = NodeKind.LEAF_LIST
            user_ordered = node.user_ordered
        elif isinstance(node, LeafNode):
            kind = NodeKind.LEAF
            dflt = node.default
            if dflt is not None:
                default = node.type.canonical_string(dflt)
        elif isinstance(node, AnyContentNode):
            kind = NodeKind.ANYDATA
        else:
            return None
        return NodeInfo(
            kind=kind,
            tag=self.clark(node),
            name=str(node.name),
            qualified_name=f"{prefix}:{node.name}",
            module=str(node.ns),
            prefix=prefix,
            keys=keys,
            config=node.config,
            user_ordered=user_ordered,
            presence=presence,
            mandatory=node.mandatory,
            default=default,
            other_case_tags=others,
            json_name=node.iname(),
            default_deny=_inherited_access_default(node),
            ref=ref,
            schema_node=node,
        )


def _inherited_access_default(node: SchemaNode) -> AccessDefault:
    strictest = AccessDefault.NONE
    current: SchemaNode | None = node
    while current is not None:
        mark = AccessDefault.of(current)
        if mark.value > strictest.value:
            strictest = mark
        current = current.parent
    return strictest


def _data_children(
    node: InternalNode, choices: tuple[tuple[ChoiceNode, CaseNode], ...]
) -> Iterable[tuple[DataNode, tuple[tuple[ChoiceNode, CaseNode], ...]]]:
    """Yield the data children of ``node`` (through choices and cases) with the
    (choice, case) pairs enclosing each; RPCs, actions and notifications are skipped."""
    for child in node.children:
        if isinstance(child, DataNode):
            yield child, choices
        elif isinstance(child, ChoiceNode):
            for case in child.children:
                if isinstance(case, CaseNode):
                    yield from _data_children(case, (*choices, (child, case)))
        elif isinstance(child, InternalNode) and not isinstance(child, SchemaTreeNode):
            yield from _data_children(child, choices)


def _module_info(
    hdr: _Header,
    conformance: Conformance,
    features: tuple[str, ...],
    submodules: dict[str, list[_Header]],
) -> ModuleInfo:
    return ModuleInfo(
        name=hdr.name,
        revision=hdr.revision,
        namespace=hdr.namespace,
        prefix=hdr.prefix,
        path=hdr.path,
        conformance=conformance,
        features=features,
        submodules=tuple(SubmoduleInfo(s.name, s.revision, s.path) for s in submodules.get(hdr.name, ())),
    )


def _replace_path(info: ModuleInfo, path: str | None) -> ModuleInfo:
    if path is None or Path(path) == info.path:
        return info
    return ModuleInfo(
        info.name,
        info.revision,
        info.namespace,
        info.prefix,
        Path(path),
        info.conformance,
        info.features,
        info.submodules,
    )


def _yang_library_json(modules: Sequence[ModuleInfo]) -> dict[str, object]:
    """Build the RFC 7895 ``modules-state`` data that yangson's DataModel reads."""
    entries: list[dict[str, object]] = []
    for m in modules:
        entry: dict[str, object] = {
            "name": m.name,
            "revision": m.revision or "",
            "namespace": m.namespace,
            "conformance-type": m.conformance.value,
        }
        if m.features:
            entry["feature"] = list(m.features)
        if m.submodules:
            entry["submodule"] = [{"name": s.name, "revision": s.revision or ""} for s in m.submodules]
        entries.append(entry)
    digest = hashlib.sha1(json.dumps(entries, sort_keys=True).encode("utf-8"), usedforsecurity=False).hexdigest()
    return {"ietf-yang-library:modules-state": {"module-set-id": digest, "module": entries}}
