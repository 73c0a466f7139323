"""ncclient through the whole session every independent client goes through (client_session.py)."""

from __future__ import annotations

from client_session import (
    HOSTNAME_SUBTREE,
    KEYS_SUBTREE,
    NC,
    Observed,
    Scenario,
    check_agent_after,
    check_observed,
)
from lxml import etree
from ncclient.xml_ import to_ele

from agentproc import AgentProcess


def test_ncclient_full_session(agent: AgentProcess) -> None:
    scenario = Scenario("ncclient")
    m = agent.connect()
    capabilities = list(m.server_capabilities)
    get_keys = m.get(filter=("subtree", KEYS_SUBTREE)).data_xml
    get_config_users = m.get_config("running", filter=("xpath", "/sys:aaa/sys:user/sys:name")).data_xml
    m.lock("candidate")
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{scenario.first_edit()}</config>')
    m.validate("candidate")
    m.commit()
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{scenario.hostname_edit(scenario.confirmed)}</config>')
    m.commit(confirmed=True, timeout="120")
    after_confirmed = m.get_config("running", filter=("subtree", HOSTNAME_SUBTREE)).data_xml
    m.cancel_commit()
    after_cancel = m.get_config("running", filter=("subtree", HOSTNAME_SUBTREE)).data_xml
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{scenario.hostname_edit(scenario.discarded)}</config>')
    m.discard_changes()
    after_discard = m.get_config("candidate", filter=("subtree", HOSTNAME_SUBTREE)).data_xml
    m.unlock("candidate")
    key_reply = m.dispatch(to_ele(scenario.key_generate())).xml
    m.close_session()
    check_observed(Observed(capabilities, get_keys, get_config_users, after_confirmed, after_cancel, after_discard,
                            key_reply), scenario)
    check_agent_after(agent, scenario)


def test_a_wrong_observation_fails_the_check() -> None:
    """The checks can fail: a session that skipped cancel-commit is caught."""
    scenario = Scenario("ncclient")
    reply = f'<data xmlns="{NC}"><hostname xmlns="urn:ca-agent:yang:system">{scenario.confirmed}</hostname></data>'
    good = etree.tostring(etree.fromstring(reply)).decode()
    seen = Observed(
        ["urn:ietf:params:netconf:capability:candidate:1.0", "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
         "urn:ca-agent:yang:crypto?module=ca-agent-crypto"],
        '<data><label xmlns="urn:ca-agent:yang:crypto">the_default</label></data>',
        '<data><name xmlns="urn:ca-agent:yang:system">admin</name></data>',
        good, good, good, f'<rpc-reply><label xmlns="urn:ca-agent:yang:crypto">{scenario.key_label}</label></rpc-reply>',
    )
    try:
        check_observed(seen, scenario)
    except AssertionError as failed:
        assert scenario.confirmed in str(failed)
    else:
        raise AssertionError("check_observed accepted a running datastore that cancel-commit did not restore")
