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


def _leaf(
    parent: etree._Element, ns: str, name: str, text: str, nsmap: dict[str, str] | None = None
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}", nsmap=nsmap)
    element.text = text
    return element


@dataclass
class Monitoring:
    """State providers and get-schema for one agent."""

    agent: NetconfAgent
    schema: SchemaModel

    def register(self) -> None:
        self.agent.add_state_provider(self.netconf_state, produces=[f"{{{NCM_NS}}}netconf-state"])
        self.agent.add_state_provider(
            self.yang_library, produces=[f"{{{YANGLIB_NS}}}yang-library", f"{{{YANGLIB_NS}}}modules-state"])
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
            _leaf(entry, NCM_NS, "format", "yang")  # an identity of this very namespace: see _session
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
        entry = etree.Element(f"{{{NCM_NS}}}session", nsmap=default_ns(NCM_NS))
        _leaf(entry, NCM_NS, "session-id", str(info.session_id))
        # Identities of ietf-netconf-monitoring go unprefixed: RFC 7950 9.10.3 resolves them in the default
        # namespace in effect, which is that module's. A prefix declared on the leaf does not survive: lxml
        # drops a declaration whose namespace is already in scope when the tree is moved into the reply.
        _leaf(entry, NCM_NS, "transport", "netconf-ssh")
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

    # -- RFC 8525 and RFC 7895 ----------------------------------------------------
    def yang_library(self) -> list[etree._Element]:
        """/yang-library (RFC 8525) and the deprecated /modules-state (RFC 7895) old clients read."""
        return [self._yang_library(), self._modules_state()]

    def _yang_library(self) -> etree._Element:
        root = etree.Element(f"{{{YANGLIB_NS}}}yang-library", nsmap=default_ns(YANGLIB_NS))
        module_set = etree.SubElement(root, f"{{{YANGLIB_NS}}}module-set")
        _leaf(module_set, YANGLIB_NS, "name", "complete")
        modules = sorted(self.schema.modules, key=lambda m: (m.conformance.value, m.name, m.revision or ""))
        for module in modules:
            implemented = module.conformance.value == "implement"
            entry = etree.SubElement(module_set, f"{{{YANGLIB_NS}}}{'module' if implemented else 'import-only-module'}")
            _leaf(entry, YANGLIB_NS, "name", module.name)
            if module.revision or not implemented:
                _leaf(entry, YANGLIB_NS, "revision", module.revision or "")
            _leaf(entry, YANGLIB_NS, "namespace", module.namespace)
            for submodule in module.submodules:
                sub = etree.SubElement(entry, f"{{{YANGLIB_NS}}}submodule")
                _leaf(sub, YANGLIB_NS, "name", submodule.name)
                if submodule.revision:
                    _leaf(sub, YANGLIB_NS, "revision", submodule.revision)
            if implemented:
                for feature in module.features:
                    _leaf(entry, YANGLIB_NS, "feature", feature)
        schema = etree.SubElement(root, f"{{{YANGLIB_NS}}}schema")
        _leaf(schema, YANGLIB_NS, "name", "complete")
        _leaf(schema, YANGLIB_NS, "module-set", "complete")
        for name in ("running", "candidate", "operational"):
            datastore = etree.SubElement(root, f"{{{YANGLIB_NS}}}datastore")
            # An identityref: its prefix is declared on the leaf itself, so it
            # survives any filtering or copying (RFC 7950 9.10.3).
            _leaf(datastore, YANGLIB_NS, "name", f"ds:{name}", nsmap={"ds": DS_NS})
            _leaf(datastore, YANGLIB_NS, "schema", "complete")
        _leaf(root, YANGLIB_NS, "content-id", self.schema.module_set_id)
        return root

    def _modules_state(self) -> etree._Element:
        root = etree.Element(f"{{{YANGLIB_NS}}}modules-state", nsmap=default_ns(YANGLIB_NS))
        _leaf(root, YANGLIB_NS, "module-set-id", self.schema.module_set_id)
        for module in sorted(self.schema.modules, key=lambda m: (m.name, m.revision or "")):
            entry = etree.SubElement(root, f"{{{YANGLIB_NS}}}module")
            _leaf(entry, YANGLIB_NS, "name", module.name)
            _leaf(entry, YANGLIB_NS, "revision", module.revision or "")
            _leaf(entry, YANGLIB_NS, "namespace", module.namespace)
            implemented = module.conformance.value == "implement"
            if implemented:
                for feature in module.features:
                    _leaf(entry, YANGLIB_NS, "feature", feature)
            _leaf(entry, YANGLIB_NS, "conformance-type", "implement" if implemented else "import")
            for submodule in module.submodules:
                sub = etree.SubElement(entry, f"{{{YANGLIB_NS}}}submodule")
                _leaf(sub, YANGLIB_NS, "name", submodule.name)
                _leaf(sub, YANGLIB_NS, "revision", submodule.revision or "")
        return root
