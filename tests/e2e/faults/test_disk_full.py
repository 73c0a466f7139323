"""A full disk, for real (issue 11, "Faults"): resource-denied, the old configuration intact, nothing pending.

Before: a confirmed commit that failed on a full disk left a pending
confirmed commit behind, whose timer later reverted a newer, acknowledged
edit; a full disk answered "internal error".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.operations import RPCError

from faults_helpers import (
    NamespacedAgent,
    TmpfsNamespace,
    check_history_matches_running,
    hostname_config,
    hostname_of,
    temporaries,
    unshare_available,
)
from rawnetconf import wait_until

pytestmark = pytest.mark.skipif(not unshare_available(), reason="needs root for unshare -m and nsenter")


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[TmpfsNamespace]:
    made = TmpfsNamespace(tmp_path / "mnt", size="8m")
    yield made
    made.close()


@pytest.fixture
def agent(namespace: TmpfsNamespace) -> Iterator[NamespacedAgent]:
    made = NamespacedAgent(namespace)
    made.start()
    yield made
    made.stop()


def hostname(m) -> str | None:  # type: ignore[no-untyped-def]
    return hostname_of(m.get_config("running").data_xml)


def refused(call, *args, **kwargs) -> RPCError:  # type: ignore[no-untyped-def]
    with pytest.raises(RPCError) as error:
        call(*args, **kwargs)
    return error.value


def test_every_change_of_running_on_a_full_disk_is_resource_denied_and_changes_nothing(
    agent: NamespacedAgent, namespace: TmpfsNamespace
) -> None:
    with agent.connect() as m:
        m.edit_config(target="running", config=hostname_config("before"))
        filler = namespace.fill()
        on_disk_before = (agent.view / "running.xml").read_bytes()

        error = refused(m.edit_config, target="running", config=hostname_config("edit-running"))
        assert (error.tag, error.type) == ("resource-denied", "application")
        assert "disk space" in error.message
        m.edit_config(target="candidate", config=hostname_config("candidate"))  # in memory: fine
        assert refused(m.commit).tag == "resource-denied"
        assert refused(m.copy_config, source="candidate", target="running").tag == "resource-denied"
        assert hostname(m) == "before"

        assert (agent.view / "running.xml").read_bytes() == on_disk_before
        assert temporaries(agent.view) == []
        check_history_matches_running(agent.view)

        filler.unlink()
        m.commit()  # room again: the candidate goes through
        assert hostname(m) == "candidate"
    agent.kill9()
    agent.start()
    with agent.connect() as m:
        assert hostname(m) == "candidate"
    check_history_matches_running(agent.view)


def test_a_confirmed_commit_that_fails_leaves_nothing_pending_and_no_timer(
    agent: NamespacedAgent, namespace: TmpfsNamespace
) -> None:
    with agent.connect() as first, agent.connect() as second:
        first.edit_config(target="running", config=hostname_config("before"))
        filler = namespace.fill()
        first.edit_config(target="candidate", config=hostname_config("unconfirmed"))
        error = refused(first.commit, confirmed=True, timeout="3")
        assert error.tag == "resource-denied"
        assert hostname(first) == "before"
        assert not (agent.view / "rollback.xml").exists()
        # Nothing is pending: nothing to cancel, and another session may lock running.
        assert refused(first.cancel_commit).tag == "operation-failed"
        second.lock("running")
        second.unlock("running")
        first.discard_changes()

        filler.unlink()
        second.edit_config(target="running", config=hostname_config("acknowledged"))
        # A confirmed commit that does go through, with a longer timeout than the failed one:
        # once its own timer has rolled it back, the failed one's would have fired too.
        second.edit_config(target="candidate", config=hostname_config("probe"))
        second.commit(confirmed=True, timeout="4")
        assert hostname(second) == "probe"
        wait_until(lambda: hostname(second) != "probe", 30, "the probe's confirmed commit to roll back")
        assert hostname(second) == "acknowledged"
    check_history_matches_running(agent.view)


def test_the_agent_starts_on_a_full_disk_with_its_configuration(
    agent: NamespacedAgent, namespace: TmpfsNamespace
) -> None:
    with agent.connect() as m:
        m.edit_config(target="running", config=hostname_config("kept"))
    agent.kill9()
    namespace.fill()
    agent.start()
    with agent.connect() as m:
        assert hostname(m) == "kept"
        assert refused(m.edit_config, target="running", config=hostname_config("x")).tag == "resource-denied"


def test_a_start_up_rollback_on_a_full_disk_stops_cleanly_and_happens_once_there_is_room(
    agent: NamespacedAgent, namespace: TmpfsNamespace
) -> None:
    with agent.connect() as m:
        m.edit_config(target="running", config=hostname_config("before"))
        m.edit_config(target="candidate", config=hostname_config("unconfirmed"))
        m.commit(confirmed=True, timeout="600", persist="p1")
    agent.kill9()
    filler = namespace.fill()
    with pytest.raises(RuntimeError):
        agent.start(timeout=20)  # the rollback cannot be saved: no agent
    log = agent.log_text()
    assert "cannot start: an unconfirmed commit must be rolled back at start-up: not enough disk space" in log
    assert "Traceback" not in log
    assert (agent.view / "rollback.xml").exists()  # the rollback is still due

    filler.unlink()
    agent.start()
    with agent.connect() as m:
        assert hostname(m) == "before"
    assert not (agent.view / "rollback.xml").exists()
    check_history_matches_running(agent.view)
