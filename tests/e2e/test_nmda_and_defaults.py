"""RFC 8526 get-data/edit-data, RFC 6243 with-defaults, RFC 8525/7895 libraries, RFC 6241 details (issue 10)."""

from __future__ import annotations

import pytest
from lxml import etree
from ncclient import manager
from ncclient.operations import RPCError
from ncclient.xml_ import to_ele

from agentproc import AgentProcess
from rawnetconf import END_OF_CHUNKS, NC, frame, netconf_session, read_until, rpc

SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
WD = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
WD_ATTR = "urn:ietf:params:xml:ns:netconf:default:1.0"
YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
ORIGIN = "urn:ietf:params:xml:ns:yang:ietf-origin"
TP = f"{{{CRYPTO}}}crypto/{{{CRYPTO}}}ca/{{{CRYPTO}}}trustpoint"


def add_trustpoint(m: manager.Manager, name: str, body: str = "<enrollment><url>http://ca.example/scep</url></enrollment>") -> None:
    m.edit_config(target="running", config=f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}"><ca><trustpoint>'
                                          f"<name>{name}</name>{body}</trustpoint></ca></crypto></config>")


def get_data(m: manager.Manager, datastore: str, extra: str = "") -> etree._Element:
    reply = m.dispatch(to_ele(f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:{datastore}</datastore>'
                              f"{extra}</get-data>"))
    found = etree.fromstring(reply.xml.encode()).find(f".//{{{NMDA}}}data")
    assert found is not None, reply.xml
    return found


# -- with-defaults ---------------------------------------------------------------------------------
def test_with_defaults_capability_and_all_four_modes(agent: AgentProcess) -> None:
    with agent.connect() as m:
        caps = [c for c in m.server_capabilities if c.startswith("urn:ietf:params:netconf:capability:with-defaults")]
        assert caps and "basic-mode=explicit" in caps[0]
        assert "also-supported=report-all,report-all-tagged,trim" in caps[0]
        add_trustpoint(m, "plain")
        add_trustpoint(m, "explicit1", "<enrollment><url>http://x/scep</url><retry><period>1</period></retry>"
                                       "</enrollment>")

        def retry_periods(mode: str | None) -> dict[str, etree._Element | None]:
            data = m.get_config("running", with_defaults=mode).data_ele if mode else m.get_config("running").data_ele
            return {e.findtext(f"{{{CRYPTO}}}name"): e.find(f".//{{{CRYPTO}}}period") for e in data.iterfind(TP)}

        explicit = retry_periods(None)
        assert explicit["plain"] is None and explicit["explicit1"] is not None  # as stored
        assert retry_periods("explicit")["plain"] is None
        trimmed = retry_periods("trim")
        assert trimmed["explicit1"] is None  # set to its default: trimmed
        report_all = retry_periods("report-all")
        assert report_all["plain"] is not None and report_all["plain"].text == "1"
        assert report_all["plain"].get(f"{{{WD_ATTR}}}default") is None
        tagged = retry_periods("report-all-tagged")
        assert tagged["plain"].get(f"{{{WD_ATTR}}}default") == "true"
        assert tagged["explicit1"].get(f"{{{WD_ATTR}}}default") == "true"
        data = m.get(filter=("subtree", f'<hostname xmlns="{SYS}"/>'), with_defaults="report-all").data_ele
        assert data.findtext(f"{{{SYS}}}hostname") == "router"  # a top-level default


def test_an_unknown_with_defaults_mode_is_invalid_value(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        reply = rpc(channel, f'<get-config><source><running/></source><with-defaults xmlns="{WD}">all</with-defaults>'
                             "</get-config>")
        assert b"<error-tag>invalid-value</error-tag>" in reply
    finally:
        client.close()


# -- NMDA ------------------------------------------------------------------------------------------
def test_get_data_on_running_candidate_and_operational(agent: AgentProcess) -> None:
    with agent.connect() as m:
        add_trustpoint(m, "a")
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">cand</hostname></config>')
        running = get_data(m, "running")
        candidate = get_data(m, "candidate")
        operational = get_data(m, "operational")
        assert running.findtext(f"{{{SYS}}}hostname") is None
        assert candidate.findtext(f"{{{SYS}}}hostname") == "cand"
        assert running.find(TP) is not None
        assert operational.find(f"{{{YANGLIB}}}yang-library") is not None  # state is there
        assert running.find(f"{{{YANGLIB}}}yang-library") is None
        # config-filter
        only_state = get_data(m, "operational", "<config-filter>false</config-filter>")
        assert only_state.find(f"{{{SYS}}}aaa") is None and only_state.find(f"{{{YANGLIB}}}yang-library") is not None
        only_config = get_data(m, "operational", "<config-filter>true</config-filter>")
        assert only_config.find(f"{{{YANGLIB}}}yang-library") is None and only_config.find(f"{{{SYS}}}aaa") is not None
        # subtree and xpath filters
        sub = get_data(m, "running", f'<subtree-filter><crypto xmlns="{CRYPTO}"/></subtree-filter>')
        assert [c.tag for c in sub] == [f"{{{CRYPTO}}}crypto"]
        xp = get_data(m, "running", f'<xpath-filter xmlns:c="{CRYPTO}">/c:crypto/c:ca/c:trustpoint[c:name=\'a\']'
                                    "</xpath-filter>")
        assert xp.find(TP) is not None
        # max-depth
        shallow = get_data(m, "running", "<max-depth>1</max-depth>")
        crypto = shallow.find(f"{{{CRYPTO}}}crypto")
        assert crypto is not None and len(crypto) == 0
        # with-origin
        origin = get_data(m, "operational", f'<subtree-filter><yang-library xmlns="{YANGLIB}"/>'
                                            f'<aaa xmlns="{SYS}"/></subtree-filter><with-origin/>')
        assert origin.find(f"{{{YANGLIB}}}yang-library").get(f"{{{ORIGIN}}}origin") == "or:system"
        assert origin.find(f"{{{SYS}}}aaa").get(f"{{{ORIGIN}}}origin") == "or:intended"  # top level: always given
        assert b'xmlns:or="urn:ietf:params:xml:ns:yang:ietf-origin"' in etree.tostring(origin)


def test_get_data_refusals(agent: AgentProcess) -> None:
    with agent.connect() as m:
        for extra, tag in (
            ("<with-origin/>", "invalid-value"),  # not on running
            ("<max-depth>0</max-depth>", "invalid-value"),
            ("<frobnicate/>", "unknown-element"),
        ):
            with pytest.raises(RPCError) as bad:
                get_data(m, "running", extra)
            assert bad.value.tag == tag, extra
        with pytest.raises(RPCError) as bad:
            get_data(m, "startup")
        assert bad.value.tag == "invalid-value"


def test_edit_data_on_running_and_candidate(agent: AgentProcess) -> None:
    with agent.connect() as m:
        m.dispatch(to_ele(f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:running</datastore>'
                          f'<config><hostname xmlns="{SYS}">nmda</hostname></config></edit-data>'))
        assert m.get_config("running").data_ele.findtext(f"{{{SYS}}}hostname") == "nmda"
        m.dispatch(to_ele(f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:candidate</datastore>'
                          f'<config><hostname xmlns="{SYS}" xmlns:nc="{NC}" nc:operation="delete"/></config>'
                          "</edit-data>"))
        assert m.get_config("candidate").data_ele.findtext(f"{{{SYS}}}hostname") is None
        with pytest.raises(RPCError) as bad:
            m.dispatch(to_ele(f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:operational</datastore>'
                              f'<config><hostname xmlns="{SYS}">x</hostname></config></edit-data>'))
        assert bad.value.tag == "invalid-value"


def test_yang_library_and_modules_state_agree_and_list_ietf_netconf(agent: AgentProcess) -> None:
    with agent.connect() as m:
        library = m.get(filter=("subtree", f'<yang-library xmlns="{YANGLIB}"/>')).data_ele[0]
        state = m.get(filter=("subtree", f'<modules-state xmlns="{YANGLIB}"/>')).data_ele[0]
    implemented = {e.findtext(f"{{{YANGLIB}}}name") for e in library.iterfind(f".//{{{YANGLIB}}}module")}
    assert {"ietf-netconf", "ietf-netconf-nmda", "ietf-netconf-with-defaults", "ca-agent-crypto"} <= implemented
    listed = {e.findtext(f"{{{YANGLIB}}}name"): e for e in state.iterfind(f"{{{YANGLIB}}}module")}
    assert implemented <= set(listed)
    assert listed["ietf-netconf"].findtext(f"{{{YANGLIB}}}conformance-type") == "implement"
    features = {f.text for f in listed["ietf-netconf"].iterfind(f"{{{YANGLIB}}}feature")}
    assert {"candidate", "confirmed-commit", "validate", "xpath"} <= features and "startup" not in features
    assert state.findtext(f"{{{YANGLIB}}}module-set-id") == library.findtext(f"{{{YANGLIB}}}content-id")
    names = [e for e in library.iterfind(f"{{{YANGLIB}}}datastore/{{{YANGLIB}}}name")]
    assert {n.text for n in names} == {"ds:running", "ds:candidate", "ds:operational"}
    assert all(n.nsmap.get("ds") == DS for n in names)


# -- RFC 6241 details ---------------------------------------------------------------------------------
def test_cancel_commit_with_a_wrong_persist_id_names_the_cancel_commit_path(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        rpc(channel, f'<edit-config><target><candidate/></target><config><hostname xmlns="{SYS}">p</hostname>'
                     "</config></edit-config>")
        assert b"<ok/>" in rpc(channel, "<commit><confirmed/><persist>right</persist></commit>", "2")
        reply = rpc(channel, "<cancel-commit><persist-id>wrong</persist-id></cancel-commit>", "3")
        root = etree.fromstring(reply.split(b"\n", 2)[2].rsplit(b"\n##", 1)[0])
        path = root.find(f".//{{{NC}}}error-path")
        assert root.findtext(f".//{{{NC}}}error-tag") == "invalid-value"
        assert path is not None and path.text == "/nc:rpc/nc:cancel-commit/nc:persist-id"
        assert path.nsmap.get("nc") == NC  # the prefix is declared
        assert b"<ok/>" in rpc(channel, "<cancel-commit><persist-id>right</persist-id></cancel-commit>", "4")
    finally:
        client.close()


def test_subtree_filter_without_namespace_matches_every_namespace(agent: AgentProcess) -> None:
    with agent.connect() as m:
        add_trustpoint(m, "nons")
    client, channel = netconf_session(agent.port)
    try:
        reply = rpc(channel, '<get-config><source><running/></source><filter type="subtree"><crypto/></filter>'
                             "</get-config>")
        assert b"<name>nons</name>" in reply
    finally:
        client.close()


def test_config_without_the_base_namespace_is_accepted_as_ansible_writes_it(agent: AgentProcess) -> None:
    client, channel = netconf_session(agent.port)
    try:
        message = (f'<nc:rpc xmlns:nc="{NC}" message-id="1"><nc:edit-config><nc:target><nc:running/></nc:target>'
                   f'<config xmlns:xc="{NC}"><hostname xmlns="{SYS}">ansible</hostname></config>'
                   "</nc:edit-config></nc:rpc>")
        channel.sendall(frame(message))
        assert b"<ok/>" in read_until(channel, END_OF_CHUNKS)
        assert b"ansible" in rpc(channel, "<get-config><source><running/></source></get-config>", "2")
    finally:
        client.close()


def test_continue_on_error_skips_a_bad_operation_and_an_entry_without_its_key(agent: AgentProcess) -> None:
    with agent.connect() as m:
        config = (f'<config xmlns="{NC}"><crypto xmlns="{CRYPTO}" xmlns:nc="{NC}"><ca>'
                  '<trustpoint nc:operation="frobnicate"><name>bad-op</name></trustpoint>'
                  "<trustpoint><enrollment><url>http://x/scep</url></enrollment></trustpoint>"
                  "<trustpoint><name>good</name><enrollment><url>http://x/scep</url></enrollment></trustpoint>"
                  "</ca></crypto></config>")
        with pytest.raises(RPCError) as errors:
            m.edit_config(target="running", config=config, error_option="continue-on-error")
        tags = {e.tag for e in errors.value.errors} if errors.value.errors else {errors.value.tag}
        assert tags == {"bad-attribute", "missing-element"}
        names = [e.findtext(f"{{{CRYPTO}}}name") for e in m.get_config("running").data_ele.iterfind(TP)]
        assert names == ["good"]
