"""RFC 8526 <get-data> and <edit-data>: the NMDA operations on running, candidate and operational.

``ds:operational`` is running with the state data merged in (what <get>
shows). With ``with-origin`` every node carries, where it differs from its
parent's, the RFC 8342 origin of its value: ``or:intended`` for configuration
(it comes from running), ``or:default`` for a default added by
``with-defaults``, ``or:learned`` for what the agent learned from CAs (the
``/crypto`` state) and ``or:system`` for the rest of the state.
"""

from __future__ import annotations

import copy
import enum

from lxml import etree

from agent.datastore.edit import ErrorOption, Operation
from agent.datastore.store import Target, TestOption
from agent.errors import NetconfError
from agent.netconf.defaults import DEFAULT_ATTRIBUTE, WD_NS, parse_with_defaults
from agent.netconf.dispatch import NetconfAgent, SessionInfo
from agent.netconf.operations import BaseOperations, principal
from agent.netconf.rpcerror import NC_NS
from agent.schema.model import SchemaModel, SchemaNodeRef
from agent.xmltree import default_ns

NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
ORIGIN_NS = "urn:ietf:params:xml:ns:yang:ietf-origin"
ORIGIN_ATTRIBUTE = f"{{{ORIGIN_NS}}}origin"
_LEARNED_MODULES = frozenset({"ca-agent-crypto"})  # state learned from CAs, CRLs and peers


class Datastore(enum.Enum):
    RUNNING = "running"
    CANDIDATE = "candidate"
    OPERATIONAL = "operational"


def _nmda(name: str) -> str:
    return f"{{{NMDA_NS}}}{name}"


def _bad(message: str, element: str, tag: str = "invalid-value") -> NetconfError:
    return NetconfError(message, error_tag=tag, error_type="protocol", info={"bad-element": element})


def _identity(element: etree._Element, base_ns: str) -> str:
    """The local name of an identityref value whose identity lives in ``base_ns``."""
    text = (element.text or "").strip()
    prefix, colon, name = text.rpartition(":")
    namespace = element.nsmap.get(prefix or None) if colon else None
    if not colon or namespace != base_ns:
        raise _bad(f"<{etree.QName(element).localname}> must be a datastore identity such as ds:running, "
                   f"with its prefix declared; got {text!r}", etree.QName(element).localname)
    return name


class NmdaOperations:
    """<get-data> and <edit-data>, registered on a :class:`NetconfAgent`."""

    def __init__(self, agent: NetconfAgent, base: BaseOperations, model: SchemaModel) -> None:
        self.agent = agent
        self.base = base
        self.model = model
        agent.register(_nmda("get-data"), self.get_data)
        agent.register(_nmda("edit-data"), self.edit_data)

    # -- parameters ----------------------------------------------------------
    @staticmethod
    def _params(operation: etree._Element, allowed: tuple[str, ...]) -> dict[str, etree._Element]:
        found: dict[str, etree._Element] = {}
        for child in operation:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.namespace == WD_NS and qname.localname == "with-defaults" and "with-defaults" in allowed:
                name = "with-defaults"
            elif qname.namespace == NMDA_NS and qname.localname in allowed:
                name = qname.localname
            else:
                raise _bad(f"unexpected parameter <{qname.localname}> in <{etree.QName(operation).localname}>",
                           qname.localname, "unknown-element")
            if name in found:
                raise _bad(f"parameter <{name}> given twice", name, "bad-element")
            found[name] = child
        return found

    @staticmethod
    def _datastore(params: dict[str, etree._Element], allowed: tuple[Datastore, ...]) -> Datastore:
        element = params.get("datastore")
        if element is None:
            raise _bad("<datastore> is required", "datastore", "missing-element")
        name = _identity(element, DS_NS)
        for datastore in allowed:
            if datastore.value == name:
                return datastore
        supported = ", ".join(f"ds:{d.value}" for d in allowed)
        raise _bad(f"datastore ds:{name} is not supported here; use {supported}", "datastore")

    # -- get-data ------------------------------------------------------------
    def get_data(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element]:
        params = self._params(operation, (
            "datastore", "subtree-filter", "xpath-filter", "config-filter", "max-depth", "origin-filter",
            "negated-origin-filter", "with-origin", "with-defaults",
        ))
        datastore = self._datastore(params, tuple(Datastore))
        if "subtree-filter" in params and "xpath-filter" in params:
            raise _bad("give either <subtree-filter> or <xpath-filter>, not both", "xpath-filter")
        operational = datastore is Datastore.OPERATIONAL
        for name in ("with-origin", "origin-filter", "negated-origin-filter"):
            if name in params and not operational:
                raise _bad(f"<{name}> applies to ds:operational only", name)
        if "origin-filter" in params and "negated-origin-filter" in params:
            raise _bad("give either <origin-filter> or <negated-origin-filter>, not both", "negated-origin-filter")
        config_filter = self._boolean(params.get("config-filter"), "config-filter")
        max_depth = self._max_depth(params.get("max-depth"))
        mode = parse_with_defaults(params.get("with-defaults"))
        tree = self.base.operational() if operational else self.base.store.get(
            Target.RUNNING if datastore is Datastore.RUNNING else Target.CANDIDATE
        )
        filter_el = self._filter(params)
        (data,) = self.base.reply_data(session, tree, filter_el, mode, include_state=operational,
                                       data_tag=_nmda("data"))
        if config_filter is not None:
            _config_filter(data, None, self.model, config_filter)
        if max_depth is not None:
            _limit_depth(data, max_depth)
        origin_filter = params.get("origin-filter")
        negated = params.get("negated-origin-filter")
        if operational and ("with-origin" in params or origin_filter is not None or negated is not None):
            # The values are identityrefs: "or" is declared once, on <data> (RFC 7950 9.10.3).
            annotated = etree.Element(_nmda("data"), nsmap={**default_ns(NMDA_NS), "or": ORIGIN_NS})
            annotated.extend(list(data))
            data = annotated
            _annotate_origins(data, None, self.model, "")  # top-level nodes always carry their origin
            if origin_filter is not None or negated is not None:
                wanted = {_identity(e, ORIGIN_NS) for e in operation.iterfind(_nmda("origin-filter"))}
                unwanted = {_identity(e, ORIGIN_NS) for e in operation.iterfind(_nmda("negated-origin-filter"))}
                _filter_origins(data, "intended", wanted, unwanted)
            if "with-origin" not in params:
                for node in data.iter():
                    if ORIGIN_ATTRIBUTE in node.attrib:
                        del node.attrib[ORIGIN_ATTRIBUTE]
        return [data]

    @staticmethod
    def _boolean(element: etree._Element | None, name: str) -> bool | None:
        if element is None:
            return None
        text = (element.text or "").strip()
        if text not in ("true", "false"):
            raise _bad(f"<{name}> must be true or false, not {text!r}", name)
        return text == "true"

    @staticmethod
    def _max_depth(element: etree._Element | None) -> int | None:
        if element is None:
            return None
        text = (element.text or "").strip()
        if text == "unbounded":
            return None
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise _bad(f"<max-depth> must be 1..65535 or unbounded, not {text!r}", "max-depth")
        return int(text)

    @staticmethod
    def _filter(params: dict[str, etree._Element]) -> etree._Element | None:
        """The get-data filter as an RFC 6241 <filter>, for the shared filter code."""
        subtree = params.get("subtree-filter")
        if subtree is not None:
            holder = etree.Element(f"{{{NC_NS}}}filter", attrib={"type": "subtree"})
            for child in subtree:
                if isinstance(child.tag, str):
                    holder.append(copy.deepcopy(child))
            return holder
        xpath = params.get("xpath-filter")
        if xpath is not None:
            nsmap = {prefix: ns for prefix, ns in xpath.nsmap.items() if prefix}
            return etree.Element(f"{{{NC_NS}}}filter", attrib={"type": "xpath", "select": (xpath.text or "").strip()},
                                 nsmap=nsmap)
        return None

    # -- edit-data -----------------------------------------------------------
    def edit_data(self, session: SessionInfo, operation: etree._Element) -> None:
        params = self._params(operation, ("datastore", "default-operation", "config", "url"))
        datastore = self._datastore(params, (Datastore.RUNNING, Datastore.CANDIDATE))
        if "url" in params:
            raise NetconfError("the :url capability is not supported", error_tag="operation-not-supported",
                               error_type="protocol")
        config = params.get("config")
        if config is None:
            raise _bad("<edit-data> needs a <config>", "config", "missing-element")
        default_el = params.get("default-operation")
        text = (default_el.text or "").strip() if default_el is not None else "merge"
        if text not in ("merge", "replace", "none"):
            raise _bad(f"<default-operation> must be merge, replace or none, not {text!r}", "default-operation")
        target = Target.RUNNING if datastore is Datastore.RUNNING else Target.CANDIDATE
        result = self.base.store.edit(target, config, principal(session), Operation(text),
                                      TestOption.TEST_THEN_SET, ErrorOption.STOP_ON_ERROR,
                                      guard=self.agent.access.write_guard(session.username))
        if result.errors:
            raise result.errors[0]


def _config_filter(
    element: etree._Element, ref: SchemaNodeRef | None, model: SchemaModel, want_config: bool,
    keys: tuple[str, ...] = (),
) -> bool:
    """RFC 8526 config-filter: keep config true (or false) nodes; True if anything is kept.

    Asked for state, a configuration node stays only as the ancestor of state
    (with its list keys, so the entry is still identified).
    """
    table = model.child_table(ref)
    kept = False
    for child in list(element):
        if not isinstance(child.tag, str):
            continue
        info = table.get(str(child.tag))
        if info is None:
            continue
        if want_config:
            if not info.config:
                element.remove(child)
                continue
            if info.ref is not None:
                _config_filter(child, info.ref, model, True, info.keys)
            kept = True
        elif not info.config:
            kept = True
        elif info.ref is not None and _config_filter(child, info.ref, model, False, info.keys):
            kept = True
        elif info.tag not in keys:
            element.remove(child)
    return kept


def _limit_depth(data: etree._Element, depth: int) -> None:
    """RFC 8526 max-depth: the top-level nodes are at depth 1."""
    def walk(element: etree._Element, level: int) -> None:
        for child in list(element):
            if not isinstance(child.tag, str):
                continue
            if level > depth:
                element.remove(child)
            else:
                walk(child, level + 1)

    walk(data, 1)


def _annotate_origins(element: etree._Element, ref: SchemaNodeRef | None, model: SchemaModel, inherited: str) -> None:
    """Set or:origin where a node's origin differs from its parent's (RFC 8342 5.3.4 inheritance)."""
    table = model.child_table(ref)
    for child in element:
        if not isinstance(child.tag, str):
            continue
        info = table.get(str(child.tag))
        if info is None:
            continue
        if child.get(DEFAULT_ATTRIBUTE) == "true" and info.config:
            origin = "or:default"
        elif info.config:
            origin = "or:intended"
        else:
            origin = "or:learned" if info.module in _LEARNED_MODULES else "or:system"
        if origin != inherited:
            child.set(ORIGIN_ATTRIBUTE, origin)
        if info.ref is not None:
            _annotate_origins(child, info.ref, model, origin)


def _filter_origins(element: etree._Element, inherited: str, wanted: set[str], unwanted: set[str]) -> bool:
    """Keep the nodes whose origin passes; ancestors of kept nodes stay. True if anything is kept."""
    kept = False
    for child in list(element):
        if not isinstance(child.tag, str):
            continue
        origin = (child.get(ORIGIN_ATTRIBUTE) or f"or:{inherited}").rpartition(":")[2]
        passes = (origin in wanted) if wanted else (origin not in unwanted)
        below = _filter_origins(child, origin, wanted, unwanted)
        if passes or below:
            kept = True
        else:
            element.remove(child)
    return kept


__all__ = ["NmdaOperations"]
