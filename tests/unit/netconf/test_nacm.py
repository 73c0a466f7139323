"""RFC 8341 decisions of AccessControl on the real schema (plus a test module), without SSH.

Operations (3.4.4), reads (3.4.5, pruning), writes through the edit engine's
guard (3.4.5) and notifications (3.4.6), for users in no group, in the
first-start task groups and in custom rule-lists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from agent.datastore.edit import ErrorOption, Operation, apply_edit, new_root
from agent.errors import DatastoreError, NetconfError, SchemaError
from agent.netconf.nacm import AccessControl
from agent.netconf.nacm_rules import NACM_NS
from agent.netconf.yang import YangSupport
from agent.schema.model import SchemaModel
from agent.services.taskgroups import admin_account, default_access_config

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
TEST = "urn:ca-agent:yang:nacm-test"
NS = {"s": SYS, "c": CRYPTO, "n": NACM_NS, "t": TEST, "ncm": NCM}
HASH = "$scrypt$n=16384,r=8,p=1$" + "A" * 22 + "==$" + "B" * 43 + "="
TEST_MODULE = Path(__file__).parent / "yang" / "nacm-test.yang"


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load(extra_modules=[str(TEST_MODULE)]))


class Running:
    """A settable running configuration, as the datastores would hand it out."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root

    def __call__(self) -> etree._Element:
        return self.root


def base_config(members: dict[str, list[str]] | None = None, extra_nacm: str = "", nacm_leaves: str = "") -> etree._Element:
    """admin in root-system, users bob/eve/oper/pki/ops, groups as given, a trustpoint and the test box."""
    root = new_root()
    aaa = admin_account(HASH)
    for name in ("bob", "eve", "oper", "pki", "ops"):
        user = etree.SubElement(aaa, f"{{{SYS}}}user")
        etree.SubElement(user, f"{{{SYS}}}name").text = name
        etree.SubElement(user, f"{{{SYS}}}password-hash").text = HASH
    root.append(aaa)
    nacm = default_access_config()
    groups = nacm.find("n:groups", NS)
    assert groups is not None
    for group_name, users in (members or {"operator": ["oper"], "pki-admin": ["pki"]}).items():
        group = groups.find(f"n:group[n:name='{group_name}']", NS)
        if group is None:
            group = etree.SubElement(groups, f"{{{NACM_NS}}}group")
            etree.SubElement(group, f"{{{NACM_NS}}}name").text = group_name
        for user_name in users:
            etree.SubElement(group, f"{{{NACM_NS}}}user-name").text = user_name
    for leaf in etree.fromstring(f'<x xmlns="{NACM_NS}">{nacm_leaves}</x>'):
        nacm.insert(0, leaf)
    # The prefixes of rule paths are declared on the rule-list, as a client would send them.
    declared = extra_nacm.replace("<rule-list>", f'<rule-list xmlns:s="{SYS}" xmlns:c="{CRYPTO}" xmlns:ncm="{NCM}">')
    for rule_list in etree.fromstring(f'<x xmlns="{NACM_NS}">{declared}</x>'):
        nacm.append(rule_list)
    root.append(nacm)
    root.append(etree.fromstring(f'<hostname xmlns="{SYS}">r1</hostname>'))
    root.append(
        etree.fromstring(
            f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp1</name><rsakeypair>k1</rsakeypair></trustpoint>'
            f"<trustpoint><name>hidden</name><rsakeypair>k2</rsakeypair></trustpoint></ca></crypto>"
        )
    )
    root.append(etree.fromstring(f'<box xmlns="{TEST}"><open>o</open><sealed>s</sealed></box>'))
    return root


def control(yang: YangSupport, root: etree._Element) -> AccessControl:
    return AccessControl(yang, Running(root))


def op(name: str, namespace: str = NC, body: str = "") -> etree._Element:
    return etree.fromstring(f'<{name} xmlns="{namespace}">{body}</{name}>')


def denied_exec(access: AccessControl, user: str, name: str, namespace: str = NC) -> NetconfError:
    with pytest.raises(NetconfError) as failure:
        access.authorize(user, op(name, namespace))
    return failure.value


# -- 3.4.4 protocol operations --------------------------------------------------------


def test_defaults_for_a_user_in_no_group(yang: YangSupport) -> None:
    access = control(yang, base_config())
    for name in ("get", "get-config", "edit-config", "copy-config", "lock", "unlock", "commit", "validate", "close-session"):
        access.authorize("bob", op(name))
    access.authorize("bob", op("get-schema", NCM, "<identifier>ca-agent-crypto</identifier>"))
    access.authorize("bob", op("ping", TEST))
    for name in ("kill-session", "delete-config"):
        error = denied_exec(access, "bob", name)
        assert (error.error_tag, error.error_type, error.path) == ("access-denied", "protocol", f"/nc:rpc/nc:{name}")
    for name in (
        "key-generate-rsa", "key-zeroize-rsa", "key-import-authentication-rsa", "ca-authenticate", "ca-enroll",
        "ca-cancel-enroll", "ca-import-certificate", "ca-clear-certificates",
    ):
        error = denied_exec(access, "bob", name, CRYPTO)
        assert (error.error_tag, error.error_type, error.path) == ("access-denied", "protocol", f"/nc:rpc/crypto:{name}")
    assert access.statistics.denied_operations == 10


def test_root_system_may_do_everything(yang: YangSupport) -> None:
    access = control(yang, base_config())
    for name in ("kill-session", "delete-config", "edit-config"):
        access.authorize("admin", op(name))
    access.authorize("admin", op("key-zeroize-rsa", CRYPTO))
    assert access.statistics.denied_operations == 0


def test_operator_and_pki_admin_task_groups(yang: YangSupport) -> None:
    access = control(yang, base_config())
    for name in ("edit-config", "copy-config", "commit", "lock", "discard-changes", "kill-session", "delete-config"):
        denied_exec(access, "oper", name)
    for name in ("get", "get-config", "validate", "close-session"):
        access.authorize("oper", op(name))
    denied_exec(access, "oper", "ca-enroll", CRYPTO)
    for name in ("key-generate-rsa", "key-zeroize-rsa", "ca-enroll", "ca-clear-certificates"):
        access.authorize("pki", op(name, CRYPTO))
    for name in ("edit-config", "commit", "lock"):
        access.authorize("pki", op(name))
    denied_exec(access, "pki", "kill-session")


def test_close_session_and_reads_survive_a_deny_everything_rule(yang: YangSupport) -> None:
    deny_all = (
        "<rule-list><name>lockdown</name><group>g</group>"
        "<rule><name>nothing</name><access-operations>exec</access-operations><action>deny</action></rule></rule-list>"
    )
    access = control(yang, base_config({"g": ["bob"]}, deny_all, "<exec-default>deny</exec-default>"))
    access.authorize("bob", op("close-session"))
    denied_exec(access, "bob", "get")  # an explicit rule still applies to get
    access = control(yang, base_config({}, "", "<exec-default>deny</exec-default>"))
    for name in ("get", "get-config", "close-session"):
        access.authorize("bob", op(name))  # exec-default deny: reads still need no permit
    denied_exec(access, "bob", "edit-config")


def test_explicit_permit_overrides_default_deny_all_and_module_name_matters(yang: YangSupport) -> None:
    rules = (
        "<rule-list><name>l</name><group>g</group>"
        "<rule><name>kill</name><module-name>ietf-netconf</module-name><rpc-name>kill-session</rpc-name>"
        "<access-operations>exec</access-operations><action>permit</action></rule>"
        "<rule><name>wrong-module</name><module-name>ietf-netconf</module-name><rpc-name>ca-enroll</rpc-name>"
        "<action>permit</action></rule>"
        "<rule><name>no-base</name><module-name>ietf-netconf</module-name><rpc-name>*</rpc-name>"
        "<access-operations>exec</access-operations><action>deny</action></rule></rule-list>"
    )
    access = control(yang, base_config({"g": ["bob"]}, rules))
    access.authorize("bob", op("kill-session"))
    denied_exec(access, "bob", "ca-enroll", CRYPTO)  # the permit names another module
    denied_exec(access, "bob", "lock")
    access.authorize("bob", op("get-schema", NCM, "<identifier>ca-agent-crypto</identifier>"))  # another module


def test_disabled_nacm_permits_everything(yang: YangSupport) -> None:
    access = control(yang, base_config({}, "", "<enable-nacm>false</enable-nacm>"))
    access.authorize("bob", op("kill-session"))
    access.authorize("bob", op("key-zeroize-rsa", CRYPTO))
    tree = base_config()
    assert access.read_view("bob", tree) is tree
    assert access.write_guard("bob") is None


def test_policy_follows_the_running_configuration(yang: YangSupport) -> None:
    running = Running(base_config())
    access = AccessControl(yang, running)
    denied_exec(access, "bob", "ca-enroll", CRYPTO)
    running.root = base_config({"pki-admin": ["bob"]})
    access.authorize("bob", op("ca-enroll", CRYPTO))


def test_get_schema_of_an_unreadable_schema_answers_like_an_unknown_one(yang: YangSupport) -> None:
    rules = (
        "<rule-list><name>l</name><group>g</group>"
        "<rule><name>hide</name><path>/ncm:netconf-state/ncm:schemas/ncm:schema[ncm:identifier='ietf-netconf-acm']</path>"
        "<access-operations>read</access-operations><action>deny</action></rule></rule-list>"
    )
    access = control(yang, base_config({"g": ["bob"]}, rules))
    access.authorize("bob", op("get-schema", NCM, "<identifier>ca-agent-crypto</identifier>"))
    with pytest.raises(SchemaError) as failure:
        access.authorize("bob", op("get-schema", NCM, "<identifier>ietf-netconf-acm</identifier>"))
    assert failure.value.error_tag == "invalid-value"
    unknown = SchemaModel.load()
    with pytest.raises(SchemaError) as really_unknown:
        unknown.schema_text("no-such-module")
    assert failure.value.message.replace("ietf-netconf-acm", "X") == really_unknown.value.message.replace(
        "no-such-module", "X"
    )


# -- 3.4.5 reading ------------------------------------------------------------------------


def texts(tree: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in tree.iterfind(path, NS)]


def test_no_group_reads_everything_but_secrets_and_the_input_is_not_mutated(yang: YangSupport) -> None:
    tree = base_config()
    before = etree.tostring(tree)
    view = control(yang, tree).read_view("bob", tree)
    assert etree.tostring(tree) == before
    assert texts(view, "s:aaa/s:user/s:name") == ["admin", "bob", "eve", "oper", "pki", "ops"]
    assert texts(view, "s:aaa/s:user/s:password-hash") == []
    assert view.find("n:nacm", NS) is None
    assert texts(view, "c:crypto/c:ca/c:trustpoint/c:name") == ["tp1", "hidden"]
    assert texts(view, "t:box/t:open") == ["o"] and texts(view, "t:box/t:sealed") == []


def test_root_system_reads_the_tree_itself(yang: YangSupport) -> None:
    tree = base_config()
    assert control(yang, tree).read_view("admin", tree) is tree


def test_nothing_denied_returns_the_same_tree(yang: YangSupport) -> None:
    tree = base_config()
    crypto_only = etree.Element("data")
    crypto_only.append(tree.find("c:crypto", NS))
    assert control(yang, tree).read_view("bob", crypto_only) is crypto_only


def test_read_default_deny_and_instance_rules(yang: YangSupport) -> None:
    rules = (
        "<rule-list><name>l</name><group>g</group>"
        "<rule><name>hide-one</name><path>/c:crypto/c:ca/c:trustpoint[c:name='hidden']</path>"
        "<access-operations>read</access-operations><action>deny</action></rule>"
        "<rule><name>crypto</name><module-name>ca-agent-crypto</module-name><access-operations>read</access-operations>"
        "<action>permit</action></rule>"
        "<rule><name>own-hash</name><path>/s:aaa/s:user[s:name=$USER]</path><access-operations>read</access-operations>"
        "<action>permit</action></rule></rule-list>"
    )
    tree = base_config({"g": ["bob"]}, rules, "<read-default>deny</read-default>")
    view = control(yang, tree).read_view("bob", tree)
    assert texts(view, "c:crypto/c:ca/c:trustpoint/c:name") == ["tp1"]
    assert view.find("s:hostname", NS) is None and view.find("t:box", NS) is None
    # /aaa itself is not covered by the $USER path: read-default deny hides it, and with it bob's entry
    assert view.find("s:aaa", NS) is None
    tree2 = base_config({"g": ["bob"]}, rules.replace("</rule-list>", "") + (
        "<rule><name>no-users</name><path>/s:aaa/s:user</path><access-operations>read</access-operations>"
        "<action>deny</action></rule>"
        "<rule><name>aaa</name><path>/s:aaa</path><access-operations>read</access-operations><action>permit</action></rule>"
        "</rule-list>"
    ), "<read-default>deny</read-default>")
    view2 = control(yang, tree2).read_view("bob", tree2)
    # a path covers its descendants, first match wins: own-hash gives bob his entry with its hash
    # (an explicit rule beats default-deny-all), no-users hides the others, aaa shows the container
    assert texts(view2, "s:aaa/s:user/s:name") == ["bob"]
    assert texts(view2, "s:aaa/s:user/s:password-hash") == [HASH]


def test_an_entry_whose_key_is_unreadable_is_left_out_whole(yang: YangSupport) -> None:
    rules = (
        "<rule-list><name>l</name><group>g</group>"
        "<rule><name>no-names</name><path>/c:crypto/c:ca/c:trustpoint[c:name='tp1']/c:name</path>"
        "<access-operations>read</access-operations><action>deny</action></rule></rule-list>"
    )
    tree = base_config({"g": ["bob"]}, rules)
    view = control(yang, tree).read_view("bob", tree)
    assert texts(view, "c:crypto/c:ca/c:trustpoint/c:name") == ["hidden"]
    assert texts(view, "c:crypto/c:ca/c:trustpoint/c:rsakeypair") == ["k2"]


def test_prune_in_place(yang: YangSupport) -> None:
    tree = base_config()
    control(yang, tree).prune("bob", tree)
    assert tree.find("n:nacm", NS) is None and texts(tree, "s:aaa/s:user/s:password-hash") == []


# -- 3.4.5 writing (through the edit engine) ------------------------------------------------


def edit(
    yang: YangSupport,
    access: AccessControl,
    user: str,
    root: etree._Element,
    body: str,
    **kwargs: object,
) -> etree._Element:
    config = etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{body}</config>')
    return apply_edit(root, config, yang, yang, guard=access.write_guard(user), **kwargs).root  # type: ignore[arg-type]


def refused(yang: YangSupport, access: AccessControl, user: str, root: etree._Element, body: str, **kwargs: object) -> DatastoreError:
    with pytest.raises(DatastoreError) as failure:
        edit(yang, access, user, root, body, **kwargs)
    assert failure.value.error_tag == "access-denied"
    assert failure.value.error_type == "application"
    return failure.value


def user_entry(name: str, inner: str = "", attr: str = "") -> str:
    return f'<aaa xmlns="{SYS}"><user{attr}><name>{name}</name>{inner}</user></aaa>'


def test_no_group_may_write_nothing(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    error = refused(yang, access, "bob", root, f'<hostname xmlns="{SYS}">r2</hostname>')
    assert error.path == "/sys:hostname"
    refused(yang, access, "bob", root, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp9</name></trustpoint></ca></crypto>')
    assert access.statistics.denied_data_writes == 2


def test_attacks_on_aaa_are_refused_for_every_group_but_root_system(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    attacks = [
        user_entry("admin", f"<password-hash>{HASH.replace('A', 'C')}</password-hash>"),
        user_entry("mallory", f"<password-hash>{HASH}</password-hash>"),
        f'<aaa xmlns="{SYS}" nc:operation="delete"/>',
        user_entry("admin", "", ' nc:operation="remove"'),
        f'<nacm xmlns="{NACM_NS}"><groups><group><name>root-system</name><user-name>bob</user-name></group></groups></nacm>',
    ]
    for user in ("bob", "oper", "pki", "ops"):
        for attack in attacks:
            refused(yang, access, user, root, attack)
    error = refused(yang, access, "pki", root, attacks[0])
    assert error.path == "/sys:aaa/sys:user[sys:name='admin']/sys:password-hash"
    for attack in attacks:
        edit(yang, access, "admin", root, attack)


def test_pki_admin_writes_crypto_only(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    new = edit(
        yang, access, "pki", root,
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp9</name><enrollment><url>http://ca</url></enrollment>'
        f'</trustpoint><trustpoint nc:operation="delete"><name>hidden</name></trustpoint></ca></crypto>',
    )
    assert texts(new, "c:crypto/c:ca/c:trustpoint/c:name") == ["tp1", "tp9"]
    # a choice-case switch deletes the other case's node: crypto, so allowed
    edit(yang, access, "pki", new, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp9</name><enrollment><terminal/></enrollment></trustpoint></ca></crypto>')
    refused(yang, access, "pki", root, f'<hostname xmlns="{SYS}">r2</hostname>')


def test_replace_needs_rights_only_for_what_changes(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    whole = "".join(etree.tostring(child, encoding="unicode") for child in root)
    # replacing the whole datastore with itself plus a trustpoint: only the trustpoint is new
    more = whole.replace("<name>tp1</name>", "<name>tp1</name><subject-name>CN=x</subject-name>")
    new = edit(yang, access, "pki", root, more, default_operation=Operation.REPLACE)
    assert texts(new, "c:crypto/c:ca/c:trustpoint/c:subject-name") == ["CN=x"]
    # ...but leaving /aaa out of it deletes /aaa
    without_aaa = "".join(etree.tostring(child, encoding="unicode") for child in root if etree.QName(child).localname != "aaa")
    refused(yang, access, "pki", root, without_aaa, default_operation=Operation.REPLACE)
    refused(yang, access, "pki", root, user_entry("bob", f"<password-hash>{HASH}</password-hash>", ' nc:operation="replace"').replace(HASH, HASH.replace("B", "D")))
    # the same replace with an unchanged value changes nothing, so needs nothing
    edit(yang, access, "pki", root, user_entry("bob", f"<password-hash>{HASH}</password-hash>", ' nc:operation="replace"'))


def test_guard_on_copy_config_style_replacement(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    guard = access.write_guard("pki")
    assert guard is not None
    same = etree.fromstring(etree.tostring(root))
    guard.check_replace(root, same)
    crypto = same.find("c:crypto", NS)
    assert crypto is not None
    same.remove(crypto)
    guard.check_replace(root, same)  # deleting /crypto is crypto's business
    nacm = same.find("n:nacm", NS)
    assert nacm is not None
    same.remove(nacm)
    with pytest.raises(DatastoreError) as failure:
        guard.check_replace(root, same)
    assert failure.value.path == "/nacm:nacm"


def test_custom_rules_create_update_delete_and_own_password(yang: YangSupport) -> None:
    rules = (
        "<rule-list><name>l</name><group>g</group>"
        "<rule><name>own-password</name><path>/s:aaa/s:user[s:name=$USER]/s:password-hash</path>"
        "<access-operations>update</access-operations><action>permit</action></rule>"
        "<rule><name>update-tps</name><path>/c:crypto/c:ca/c:trustpoint</path>"
        "<access-operations>update create</access-operations><action>permit</action></rule>"
        "<rule><name>no-new-tps</name><path>/c:crypto/c:ca/c:trustpoint</path>"
        "<access-operations>delete</access-operations><action>deny</action></rule></rule-list>"
    )
    root = base_config({"g": ["ops"]}, rules)
    access = control(yang, root)
    new_hash = HASH.replace("B", "E")
    edit(yang, access, "ops", root, user_entry("ops", f"<password-hash>{new_hash}</password-hash>"))
    refused(yang, access, "ops", root, user_entry("bob", f"<password-hash>{new_hash}</password-hash>"))
    edit(yang, access, "ops", root, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp1</name><rsakeypair>k9</rsakeypair></trustpoint></ca></crypto>')
    refused(yang, access, "ops", root, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint nc:operation="delete"><name>tp1</name></trustpoint></ca></crypto>')
    refused(yang, access, "ops", root, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp1</name><rsakeypair nc:operation="delete"/></trustpoint></ca></crypto>')


def test_continue_on_error_skips_denied_nodes_and_counts_once(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    config = etree.fromstring(
        f'<config xmlns="{NC}"><hostname xmlns="{SYS}">r2</hostname>'
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>tp9</name></trustpoint></ca></crypto>'
        f'<domain xmlns="{SYS}"><name>example.com</name></domain></config>'
    )
    result = apply_edit(root, config, yang, yang, error_option=ErrorOption.CONTINUE_ON_ERROR, guard=access.write_guard("pki"))
    assert [e.path for e in result.errors] == ["/sys:hostname", "/sys:domain"]
    assert texts(result.root, "c:crypto/c:ca/c:trustpoint/c:name") == ["tp1", "hidden", "tp9"]
    assert result.root.findtext("s:hostname", namespaces=NS) == "r1"
    assert access.statistics.denied_data_writes == 1


def test_reordering_a_user_ordered_list_is_an_update(yang: YangSupport) -> None:
    root = base_config()
    access = control(yang, root)
    guard = access.write_guard("pki")
    assert guard is not None
    reordered = etree.fromstring(etree.tostring(root))
    nacm = reordered.find("n:nacm", NS)
    assert nacm is not None
    lists = nacm.findall("n:rule-list", NS)
    nacm.remove(lists[0])
    nacm.append(lists[0])
    with pytest.raises(DatastoreError):
        guard.check_replace(root, reordered)
    admin_guard = access.write_guard("admin")
    assert admin_guard is None


# -- 3.4.6 notifications --------------------------------------------------------------


def notification(event: str) -> etree._Element:
    return etree.fromstring(
        f'<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">'
        f"<eventTime>2026-11-29T10:00:00Z</eventTime><{event} xmlns=\"{TEST}\"><detail>x</detail></{event}></notification>"
    )


def test_notifications(yang: YangSupport) -> None:
    rules = (
        "<rule-list><name>l</name><group>g</group>"
        "<rule><name>quiet</name><module-name>nacm-test</module-name><notification-name>plain-event</notification-name>"
        "<access-operations>read</access-operations><action>deny</action></rule></rule-list>"
    )
    access = control(yang, base_config({"g": ["ops"]}, rules))
    assert access.may_receive("bob", notification("plain-event"))
    assert not access.may_receive("bob", notification("secret-event"))
    assert access.may_receive("admin", notification("secret-event"))
    assert not access.may_receive("ops", notification("plain-event"))
    assert not access.may_receive("ops", notification("plain-event")[1])  # the event element alone
    complete = etree.fromstring('<replayComplete xmlns="urn:ietf:params:xml:ns:netmod:notification"/>')
    assert access.may_receive("ops", complete)
    assert access.statistics.denied_notifications == 3


def test_state_counters(yang: YangSupport) -> None:
    access = control(yang, base_config())
    denied_exec(access, "bob", "kill-session")
    (nacm,) = access.state()
    assert nacm.findtext("n:denied-operations", namespaces=NS) == "1"
    assert nacm.findtext("n:denied-data-writes", namespaces=NS) == "0"
    assert nacm.findtext("n:denied-notifications", namespaces=NS) == "0"


def test_rule_paths_that_cannot_be_read_are_refused_at_validation(yang: YangSupport) -> None:
    bad = "<rule-list><name>l</name><group>g</group><rule><name>r</name><path>/nope:x</path><action>deny</action></rule></rule-list>"
    access = control(yang, base_config())
    access.check_config(base_config())
    with pytest.raises(SchemaError) as failure:
        access.check_config(base_config({"g": ["bob"]}, bad))
    assert failure.value.error_tag == "invalid-value"
    assert failure.value.path == "/nacm:nacm/nacm:rule-list[nacm:name='l']/nacm:rule[nacm:name='r']/nacm:path"
