"""RFC 8341 rule compilation: node-instance-identifier paths, access bits, groups and rule-list order."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.netconf.nacm_rules import (
    NACM_NS,
    Access,
    PathMatch,
    RuleKind,
    compile_policy,
    parse_access_operations,
    parse_node_path,
)

SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
PREFIXES = {"sys": SYS, "crypto": CRYPTO, "ca-agent-system": SYS, "ca-agent-crypto": CRYPTO}


def resolve(name: str) -> str | None:
    return PREFIXES.get(name)


def sys_(name: str) -> str:
    return f"{{{SYS}}}{name}"


def test_path_with_module_prefixes_and_key_predicate() -> None:
    path = parse_node_path("/sys:aaa/sys:user[sys:name='bob']/sys:password-hash", {}, resolve)
    assert [s.tag for s in path.steps] == [sys_("aaa"), sys_("user"), sys_("password-hash")]
    assert path.steps[1].predicates == ((sys_("name"), "bob"),)


def test_prefixes_declared_on_the_leaf_win_over_module_prefixes() -> None:
    path = parse_node_path("/x:aaa/x:user", {"x": CRYPTO, "sys": CRYPTO}, resolve)
    assert path.steps[0].tag == f"{{{CRYPTO}}}aaa"


def test_json_style_path_inherits_the_namespace() -> None:
    path = parse_node_path('/ca-agent-system:aaa/user[name="al ice"]', {}, resolve)
    assert [s.tag for s in path.steps] == [sys_("aaa"), sys_("user")]
    assert path.steps[1].predicates == ((sys_("name"), "al ice"),)


def test_slash_alone_names_everything() -> None:
    path = parse_node_path(" / ", {}, resolve)
    assert path.steps == ()
    assert path.relation([sys_("hostname")]) is PathMatch.ALWAYS


@pytest.mark.parametrize(
    "text",
    ["", "aaa", "/aaa", "/nope:aaa", "/sys:aaa/sys:user[1]", "/sys:aaa[sys:name=bob]", "/sys:aaa/", "/sys:aaa]"],
)
def test_paths_that_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_node_path(text, {}, resolve)


def test_relation_to_schema_nodes() -> None:
    plain = parse_node_path("/sys:aaa/sys:user", {}, resolve)
    keyed = parse_node_path("/sys:aaa/sys:user[sys:name='bob']", {}, resolve)
    assert plain.relation([sys_("aaa")]) is PathMatch.NEVER  # an ancestor is not covered
    assert plain.relation([sys_("aaa"), sys_("user"), sys_("name")]) is PathMatch.ALWAYS  # descendants are
    assert plain.relation([sys_("hostname")]) is PathMatch.NEVER
    assert keyed.relation([sys_("aaa"), sys_("user"), sys_("name")]) is PathMatch.DEPENDS


def test_instances_match_by_key_value_and_user_variable() -> None:
    aaa = etree.fromstring(f'<aaa xmlns="{SYS}"><user><name>bob</name><password-hash>h</password-hash></user></aaa>')
    user = aaa[0]
    chain = [aaa, user, user[1]]
    assert parse_node_path("/sys:aaa/sys:user[sys:name='bob']", {}, resolve).matches(chain, "anyone")
    assert not parse_node_path("/sys:aaa/sys:user[sys:name='eve']", {}, resolve).matches(chain, "anyone")
    own = parse_node_path("/sys:aaa/sys:user[sys:name=$USER]/sys:password-hash", {}, resolve)
    assert own.matches(chain, "bob")
    assert not own.matches(chain, "eve")
    assert not own.matches(chain[:2], "bob")  # the user entry itself is above the path


def test_access_operations() -> None:
    assert parse_access_operations("*") is Access.ALL
    assert parse_access_operations("read exec") == Access.READ | Access.EXEC
    with pytest.raises(ValueError):
        parse_access_operations("read write")


def nacm(body: str) -> etree._Element:
    return etree.fromstring(f'<data><nacm xmlns="{NACM_NS}">{body}</nacm></data>')


def test_no_nacm_configuration_means_the_rfc_defaults() -> None:
    policy = compile_policy(etree.Element("data"), resolve)
    assert (policy.enabled, policy.read_permit, policy.write_permit, policy.exec_permit) == (True, True, False, True)
    assert policy.rules_for("admin") == ()


def test_groups_select_rule_lists_in_configuration_order() -> None:
    policy = compile_policy(
        nacm(
            "<enable-nacm>true</enable-nacm><write-default>permit</write-default>"
            "<groups><group><name>a</name><user-name>bob</user-name></group>"
            "<group><name>b</name><user-name>bob</user-name><user-name>eve</user-name></group></groups>"
            "<rule-list><name>for-b</name><group>b</group>"
            "<rule><name>r1</name><rpc-name>lock</rpc-name><action>deny</action></rule></rule-list>"
            "<rule-list><name>for-all</name><group>*</group>"
            "<rule><name>r2</name><module-name>ca-agent-crypto</module-name><access-operations>read update</access-operations>"
            "<action>permit</action></rule></rule-list>"
            "<rule-list><name>for-a</name><group>a</group>"
            "<rule><name>r3</name><path>/sys:hostname</path><action>permit</action></rule>"
            "<rule><name>r4</name><notification-name>*</notification-name><action>deny</action></rule></rule-list>"
        ),
        resolve,
    )
    assert policy.write_permit
    assert [r.name for r in policy.rules_for("bob")] == ["r1", "r2", "r3", "r4"]
    assert [r.name for r in policy.rules_for("eve")] == ["r1", "r2"]
    assert policy.rules_for("nobody") == ()  # "*" does not reach a user in no group (RFC 8341 3.4.4 step 5)
    r1, r2, r3, r4 = policy.rules_for("bob")
    assert (r1.kind, r1.operation, r1.module, r1.access, r1.permit) == (RuleKind.RPC, "lock", None, Access.ALL, False)
    assert (r2.kind, r2.module, r2.access) == (RuleKind.ANY, "ca-agent-crypto", Access.READ | Access.UPDATE)
    assert r3.kind is RuleKind.DATA and r3.path is not None and r3.path.steps[0].tag == sys_("hostname")
    assert (r4.kind, r4.operation) == (RuleKind.NOTIFICATION, None)


def test_a_rule_whose_path_cannot_be_read_is_left_out_and_reported() -> None:
    policy = compile_policy(
        nacm(
            "<groups><group><name>g</name><user-name>bob</user-name></group></groups>"
            "<rule-list><name>l</name><group>g</group>"
            "<rule><name>bad</name><path>/nope:x</path><action>deny</action></rule>"
            "<rule><name>good</name><action>permit</action></rule></rule-list>"
        ),
        resolve,
    )
    assert [r.name for r in policy.rules_for("bob")] == ["good"]
    assert policy.broken and "bad" in policy.broken[0]
