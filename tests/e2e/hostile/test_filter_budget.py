"""Hostile filters (issue 11, "Hostile input"): a CPU budget per filter, and no work for a client that left.

Before: a 4-level nested ``count(//*...)`` XPath filter took 71 s of CPU, and
a 5-level one kept a CPU busy for hours after its client had gone (the
session's thread never came back, so the session stayed in /netconf-state).
"""

from __future__ import annotations

import pytest
from ncclient.operations import RPCError

from agentproc import AgentProcess
from rawnetconf import NC, assert_idle, drop, frame, nested_count, netconf_session, rpc, wait_busy, wait_until

NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
SESSIONS_FILTER = ("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>')


def session_ids(agent: AgentProcess) -> set[int]:
    with agent.connect() as m:
        data = m.get(filter=SESSIONS_FILTER).data_ele
        return {int(e.text) for e in data.iterfind(f".//{{{NCM}}}session/{{{NCM}}}session-id")} - {int(m.session_id)}


@pytest.fixture
def budgeted(agent_factory) -> AgentProcess:
    return agent_factory(args=["--filter-budget", "1"]).start()


def test_a_filter_over_its_budget_fails_with_operation_failed_and_the_session_goes_on(budgeted) -> None:
    with budgeted.connect() as m:
        with pytest.raises(RPCError) as failed:
            m.get(filter=("xpath", nested_count(4)))
        assert failed.value.tag == "operation-failed"
        assert failed.value.type == "application"
        assert failed.value.app_tag == "filter-budget-exceeded"
        assert "budget of 1 s" in failed.value.message
        # the same session still answers, and an ordinary XPath filter is unaffected
        data = m.get_config("running", filter=("xpath", "/sys:aaa/sys:user/sys:name")).data_ele
        assert [e.text for e in data.iter("{urn:ca-agent:yang:system}name")] == ["admin"]


def test_get_data_xpath_filter_has_the_same_budget(budgeted) -> None:
    client, channel = netconf_session(budgeted.port)
    try:
        reply = rpc(channel, f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:operational</datastore>'
                             f"<xpath-filter>{nested_count(4)}</xpath-filter></get-data>")
        assert b"<error-tag>operation-failed</error-tag>" in reply
        assert b"filter-budget-exceeded" in reply
    finally:
        client.close()


@pytest.mark.parametrize("how", ["client drops the connection", "another session kills it"])
def test_evaluation_stops_when_the_session_closes(agent_factory, how: str) -> None:
    agent = agent_factory(args=["--filter-budget", "36000"]).start()
    pid = agent.proc.pid  # type: ignore[union-attr]
    client, channel = netconf_session(agent.port)
    select = nested_count(5).replace("<", "&lt;").replace(">", "&gt;")
    channel.sendall(frame(f'<rpc message-id="1" xmlns="{NC}"><get><filter type="xpath" select="{select}"/>'
                          "</get></rpc>"))
    wait_busy(pid)
    (victim,) = session_ids(agent)
    if how == "client drops the connection":
        drop(client)
    else:
        with agent.connect() as killer:
            killer.kill_session(str(victim))
    wait_until(lambda: victim not in session_ids(agent), 30, "the session to end")
    assert_idle(pid)
    client.close()
