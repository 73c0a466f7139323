"""The first-start task groups and the admin recovery on configuration trees (validated by the YANG modules)."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.datastore.edit import new_root
from agent.netconf.nacm import AccessControl
from agent.netconf.yang import YangSupport
from agent.passwords import hash_password
from agent.schema.model import SchemaModel
from agent.services.taskgroups import ROOT_SYSTEM, admin_account, default_access_config, restore_admin

NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
SYS = "urn:ca-agent:yang:system"
NS = {"n": NACM, "s": SYS}


@pytest.fixture(scope="module")
def yang() -> YangSupport:
    return YangSupport(SchemaModel.load())


def first_start() -> etree._Element:
    root = new_root()
    root.append(admin_account(hash_password("old")))
    root.append(default_access_config())
    return root


def test_first_start_configuration_is_valid_and_makes_admin_root(yang: YangSupport) -> None:
    root = first_start()
    assert yang.validate(root, full=True)
    groups = {g.findtext("n:name", namespaces=NS): [u.text for u in g.findall("n:user-name", NS)]
              for g in root.iterfind("n:nacm/n:groups/n:group", NS)}
    assert groups == {"root-system": ["admin"], "pki-admin": [], "operator": []}
    assert [r.findtext("n:name", namespaces=NS) for r in root.iterfind("n:nacm/n:rule-list", NS)] == [
        "root-system", "pki-admin", "operator"]
    access = AccessControl(yang, lambda: root)
    assert access.write_guard("admin") is None
    assert access.read_view("admin", root) is root


def test_restore_admin_undoes_a_lock_out(yang: YangSupport) -> None:
    root = first_start()
    nacm = root.find("n:nacm", NS)
    assert nacm is not None
    # admin removed from root-system, root-system's rule-list turned into deny-all and moved last, admin deleted
    for user in root.iterfind("n:nacm/n:groups/n:group/n:user-name", NS):
        user.getparent().remove(user)
    root_list = nacm.find("n:rule-list", NS)
    assert root_list is not None
    root_list.find("n:rule/n:action", NS).text = "deny"
    nacm.remove(root_list)
    nacm.append(root_list)
    aaa = root.find("s:aaa", NS)
    root.remove(aaa)
    access = AccessControl(yang, lambda: root)
    assert access.write_guard("admin") is not None
    new_hash = hash_password("new")
    changes = restore_admin(root, new_hash)
    assert yang.validate(root, full=True)
    assert root.findtext("s:aaa/s:user[s:name='admin']/s:password-hash", namespaces=NS) == new_hash
    lists = root.findall("n:nacm/n:rule-list", NS)
    assert [r.findtext("n:name", namespaces=NS) for r in lists] == ["root-system", "pki-admin", "operator"]
    assert lists[0].findtext("n:rule/n:action", namespaces=NS) == "permit"
    assert root.findtext(f"n:nacm/n:groups/n:group[n:name='{ROOT_SYSTEM}']/n:user-name", namespaces=NS) == "admin"
    assert AccessControl(yang, lambda: root).write_guard("admin") is None
    assert "user admin created" in changes and f"admin added to group {ROOT_SYSTEM}" in changes


def test_restore_admin_on_a_configuration_without_nacm(yang: YangSupport) -> None:
    root = new_root()
    root.append(admin_account(hash_password("old")))
    restore_admin(root, hash_password("new"))
    assert yang.validate(root, full=True)
    assert AccessControl(yang, lambda: root).write_guard("admin") is None
