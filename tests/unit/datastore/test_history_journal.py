"""The commit journal: one synced frame per commit, torn tails cut off, old segments deleted, old format moved in."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from lxml import etree

from agent.datastore.diff import Change, ChangeKind
from agent.datastore.history import CommitHistory, CommitRecord, read_journal
from agent.datastore.store import RUNNING_FILE, Datastores, Principal, Target
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"


def record(n: int) -> CommitRecord:
    return CommitRecord(str(1000000000 + n), "admin", 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "commit",
                        label=f"l{n}")


def snapshot(n: int) -> bytes:
    return f'<data xmlns="{NC}"><hostname xmlns="{SYS}">h{n}</hostname></data>'.encode()


def segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "commits").glob("journal-*.log"))


def test_every_commit_takes_blocks_of_its_own(tmp_path: Path) -> None:
    """Frames start at 4 KiB boundaries, so a full disk refuses every commit (no slack to squeeze into)."""
    history = CommitHistory(tmp_path)
    for n in (1, 2, 3):
        history.append(record(n), snapshot(n))
        assert segments(tmp_path)[0].stat().st_size == 4096 * n
    history.close()


def test_records_and_snapshots_survive_a_reopen(tmp_path: Path) -> None:
    history = CommitHistory(tmp_path)
    for n in (1, 2, 3):
        history.append(record(n), snapshot(n))
    history.close()
    again = CommitHistory(tmp_path)
    assert [r.commit_id for r in again.records] == ["1000000001", "1000000002", "1000000003"]
    assert again.commit_ids == ["1000000001", "1000000002", "1000000003"]
    assert again.records[1].label == "l2"
    assert again.snapshot("1000000002") == snapshot(2)
    assert again.latest_snapshot() == snapshot(3)
    assert again.next_id() == "1000000004"


def test_a_torn_last_frame_is_cut_off_and_appending_goes_on(tmp_path: Path) -> None:
    history = CommitHistory(tmp_path)
    history.append(record(1), snapshot(1))
    history.append(record(2), snapshot(2))
    history.close()
    [segment] = segments(tmp_path)
    clean = segment.stat().st_size
    whole = segment.read_bytes()
    with open(segment, "ab") as handle:  # a crash in the middle of the third append
        handle.write(whole[:30])
    again = CommitHistory(tmp_path)
    assert [r.commit_id for r in again.records] == ["1000000001", "1000000002"]
    assert segment.stat().st_size == clean
    again.append(record(3), snapshot(3))
    again.close()
    assert CommitHistory(tmp_path).latest_snapshot() == snapshot(3)


def test_a_corrupted_frame_ends_the_readable_journal(tmp_path: Path) -> None:
    history = CommitHistory(tmp_path)
    for n in (1, 2):
        history.append(record(n), snapshot(n))
    history.close()
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[len(data) - 4096 + 20] ^= 0xFF  # a bit flip in the last frame (frames start every 4 KiB): its CRC fails
    segment.write_bytes(bytes(data))
    assert [r.commit_id for r in CommitHistory(tmp_path).records] == ["1000000001"]


def test_only_the_newest_are_kept_and_old_segments_go(tmp_path: Path) -> None:
    history = CommitHistory(tmp_path, keep=3)
    for n in range(1, 11):
        history.append(record(n), snapshot(n))
    assert [r.commit_id for r in history.records] == ["1000000008", "1000000009", "1000000010"]
    assert len(segments(tmp_path)) <= 2
    history.close()
    again = CommitHistory(tmp_path, keep=3)
    assert [r.commit_id for r in again.records] == ["1000000008", "1000000009", "1000000010"]
    assert again.snapshot("1000000008") == snapshot(8)
    with pytest.raises(KeyError):
        again.snapshot("1000000007")


def test_per_commit_files_of_the_earlier_format_move_into_the_journal(tmp_path: Path) -> None:
    commits = tmp_path / "commits"
    commits.mkdir()
    for n in (1, 2, 3):
        data = {**record(n).to_json(), "config": snapshot(n).decode()}
        (commits / f"{1000000000 + n}.json.gz").write_bytes(gzip.compress(json.dumps(data).encode()))
    (tmp_path / RUNNING_FILE).write_bytes(snapshot(2))  # commit 3 was written, then the crash: never took effect
    history = CommitHistory(tmp_path)
    assert [r.commit_id for r in history.records] == ["1000000001", "1000000002"]
    assert history.latest_snapshot() == snapshot(2)
    assert not list(commits.glob("*.json.gz")) and len(segments(tmp_path)) == 1


def test_changes_of_both_record_formats_are_read(tmp_path: Path) -> None:
    """Records keep their changes as [path, kind, old, new]; journals from before hold objects."""
    changes = (
        Change("/sys:hostname", ChangeKind.REPLACE, "a", "b"),
        Change("/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='t']", ChangeKind.CREATE),
        Change("/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='t']/crypto:rsakeypair", ChangeKind.DELETE, "k"),
    )
    current = CommitRecord(**{**record(1).__dict__, "changes": changes})
    history = CommitHistory(tmp_path)
    history.append(current, snapshot(1))
    assert CommitHistory(tmp_path).records[0].changes == changes  # through the journal
    stored = current.to_json()
    assert stored["changes"][0] == ["/sys:hostname", "replace", "a", "b"]  # type: ignore[index]
    earlier = {**stored, "changes": [{"path": c.path, "kind": c.kind.value, "old": c.old_value, "new": c.new_value}
                                     for c in changes]}
    assert CommitRecord.from_json(earlier).changes == changes


def test_kept_records_hold_their_changes_packed_not_as_objects(tmp_path: Path) -> None:
    """A bulk commit's thousands of changes are not kept as objects the garbage collector walks."""
    import gc

    many = tuple(Change(f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='t{i}']", ChangeKind.CREATE)
                 for i in range(2000))
    history = CommitHistory(tmp_path)
    history.append(CommitRecord(**{**record(1).__dict__, "changes": many}), snapshot(1))
    history.append(record(2), snapshot(2))
    referenced = gc.get_referents(*gc.get_referents(*history._stored))  # the kept records and what they hold
    assert not any(isinstance(item, Change) or (isinstance(item, tuple) and item and isinstance(item[0], Change))
                   for item in referenced)
    assert history.records[0].changes == many  # unpacked when read
    assert history.records[1].changes == ()
    assert CommitHistory(tmp_path).records[0].changes == many  # and the same through the journal


def test_a_small_commits_changes_are_kept_as_they_are_and_a_large_ones_compressed(tmp_path: Path) -> None:
    """Compressing a one-entry commit's few hundred bytes costs the committer more than it saves."""
    few = (Change("/sys:hostname", ChangeKind.REPLACE, "a", "b"),)
    many = tuple(Change(f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='t{i}']", ChangeKind.CREATE)
                 for i in range(100))
    history = CommitHistory(tmp_path)
    history.append(CommitRecord(**{**record(1).__dict__, "changes": few}), snapshot(1))
    history.append(CommitRecord(**{**record(2).__dict__, "changes": many}), snapshot(2))
    small, large = (stored.changes or b"" for stored in history._stored)
    assert json.loads(small) == [["/sys:hostname", "replace", "a", "b"]]
    assert not large.startswith(b"[") and len(large) < len(json.dumps([c[:4] for c in many])) // 4
    assert [r.changes for r in history.records] == [few, many]
    assert [r.changes for r in CommitHistory(tmp_path).records] == [few, many]


def test_a_small_frame_is_stored_as_it_is_and_a_large_one_compressed(tmp_path: Path) -> None:
    """Compressing a small datastore's snapshot cost the committer ~65 µs before the reply."""
    small = snapshot(1)
    large = f'<data xmlns="{NC}">{"<hostname>h</hostname>" * 3000}</data>'.encode()  # ~70 KB, compressible
    history = CommitHistory(tmp_path)
    history.append(record(1), small)
    history.append(record(2), large)
    data = segments(tmp_path)[0].read_bytes()
    assert small in data  # a stored zlib stream: the bytes as they are
    assert large not in data and len(data) < len(large) // 4
    assert [snap for _, snap in read_journal(tmp_path)] == [small, large]
    assert [r.commit_id for r in CommitHistory(tmp_path).records] == [record(1).commit_id, record(2).commit_id]


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def hostname_config(name: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}"><hostname xmlns="{SYS}">{name}</hostname></config>')


def test_running_comes_from_the_journal_when_running_xml_was_left_behind(tmp_path: Path, yang: YangSupport) -> None:
    store = Datastores(tmp_path, yang, yang, yang.validate)
    who = Principal(1, "admin")
    store.edit(Target.RUNNING, hostname_config("first"), who)
    stale = (tmp_path / RUNNING_FILE).read_bytes()
    store.edit(Target.RUNNING, hostname_config("second"), who)
    store.close()
    (tmp_path / RUNNING_FILE).write_bytes(stale)  # a crash after the journal frame, before running.xml
    again = Datastores(tmp_path, yang, yang, yang.validate)
    assert again.get(Target.RUNNING).findtext(f"{{{SYS}}}hostname") == "second"
    assert b"second" in (tmp_path / RUNNING_FILE).read_bytes()
    assert [r.kind for r in again.history()][-1] == "edit-config"
    again.close()


def test_a_data_directory_without_journal_starts_from_running_xml(tmp_path: Path, yang: YangSupport) -> None:
    (tmp_path / RUNNING_FILE).write_bytes(snapshot(7))
    store = Datastores(tmp_path, yang, yang, yang.validate)
    assert store.get(Target.RUNNING).findtext(f"{{{SYS}}}hostname") == "h7"
    assert [r.kind for r in store.history()] == ["initial-configuration"]
    store.close()


# -- a large commit's changes follow it ------------------------------------------------------------
CRYPTO = "urn:ca-agent:yang:crypto"


def trustpoints_config(count: int, operation: str = "merge") -> etree._Element:
    entries = "".join(f'<trustpoint nc:operation="{operation}"><name>tp{i}</name>'
                      f"<enrollment><url>http://ca.example/{i}</url></enrollment></trustpoint>"
                      for i in range(count))
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{entries}'
                            "</ca></crypto></config>")


def test_changes_that_follow_their_commit_are_shown_once_recorded(tmp_path: Path) -> None:
    changes = (Change("/sys:hostname", ChangeKind.REPLACE, "h1", "h2"),)
    history = CommitHistory(tmp_path)
    history.append(record(1), snapshot(1))
    history.append(CommitRecord(**{**record(2).__dict__, "changes_follow": True}), snapshot(2))
    assert history.commit_ids == ["1000000001", "1000000002"]
    assert [r.commit_id for r in history.records] == ["1000000001"]  # not shown without its changes
    assert history.missing_changes() == [("1000000002", snapshot(1), snapshot(2))]
    history.complete("1000000002", changes)
    assert history.records[1].changes == changes and not history.records[1].changes_follow
    assert segments(tmp_path)[0].stat().st_size == 3 * 4096  # the changes took a frame of their own
    history.append(record(3), snapshot(3))
    history.close()
    again = CommitHistory(tmp_path)
    assert [r.changes for r in again.records] == [(), changes, ()]
    assert again.missing_changes() == [] and again.next_id() == "1000000004"
    from agent.datastore.history import read_journal

    assert [meta.get("changes") for meta, _ in read_journal(tmp_path)] == [[], [list(changes[0][:4])], []]


def test_changes_that_follow_survive_segment_changes_and_trimming(tmp_path: Path) -> None:
    """A changes frame may land in the next segment (its commit filled one); it still finds its commit."""
    history = CommitHistory(tmp_path, keep=3)
    for n in range(1, 11):
        history.append(CommitRecord(**{**record(n).__dict__, "changes_follow": True}), snapshot(n))
        history.complete(str(1000000000 + n), (Change("/sys:hostname", ChangeKind.REPLACE, f"h{n - 1}", f"h{n}"),))
    assert len(segments(tmp_path)) <= 2
    history.close()
    again = CommitHistory(tmp_path, keep=3)
    assert [(r.commit_id, r.changes[0].new_value) for r in again.records] == [
        ("1000000008", "h8"), ("1000000009", "h9"), ("1000000010", "h10")]
    assert again.missing_changes() == []


def test_a_large_commit_is_recorded_with_its_changes_before_any_listener_sees_it(
        tmp_path: Path, yang: YangSupport) -> None:
    from agent.datastore.diff import diff_trees, public_changes
    from agent.datastore.store import CHANGES_FOLLOW_OVER, CommitEvent

    store = Datastores(tmp_path, yang, yang, yang.validate)
    seen: list[CommitRecord] = []
    store.add_event_listener(lambda event: seen.append(event.record) if isinstance(event, CommitEvent) else None)
    before = store.get(Target.RUNNING)
    count = CHANGES_FOLLOW_OVER + 10
    store.edit(Target.RUNNING, trustpoints_config(count), Principal(1, "admin"))
    expected = tuple(public_changes(diff_trees(before, store.get(Target.RUNNING), yang, yang)))
    assert len(expected) == 2 + 3 * count  # crypto, ca; each trustpoint, its enrollment and URL
    assert [r.changes for r in seen] == [expected] and not seen[0].changes_follow
    assert store.history()[-1].changes == expected
    commits = len(store.history())
    store.edit(Target.RUNNING, trustpoints_config(count), Principal(1, "admin"))  # the same again: no change
    assert len(store.history()) == commits and len(seen) == 1
    store.close()
    assert Datastores(tmp_path, yang, yang, yang.validate).history()[-1].changes == expected


def test_changes_lost_in_a_crash_are_computed_again_at_start(tmp_path: Path, yang: YangSupport) -> None:
    """The commit is durable once its frame is synced; its changes' frame, unsynced, may be lost."""
    store = Datastores(tmp_path, yang, yang, yang.validate)
    store.edit(Target.RUNNING, trustpoints_config(100), Principal(1, "admin"))
    store.edit(Target.RUNNING, trustpoints_config(100, "delete"), Principal(1, "admin"))
    created, deleted = (r.changes for r in store.history()[-2:])
    # each new entry, its enrollment and URL; each deleted entry once (not "ca replaced": it lists what it lost)
    assert len(created) == 2 + 3 * 100 and len(deleted) == 100
    assert {c.kind for c in deleted} == {ChangeKind.DELETE}
    store.close()
    journal = segments(tmp_path)[-1]
    with open(journal, "r+b") as handle:  # the crash: the last frame (the deletion's changes) never reached disk
        handle.truncate(journal.stat().st_size - 4096)
    again = Datastores(tmp_path, yang, yang, yang.validate)
    assert [r.changes for r in again.history()[-2:]] == [created, deleted]
    assert not again.get(Target.RUNNING).findall(f".//{{{CRYPTO}}}trustpoint")
    again.close()
    third = CommitHistory(tmp_path)  # computed once: the frame is written again
    assert third.missing_changes() == [] and third.records[-1].changes == deleted
