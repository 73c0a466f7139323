"""The commit database over NETCONF: /commit-history state and the rollback-configuration RPC.

The datastore keeps the history (agent/datastore/history.py); this module
only presents it in ``ca-agent-system``'s terms, and maps IOS XR's ``commit
label L comment C`` onto ``<commit>`` (the module augments ``nc:commit``'s
input with ``label`` and ``comment``).
"""

from __future__ import annotations

from lxml import etree

from agent.datastore.history import CommitRecord
from agent.netconf.dispatch import NetconfAgent, SessionInfo
from agent.netconf.operations import commit_note, principal
from agent.schema.model import SchemaModel
from agent.schema.validate import validate_rpc_input
from agent.xmltree import default_ns, yang_date_and_time

SYS_NS = "urn:ca-agent:yang:system"
ROLLBACK_RPC = f"{{{SYS_NS}}}rollback-configuration"


def _sys(name: str) -> str:
    return f"{{{SYS_NS}}}{name}"


def _leaf(parent: etree._Element, name: str, value: object) -> None:
    etree.SubElement(parent, _sys(name)).text = str(value)


class CommitHistoryService:
    """State provider and RPC for one agent's commit database."""

    def __init__(self, agent: NetconfAgent, model: SchemaModel) -> None:
        self.agent = agent
        self.model = model

    def register(self) -> None:
        self.agent.add_state_provider(self.state, produces=[_sys("commit-history")])
        self.agent.register(ROLLBACK_RPC, self.rollback)

    def state(self) -> list[etree._Element]:
        root = etree.Element(_sys("commit-history"), nsmap=default_ns(SYS_NS))
        for record in self.agent.datastores.history():
            root.append(self._commit(record))
        return [root]

    @staticmethod
    def _commit(record: CommitRecord) -> etree._Element:
        entry = etree.Element(_sys("commit"))
        _leaf(entry, "id", record.commit_id)
        _leaf(entry, "user", record.user)
        _leaf(entry, "session-id", record.session_id)
        _leaf(entry, "timestamp", yang_date_and_time(record.timestamp))
        _leaf(entry, "kind", record.kind)
        if record.label:
            _leaf(entry, "label", record.label)
        if record.comment:
            _leaf(entry, "comment", record.comment)
        for index, change in enumerate(record.changes):
            item = etree.SubElement(entry, _sys("change"))
            _leaf(item, "index", index)
            _leaf(item, "target", change.path)
            _leaf(item, "operation", change.kind.value)
            if change.old_value is not None:
                _leaf(item, "old-value", change.old_value)
            if change.new_value is not None:
                _leaf(item, "new-value", change.new_value)
        return entry

    def rollback(self, session: SessionInfo, operation: etree._Element) -> list[etree._Element] | None:
        """``rollback configuration last N | to ID``. Raises SchemaError, DatastoreError."""
        validate_rpc_input(ROLLBACK_RPC, operation, self.model)
        last = operation.findtext(_sys("last"))
        to = operation.findtext(_sys("to"))
        note = commit_note({name: el for name in ("label", "comment") if (el := operation.find(_sys(name))) is not None})
        commit_id = self.agent.datastores.rollback(
            principal(session),
            last=int(last) if last is not None else None,
            to=to.strip() if to is not None else None,
            note=note,
            guard=self.agent.access.write_guard(session.username),
        )
        if commit_id is None:
            return None  # running already was that configuration: <ok/>
        out = etree.Element(_sys("commit-id"), nsmap=default_ns(SYS_NS))
        out.text = commit_id
        return [out]
