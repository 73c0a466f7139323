"""What a <get> subtree filter can select: the scope that narrows state and running before the filter."""

from __future__ import annotations

from lxml import etree

from agent.netconf.scope import EVERYTHING, pruned, scope_of

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
C = "urn:ca-agent:yang:crypto"
S = "urn:ca-agent:yang:system"
TP = (f"{{{C}}}crypto", f"{{{C}}}ca", f"{{{C}}}trustpoint")
NAME = f"{{{C}}}name"


def flt(body: str, kind: str = "subtree") -> etree._Element:
    return etree.fromstring(f'<filter xmlns="{NC}" type="{kind}">{body}</filter>')


def test_top_tags_and_keys_of_a_one_trustpoint_filter() -> None:
    scope = scope_of(flt(f'<crypto xmlns="{C}"><ca><trustpoint><name>tp5</name></trustpoint></ca></crypto>'))
    assert scope.top_tags() == {TP[0]}
    assert scope.wants([TP[0]]) and not scope.wants([f"{{{S}}}hostname"])
    assert scope.list_keys(TP, NAME) == {"tp5"}


def test_anything_else_selects_every_entry() -> None:
    for body in (
        f'<crypto xmlns="{C}"/>',  # selection node
        f'<crypto xmlns="{C}"><ca/></crypto>',
        f'<crypto xmlns="{C}"><ca><trustpoint/></ca></crypto>',
        f'<crypto xmlns="{C}"><ca><trustpoint><rsakeypair>k</rsakeypair></trustpoint></ca></crypto>',
        f'<crypto xmlns="{C}"><ca><trustpoint><name>a</name></trustpoint><trustpoint/></ca></crypto>',
        '<crypto xmlns=""><ca><trustpoint><name>a</name></trustpoint></ca></crypto>',  # any namespace
    ):
        assert scope_of(flt(body)).list_keys(TP, NAME) is None, body
    assert scope_of(flt('<crypto xmlns=""/>')).top_tags() is None
    # <filter><crypto/></filter> under the rpc's default xmlns: the node is in the base namespace,
    # which the filter treats as "any namespace" (ncclient and Ansible send it so)
    assert scope_of(flt("<crypto/>")).top_tags() is None
    assert scope_of(flt("<crypto><ca><trustpoint><name>a</name></trustpoint></ca></crypto>")).list_keys(
        TP, NAME) is None
    assert scope_of(flt(f'<crypto xmlns="{C}"/>', kind="xpath")) is EVERYTHING
    assert scope_of(None).top_tags() is None


def test_pruned_keeps_only_what_can_be_selected() -> None:
    root = etree.fromstring(
        f'<data xmlns="{NC}"><hostname xmlns="{S}">h</hostname><crypto xmlns="{C}"><ca>'
        "<trustpoint><name>a</name></trustpoint><trustpoint><name>b</name></trustpoint>"
        "<trustpool><policy/></trustpool></ca></crypto></data>")
    scope = scope_of(flt(f'<crypto xmlns="{C}"><ca><trustpoint><name>b</name></trustpoint></ca></crypto>'))
    out = pruned(root, scope, [(TP, NAME)])
    assert [etree.QName(c).localname for c in out] == ["crypto"]
    assert [e.findtext(NAME) for e in out.iter(TP[2])] == ["b"]
    assert out.find(f"{{{C}}}crypto/{{{C}}}ca/{{{C}}}trustpool") is not None  # not a list the scope narrows
    assert len(root.findall(f".//{TP[2]}")) == 2  # the original is untouched


KEY = (TP[0], f"{{{C}}}key")


def test_can_select_follows_the_filters_containment_nodes() -> None:
    one_tp = scope_of(flt(f'<crypto xmlns="{C}"><ca><trustpoint><name>tp5</name></trustpoint></ca></crypto>'))
    assert one_tp.can_select(TP) and one_tp.can_select(TP[:2])
    assert not one_tp.can_select(KEY)  # /crypto/key: the key pairs' state is not even made
    assert not one_tp.can_select((f"{{{S}}}hostname",))
    keys = scope_of(flt(f'<crypto xmlns="{C}"><key/></crypto>'))
    assert keys.can_select(KEY) and keys.can_select((*KEY, f"{{{C}}}rsa")) and not keys.can_select(TP)
    pool = (*TP[:2], f"{{{C}}}trustpool")
    assert not one_tp.can_select(pool)  # the trustpool's state is not made for a <get> of one trustpoint
    assert not one_tp.can_select(pool)  # the same answer when asked again (kept per request)
    assert scope_of(flt(f'<crypto xmlns="{C}"><ca><trustpool/></ca></crypto>')).can_select(pool)
    assert scope_of(flt(f'<crypto xmlns="{C}"><ca/></crypto>')).can_select(pool)


def test_can_select_is_true_whenever_it_cannot_tell() -> None:
    for body in (
        f'<crypto xmlns="{C}"/>',  # selection node: everything below
        '<crypto xmlns=""><ca/></crypto>',  # no namespace: any namespace
        f'<crypto xmlns="{C}"><ca/><key/></crypto>',
        f'<crypto xmlns="{C}"><flag>x</flag></crypto>',  # only content match nodes: the whole sibling set
    ):
        assert scope_of(flt(body)).can_select(KEY), body
    assert EVERYTHING.can_select(KEY)
    assert scope_of(flt("<x/>", kind="xpath")).can_select(KEY)
