"""RFC 6022 /netconf-state and <get-schema>, RFC 8525 /yang-library."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from agent.datastore.store import Target
from agent.errors import NetconfError
from agent.netconf.dispatch import NetconfAgent, SessionInfo
from agent.schema.model import SchemaModel
from agent.xmltree import default_ns, yang_date_and_time

NCM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
YANGLIB_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
DS_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"


def _leaf(parent: etree._Element, ns: str, name: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}")
    element.text = text
    return element


@dataclass
class Monitoring:
    """State providers and get-schema for one agent."""

    agent: NetconfAgent
    schema: SchemaModel

    def register(self) -> None:
        self.agent.add_state_provider(self.netconf_state)
        self.agent.add_state_provider(self.yang_library)
        self.agent.register(f"{{{NCM_NS}}}get-schema", self.get_schema)

    # -- RFC 6022 --------------------------------------------------------------
    def netconf_state(self) -> list[etree._Element]:
        root = etree.Element(f"{{{NCM_NS}}}netconf-state", nsmap=default_ns(NCM_NS))
        caps = etree.SubElement(root, f"{{{NCM_NS}}}capabilities")
        for capability in [
            "urn:ietf:params:netconf:base:1.0",
            "urn:ietf:params:netconf:base:1.1",
            *self.agent.capabilities(),
        ]:
            _leaf(caps, NCM_NS, "capability", capability)
        datastores = etree.SubElement(root, f"{{{NCM_NS}}}datastores")
        store = self.agent.datastores
        for target in (Target.RUNNING, Target.CANDIDATE):
            entry = etree.SubElement(datastores, f"{{{NCM_NS}}}datastore")
            _leaf(entry, NCM_NS, "name", target.value)
            holder = store.lock_holder(target)
            if holder:
                locks = etree.SubElement(entry, f"{{{NCM_NS}}}locks")
                lock = etree.SubElement(locks, f"{{{NCM_NS}}}global-lock")
                _leaf(lock, NCM_NS, "locked-by-session", str(holder))
                since = store.lock_time(target)
                _leaf(lock, NCM_NS, "locked-time", yang_date_and_time(since))
        schemas = etree.SubElement(root, f"{{{NCM_NS}}}schemas")
        for module in self.schema.modules:
            entry = etree.SubElement(schemas, f"{{{NCM_NS}}}schema")
            _leaf(entry, NCM_NS, "identifier", module.name)
            _leaf(entry, NCM_NS, "version", module.revision or "")
            format_el = etree.SubElement(entry, f"{{{NCM_NS}}}format", nsmap={"ncm": NCM_NS})
            format_el.text = "ncm:yang"
            _leaf(entry, NCM_NS, "namespace", module.namespace)
            location = etree.SubElement(entry, f"{{{NCM_NS}}}location")
            location.text = "NETCONF"
        sessions = etree.SubElement(root, f"{{{NCM_NS}}}sessions")
        for info in sorted(self.agent.sessions.values(), key=lambda s: s.session_id):
            sessions.append(self._session(info))
        stats = self.agent.statistics
        statistics = etree.SubElement(root, f"{{{NCM_NS}}}statistics")
        _leaf(statistics, NCM_NS, "netconf-start-time", yang_date_and_time(stats.start_time))
        for name in (
            "in-bad-hellos", "in-sessions", "dropped-sessions", "in-rpcs", "in-bad-rpcs",
            "out-rpc-errors", "out-notifications",
        ):
            _leaf(statistics, NCM_NS, name, str(getattr(stats, name.replace("-", "_"))))
        return [root]

    def _session(self, info: SessionInfo) -> etree._Element:
        entry = etree.Element(f"{{{NCM_NS}}}session", nsmap={"ncm": NCM_NS})
        _leaf(entry, NCM_NS, "session-id", str(info.session_id))
        _leaf(entry, NCM_NS, "transport", "ncm:netconf-ssh")
        _leaf(entry, NCM_NS, "username", info.username)
        _leaf(entry, NCM_NS, "source-host", info.source_host)
        _leaf(entry, NCM_NS, "login-time", yang_date_and_time(info.login_time))
        for name in ("in-rpcs", "in-bad-rpcs", "out-rpc-errors", "out-notifications"):
            _leaf(entry, NCM_NS, name, str(getattr(info, name.replace("-", "_"))))
        return entry

    def get_schema(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element]:
        identifier = operation.findtext(f"{{{NCM_NS}}}identifier")
        if identifier is None:
            raise NetconfError(
                "<get-schema> needs an <identifier>", error_tag="missing-element", error_type="protocol",
                info={"bad-element": "identifier"},
            )
        version = operation.findtext(f"{{{NCM_NS}}}version")
        format_text = operation.findtext(f"{{{NCM_NS}}}format")
        if format_text is not None and format_text.strip().rpartition(":")[2] != "yang":
            raise NetconfError(
                f"schema format {format_text.strip()!r} is not available; only yang is",
                error_tag="invalid-value", error_type="application", info={"bad-element": "format"},
            )
        text = self.schema.schema_text(identifier.strip(), version.strip() if version else None)
        data = etree.Element(f"{{{NCM_NS}}}data", nsmap=default_ns(NCM_NS))
        data.text = text
        return [data]

    # -- RFC 8525 --------------------------------------------------------------
    def yang_library(self) -> list[etree._Element]:
        modules = list(self.schema.modules)
        root = etree.Element(f"{{{YANGLIB_NS}}}yang-library", nsmap={**default_ns(YANGLIB_NS), "ds": DS_NS})
        module_set = etree.SubElement(root, f"{{{YANGLIB_NS}}}module-set")
        _leaf(module_set, YANGLIB_NS, "name", "complete")
        for module in modules:
            kind = "module" if module.conformance == "implement" else "import-only-module"
            entry = etree.SubElement(module_set, f"{{{YANGLIB_NS}}}{kind}")
            _leaf(entry, YANGLIB_NS, "name", module.name)
            if module.revision:
                _leaf(entry, YANGLIB_NS, "revision", module.revision)
            _leaf(entry, YANGLIB_NS, "namespace", module.namespace)
            if kind == "module":
                for feature in module.features:
                    _leaf(entry, YANGLIB_NS, "feature", feature)
        schema = etree.SubElement(root, f"{{{YANGLIB_NS}}}schema")
        _leaf(schema, YANGLIB_NS, "name", "complete")
        _leaf(schema, YANGLIB_NS, "module-set", "complete")
        for name in ("running", "candidate", "operational"):
            datastore = etree.SubElement(root, f"{{{YANGLIB_NS}}}datastore")
            _leaf(datastore, YANGLIB_NS, "name", f"ds:{name}")
            _leaf(datastore, YANGLIB_NS, "schema", "complete")
        _leaf(root, YANGLIB_NS, "content-id", self.schema.module_set_id)
        return [root]
