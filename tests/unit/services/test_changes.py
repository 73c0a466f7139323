"""Listeners that read only the touched trustpoints see what a full re-read sees."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.datastore.edit import apply_edit, new_root
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel
from agent.services.changes import touched_keys
from agent.services.trust import trust_settings
from agent.services.trustpoints import TRUSTPOINT_TAGS, trustpoint_configs

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CRYPTO = "urn:ca-agent:yang:crypto"
TP = f"{{{CRYPTO}}}trustpoint"


def test_touched_keys() -> None:
    crypto, ca = TRUSTPOINT_TAGS[:2]
    assert touched_keys(None, TRUSTPOINT_TAGS) is None
    assert touched_keys(frozenset(), TRUSTPOINT_TAGS) == set()
    assert touched_keys(frozenset({((crypto,), (ca,), (TP, "a")), ((crypto,), (ca,), (TP, "b"), (f"{{{CRYPTO}}}x",))}),
                        TRUSTPOINT_TAGS) == {"a", "b"}
    assert touched_keys(frozenset({((crypto,), (ca,))}), TRUSTPOINT_TAGS) is None  # the whole list may differ
    assert touched_keys(frozenset({((crypto,), (f"{{{CRYPTO}}}other",))}), TRUSTPOINT_TAGS) == set()
    assert touched_keys(frozenset({(("{urn:x}y",),)}), TRUSTPOINT_TAGS) == set()


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def edit(yang: YangSupport, root: etree._Element, body: str) -> tuple[etree._Element, set[str] | None]:
    config = etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><crypto xmlns="{CRYPTO}"><ca>{body}</ca>'
                              "</crypto></config>")
    result = apply_edit(root, config, yang, yang)
    return result.root, touched_keys(result.touched, TRUSTPOINT_TAGS)


@pytest.mark.parametrize("body", [
    "<trustpoint><name>c</name><query-url>ldap://x</query-url></trustpoint>",
    '<trustpoint nc:operation="remove"><name>a</name></trustpoint>',
    "<trustpoint><name>b</name><crl-optional/></trustpoint>",
    '<trustpoint nc:operation="replace"><name>b</name></trustpoint>',
    "<trustpool><policy><cabundle-url>http://bundle</cabundle-url></policy></trustpool>",
])
def test_reading_only_touched_trustpoints_matches_a_full_read(yang: YangSupport, body: str) -> None:
    start, _ = edit(yang, new_root(), "<trustpoint><name>a</name></trustpoint>"
                    "<trustpoint><name>b</name><query-url>ldap://b</query-url></trustpoint>")
    before = trust_settings(start)
    after, names = edit(yang, start, body)
    assert names is not None
    assert trust_settings(after, before, names) == trust_settings(after)
    assert list(trust_settings(after, before, names).trustpoints) == sorted(trustpoint_configs(after))
