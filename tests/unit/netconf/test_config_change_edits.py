"""netconf-config-change (RFC 6470) names the node each edit applied to, not every leaf inside it."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from agent.datastore.diff import Change, ChangeKind
from agent.datastore.history import CommitRecord
from agent.datastore.store import CommitEvent, Principal
from agent.netconf.base_notifications import MAX_EDITS, config_change

NCN = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
PREFIXES = {"c": "urn:ca-agent:yang:crypto", "s": "urn:ca-agent:yang:system"}
TP = "/c:crypto/c:ca/c:trustpoint"


def event_of(changes: list[Change], prefixes: dict[str, str] = PREFIXES) -> etree._Element:
    """The netconf-config-change of a commit by admin whose record lists ``changes``."""
    record = CommitRecord("1", "admin", 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "commit", changes=tuple(changes))
    root = etree.Element("root")
    return config_change(CommitEvent(root, root, record, Principal(1, "admin")), prefixes)


def edits(changes: list[Change]) -> list[tuple[str, str]]:
    event = event_of(changes)
    return [
        (edit.findtext(f"{{{NCN}}}target") or "", edit.findtext(f"{{{NCN}}}operation") or "")
        for edit in event.iter(f"{{{NCN}}}edit")
    ]


def test_a_created_entry_is_one_edit_and_a_replaced_leaf_another() -> None:
    changes = [
        Change("/s:hostname", ChangeKind.REPLACE, "a", "b"),
        Change(f"{TP}[c:name='a/b']", ChangeKind.CREATE),  # a "/" inside the key's literal
        Change(f"{TP}[c:name='a/b']/c:enrollment", ChangeKind.CREATE),
        Change(f"{TP}[c:name='a/b']/c:enrollment/c:url", ChangeKind.CREATE, new_value="http://x/y"),
        Change(f"{TP}[c:name='a']/c:subject-name", ChangeKind.CREATE, new_value="CN=a"),  # not below 'a/b'
        Change(f"{TP}[c:name='old']", ChangeKind.DELETE),
        Change(f"{TP}[c:name='old']/c:rsakeypair", ChangeKind.DELETE, old_value="k"),
    ]
    assert edits(changes) == [
        ("/s:hostname", "replace"),
        (f"{TP}[c:name='a/b']", "create"),
        (f"{TP}[c:name='a']/c:subject-name", "create"),
        (f"{TP}[c:name='old']", "delete"),
    ]


def test_a_bulk_create_of_many_entries_names_each_entry_once() -> None:
    changes: list[Change] = []
    for i in range(900):
        entry = f"{TP}[c:name='tp{i}']"
        changes.append(Change(entry, ChangeKind.CREATE))
        changes += [Change(f"{entry}/c:{leaf}", ChangeKind.CREATE, new_value="v") for leaf in ("a", "b", "c", "d", "e", "f")]
    assert edits(changes) == [(f"{TP}[c:name='tp{i}']", "create") for i in range(900)]


def test_each_target_declares_the_prefixes_its_path_uses_and_no_other() -> None:
    prefixes = {**PREFIXES, "x": "urn:x", "tp": "urn:tp"}
    changes = [
        Change("/s:hostname", ChangeKind.REPLACE, "a", "b"),
        # "c:" inside "abc:" and "x:" inside the key's literal name no prefix of theirs; "tp" is not a prefix here.
        Change(f"{TP}[c:name='abc:x:1']", ChangeKind.CREATE),
    ]
    event = event_of(changes, prefixes)
    targets = list(event.iter(f"{{{NCN}}}target"))
    assert [dict(t.nsmap) for t in targets] == [
        {None: NCN, "s": PREFIXES["s"]},
        {None: NCN, "c": PREFIXES["c"]},
    ]


def test_every_target_carries_its_own_declarations_and_operation_when_serialized() -> None:
    # Edits are copied from one ready <edit> per operation and prefixes: each copy keeps the declaration on
    # its own target (a subscription's filter may copy a target out alone) and gets its own text.
    changes = [Change(f"{TP}[c:name='tp{i}']", kind) for i, kind in
               enumerate([ChangeKind.CREATE, ChangeKind.DELETE, ChangeKind.CREATE, ChangeKind.DELETE])]
    changes.append(Change("/s:hostname", ChangeKind.REPLACE, "a", "b"))
    event = event_of(changes)
    edits = list(event.iter(f"{{{NCN}}}edit"))
    assert [etree.tostring(edit, with_tail=False).decode() for edit in edits] == [
        f'<edit xmlns="{NCN}"><target xmlns:c="{PREFIXES["c"]}">{TP}[c:name=\'tp{i}\']</target>'
        f"<operation>{op}</operation></edit>"
        for i, op in enumerate(["create", "delete", "create", "delete"])
    ] + [f'<edit xmlns="{NCN}"><target xmlns:s="{PREFIXES["s"]}">/s:hostname</target><operation>replace</operation></edit>']
    serialized = etree.tostring(event).decode()
    assert serialized.count("<target xmlns:") == 5 and 'xmlns:c=' not in serialized.split("<edit>")[0]


def test_up_to_max_edits_are_listed_and_a_longer_change_is_reported_without_its_edits() -> None:
    def entries(count: int) -> list[Change]:
        changes: list[Change] = []
        for i in range(count):
            changes.append(Change(f"{TP}[c:name='tp{i}']", ChangeKind.CREATE))
            changes.append(Change(f"{TP}[c:name='tp{i}']/c:rsakeypair", ChangeKind.CREATE, new_value="k"))
        return changes

    assert len(edits(entries(MAX_EDITS))) == MAX_EDITS
    event = event_of(entries(MAX_EDITS + 1))
    assert list(event.iter(f"{{{NCN}}}edit")) == []  # RFC 6470: the edit list MAY be omitted
    assert event.findtext(f"{{{NCN}}}datastore") == "running"
    assert event.find(f"{{{NCN}}}changed-by/{{{NCN}}}username") is not None
