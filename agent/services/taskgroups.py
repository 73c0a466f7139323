"""The router's task groups as NACM configuration (RFC 8341), and the admin user.

IOS XR grants commands through user groups bound to task groups of task IDs;
here a NACM group plays the user group and its rule-list the task group:

* ``root-system`` -- everything (XR's root-system). ``admin`` is its member.
* ``pki-admin`` -- the crypto configuration and state, and every crypto RPC
  (XR's ``crypto`` task ID, read/write/execute). Nothing else may be written.
* ``operator`` -- read-only: reads what is not secret (read-default permit;
  the password hashes and ``/nacm`` are ``nacm:default-deny-all``), may not
  edit, copy, commit, lock, discard or kill sessions, nor run any crypto RPC.

A user in no group gets only RFC 8341's defaults: read what is not secret,
write nothing, run the base operations but no RPC marked default-deny-all.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from agent.xmltree import default_ns

NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
SYS_NS = "urn:ca-agent:yang:system"

ADMIN_USER = "admin"
ROOT_SYSTEM = "root-system"
PKI_ADMIN = "pki-admin"
OPERATOR = "operator"

# Base operations that change a datastore (or hold it), denied to operator.
_OPERATOR_DENIED = (
    "edit-config", "copy-config", "delete-config", "commit", "cancel-commit",
    "discard-changes", "lock", "unlock", "kill-session",
)


def _n(name: str) -> str:
    return f"{{{NACM_NS}}}{name}"


def _leaf(parent: etree._Element, name: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, _n(name))
    element.text = text
    return element


def _rule(parent: etree._Element, name: str, leaves: Sequence[tuple[str, str]]) -> None:
    rule = etree.SubElement(parent, _n("rule"))
    _leaf(rule, "name", name)
    for leaf, value in leaves:
        _leaf(rule, leaf, value)


def root_system_rule_list() -> etree._Element:
    """The rule-list of group root-system: one rule permitting everything."""
    rule_list = etree.Element(_n("rule-list"), nsmap=default_ns(NACM_NS))
    _leaf(rule_list, "name", ROOT_SYSTEM)
    _leaf(rule_list, "group", ROOT_SYSTEM)
    _rule(
        rule_list,
        "permit-all",
        (("module-name", "*"), ("access-operations", "*"), ("action", "permit"),
         ("comment", "IOS XR root-system: every operation, every node, every notification.")),
    )
    return rule_list


def _pki_admin_rule_list() -> etree._Element:
    rule_list = etree.Element(_n("rule-list"), nsmap=default_ns(NACM_NS))
    _leaf(rule_list, "name", PKI_ADMIN)
    _leaf(rule_list, "group", PKI_ADMIN)
    _rule(
        rule_list,
        "crypto",
        (("module-name", "ca-agent-crypto"), ("access-operations", "*"), ("action", "permit"),
         ("comment", "IOS XR crypto task ID: /crypto configuration and state, and every crypto RPC.")),
    )

    return rule_list


def _operator_rule_list() -> etree._Element:
    rule_list = etree.Element(_n("rule-list"), nsmap=default_ns(NACM_NS))
    _leaf(rule_list, "name", OPERATOR)
    _leaf(rule_list, "group", OPERATOR)
    for operation in _OPERATOR_DENIED:
        _rule(
            rule_list,
            f"deny-{operation}",
            (("module-name", "ietf-netconf"), ("rpc-name", operation), ("access-operations", "exec"),
             ("action", "deny")),
        )
    _rule(
        rule_list,
        "deny-crypto-rpcs",
        (("module-name", "ca-agent-crypto"), ("rpc-name", "*"), ("access-operations", "exec"), ("action", "deny"),
         ("comment", "Read-only: no key or CA operation. Reads follow read-default (permit), secrets stay hidden.")),
    )
    return rule_list


def default_access_config(admin: str = ADMIN_USER) -> etree._Element:
    """``/nacm`` of a first start: the three task groups, ``admin`` in root-system. Raises nothing."""
    nacm = etree.Element(_n("nacm"), nsmap=default_ns(NACM_NS))
    groups = etree.SubElement(nacm, _n("groups"))
    for name, members in ((ROOT_SYSTEM, [admin]), (PKI_ADMIN, []), (OPERATOR, [])):
        group = etree.SubElement(groups, _n("group"))
        _leaf(group, "name", name)
        for member in members:
            _leaf(group, "user-name", member)
    nacm.append(root_system_rule_list())
    nacm.append(_pki_admin_rule_list())
    nacm.append(_operator_rule_list())
    return nacm


def admin_account(password_hash: str, admin: str = ADMIN_USER) -> etree._Element:
    """``/aaa`` with the one user ``admin``. Raises nothing."""
    aaa = etree.Element(f"{{{SYS_NS}}}aaa", nsmap=default_ns(SYS_NS))
    user = etree.SubElement(aaa, f"{{{SYS_NS}}}user")
    etree.SubElement(user, f"{{{SYS_NS}}}name").text = admin
    etree.SubElement(user, f"{{{SYS_NS}}}password-hash").text = password_hash
    return aaa


def restore_admin(root: etree._Element, password_hash: str, admin: str = ADMIN_USER) -> list[str]:
    """Give ``admin`` back the password and root-system, in place, in a configuration tree.

    Sets the user's password hash (creating the user if needed), puts it in
    group root-system (creating the group), and makes root-system's rule-list
    the canonical permit-all one and the first rule-list (so no earlier rule
    can deny it). NACM is enabled or not as it was. Returns what was changed,
    for the log. Raises nothing.
    """
    changes: list[str] = []
    aaa = root.find(f"{{{SYS_NS}}}aaa")
    if aaa is None:
        aaa = etree.SubElement(root, f"{{{SYS_NS}}}aaa", nsmap=default_ns(SYS_NS))
    user = next((u for u in aaa.iterfind(f"{{{SYS_NS}}}user") if u.findtext(f"{{{SYS_NS}}}name") == admin), None)
    if user is None:
        user = etree.SubElement(aaa, f"{{{SYS_NS}}}user")
        etree.SubElement(user, f"{{{SYS_NS}}}name").text = admin
        changes.append(f"user {admin} created")
    hash_el = user.find(f"{{{SYS_NS}}}password-hash")
    if hash_el is None:
        hash_el = etree.SubElement(user, f"{{{SYS_NS}}}password-hash")
    hash_el.text = password_hash
    changes.append(f"password of {admin} reset")

    nacm = root.find(_n("nacm"))
    if nacm is None:
        nacm = etree.SubElement(root, _n("nacm"), nsmap=default_ns(NACM_NS))
    groups = nacm.find(_n("groups"))
    if groups is None:
        groups = etree.Element(_n("groups"))
        _insert_before_lists(nacm, groups)
    group = next((g for g in groups.iterfind(_n("group")) if g.findtext(_n("name")) == ROOT_SYSTEM), None)
    if group is None:
        group = etree.SubElement(groups, _n("group"))
        _leaf(group, "name", ROOT_SYSTEM)
        changes.append(f"group {ROOT_SYSTEM} created")
    if admin not in [(u.text or "").strip() for u in group.iterfind(_n("user-name"))]:
        _leaf(group, "user-name", admin)
        changes.append(f"{admin} added to group {ROOT_SYSTEM}")
    for old in [r for r in nacm.iterfind(_n("rule-list")) if r.findtext(_n("name")) == ROOT_SYSTEM]:
        nacm.remove(old)
    first_list = nacm.find(_n("rule-list"))
    canonical = root_system_rule_list()
    if first_list is None:
        nacm.append(canonical)
    else:
        first_list.addprevious(canonical)
    changes.append(f"rule-list {ROOT_SYSTEM} restored (permit-all, first)")
    return changes


def _insert_before_lists(nacm: etree._Element, groups: etree._Element) -> None:
    first_list = nacm.find(_n("rule-list"))
    if first_list is None:
        nacm.append(groups)
    else:
        first_list.addprevious(groups)
