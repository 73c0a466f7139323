"""<get> filtered to one trustpoint answers with that trustpoint's configuration and state only."""

from __future__ import annotations

from lxml import etree

from agentproc import AgentProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
C = "urn:ca-agent:yang:crypto"


def test_get_of_one_trustpoint(agent: AgentProcess) -> None:
    entries = "".join(f"<trustpoint><name>tp{i}</name><rsakeypair>k{i}</rsakeypair></trustpoint>" for i in range(5))
    with agent.connect() as m:
        m.edit_config(target="running", config=f'<config xmlns="{NC}"><crypto xmlns="{C}"><ca>{entries}</ca></crypto>'
                                               "</config>")
        one = ("subtree", f'<crypto xmlns="{C}"><ca><trustpoint><name>tp3</name></trustpoint></ca></crypto>')
        data = etree.fromstring(m.get(filter=one).xml.encode())
        names = [e.text for e in data.iter(f"{{{C}}}name")]
        assert names == ["tp3"]
        assert data.findtext(f".//{{{C}}}rsakeypair") == "k3"
        assert data.find(f".//{{{NC}}}data/*") is not None and len(data.find(f".//{{{NC}}}data")) == 1
        # a filter on another leaf still sees every trustpoint
        by_key = ("subtree", f'<crypto xmlns="{C}"><ca><trustpoint><rsakeypair>k1</rsakeypair></trustpoint></ca>'
                             "</crypto>")
        data = etree.fromstring(m.get(filter=by_key).xml.encode())
        assert [e.text for e in data.iter(f"{{{C}}}name")] == ["tp1"]
        # and the whole <get> still has everything, state included
        full = etree.fromstring(m.get().xml.encode())
        assert len(full.findall(f".//{{{C}}}trustpoint")) == 5
        assert full.find(".//{urn:ca-agent:yang:system}commit-history") is not None
