"""The configuration's size limit (``--max-datastore-size``), through NETCONF and across a restart.

Before: nothing bounded the configuration. Eight candidate edits of 12.5 MB
(60,000 trustpoints each, under the 16 MiB message limit) took the agent
from 69 MiB to 4.7 GB, and their commit wrote a 152 MB running.xml that
every start would load again.
"""

from __future__ import annotations

import re

import pytest
from lxml import etree
from ncclient.operations import RPCError

from agentproc import AgentProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CRYPTO = "urn:ca-agent:yang:crypto"
LIMIT = 65536


def trustpoints(names: list[str], op: str = "merge") -> str:
    entries = "".join(
        f'<trustpoint nc:operation="{op}"><name>{name}</name>'
        f"<enrollment><url>http://ca.example.com/cgi-bin/pkiclient.exe?tp={name}</url></enrollment></trustpoint>"
        for name in names)
    return f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{entries}</ca></crypto></config>'


def names(m, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    data = m.get_config(source).data_ele
    return [e.text for e in data.iterfind(f".//{{{CRYPTO}}}trustpoint/{{{CRYPTO}}}name")]


def assert_size_refused(error: RPCError, target: str) -> None:
    assert error.tag == "resource-denied"
    assert error.type == "application"
    assert error.app_tag == "datastore-size-limit"
    assert f"the {target} configuration would be over this agent's limit of {LIMIT} bytes" in error.message
    assert "--max-datastore-size" in error.message


@pytest.fixture
def limited(agent_factory) -> AgentProcess:
    return agent_factory(args=["--max-datastore-size", str(LIMIT)]).start()


def test_edits_stop_at_the_limit_and_what_was_accepted_commits(limited: AgentProcess) -> None:
    """The rpc-error names the limit, not the configuration's size: that counts nodes access control may hide
    from the requester (RFC 8341); the log has it."""
    with limited.connect() as m:
        accepted: list[str] = []
        for batch in range(100):
            batch_names = [f"b{batch:02d}-{i:02d}" for i in range(20)]
            try:
                m.edit_config(target="candidate", config=trustpoints(batch_names))
            except RPCError as error:
                assert_size_refused(error, "candidate")
                break
            accepted += batch_names
        else:
            raise AssertionError("100 edits of 20 trustpoints were all accepted")
        assert names(m, "candidate") == accepted  # the refused edit left nothing behind
        assert re.search(rf"change of the candidate configuration refused: \d+ bytes, over the limit of {LIMIT}",
                         limited.log_until("configuration refused"))
        m.commit()
        assert names(m, "running") == accepted
        assert len((limited.data_dir / "running.xml").read_bytes()) <= LIMIT
        with pytest.raises(RPCError) as error:
            m.edit_config(target="running", config=trustpoints([f"more-{i}" for i in range(20)]))
        assert_size_refused(error.value, "running")
        # the session goes on, and a change that does not grow the configuration is accepted
        m.edit_config(target="running", config=trustpoints(accepted[:5], op="delete"))
        assert names(m, "running") == accepted[5:]


def test_a_lower_limit_at_restart_keeps_the_configuration_and_lets_it_shrink(agent_factory) -> None:
    agent = agent_factory().start()
    with agent.connect() as m:
        m.edit_config(target="running", config=trustpoints([f"tp{i:03d}" for i in range(600)]))
    agent.stop()
    size = len((agent.data_dir / "running.xml").read_bytes())
    assert size > LIMIT
    agent.args = ["--max-datastore-size", str(LIMIT)]
    agent.start()
    log = agent.log_until("over the limit of")
    assert f"the configuration is {size} bytes, over the limit of {LIMIT}" in log
    with agent.connect() as m:
        assert len(names(m, "running")) == 600
        with pytest.raises(RPCError) as error:
            m.edit_config(target="candidate", config=trustpoints(["one-more"]))
        assert_size_refused(error.value, "candidate")
        m.edit_config(target="candidate", config=trustpoints([f"tp{i:03d}" for i in range(100)], op="delete"))
        m.commit()  # still over the limit, but smaller
        m.edit_config(target="running", config=trustpoints([f"tp{i:03d}" for i in range(100, 590)], op="delete"))
        m.edit_config(target="running", config=trustpoints(["now-it-fits"]))
        assert len(names(m, "running")) == 11
    root = etree.parse(str(agent.data_dir / "running.xml")).getroot()
    assert len(root.findall(f".//{{{CRYPTO}}}trustpoint")) == 11
