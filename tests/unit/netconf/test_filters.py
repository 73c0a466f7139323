"""Subtree (RFC 6241 section 6) and XPath (section 8.9) filters on lxml trees.

The subtree tests replay the RFC 6241 §6.4 examples with the example
namespace renamed to urn:example:users (and urn:example:stats for §6.4.8).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from agent.errors import NetconfError
from agent.netconf import filters
from agent.netconf.budget import Meter
from agent.netconf.filters import MAX_SUBTREE_FILTER_NODES, MAX_XPATH_LENGTH, NC_NS, FilterBudget, apply_filter

USERS = "urn:example:users"
STATS = "urn:example:stats"
CRYPTO = "urn:example:crypto"

KEYS: dict[str, list[str]] = {
    f"{{{USERS}}}user": [f"{{{USERS}}}name"],
    f"{{{STATS}}}interface": [],
    f"{{{CRYPTO}}}trustpoint": [f"{{{CRYPTO}}}name"],
}


def keys_of(element: etree._Element) -> Sequence[str]:
    return KEYS.get(element.tag, [])


DATA = f"""
<data xmlns="{NC_NS}">
  <top xmlns="{USERS}">
    <users>
      <user>
        <name>root</name>
        <type>superuser</type>
        <full-name>Charlie Root</full-name>
        <company-info>
          <dept>1</dept>
          <id>1</id>
        </company-info>
      </user>
      <user>
        <name>fred</name>
        <type>admin</type>
        <full-name>Fred Flintstone</full-name>
        <company-info>
          <dept>2</dept>
          <id>2</id>
        </company-info>
      </user>
      <user>
        <name>barney</name>
        <type>admin</type>
        <full-name>Barney Rubble</full-name>
        <company-info>
          <dept>2</dept>
          <id>3</id>
        </company-info>
      </user>
    </users>
  </top>
  <t:top xmlns:t="{STATS}">
    <t:interfaces>
      <t:interface t:ifName="eth0">
        <t:ifInOctets>45621</t:ifInOctets>
        <t:ifOutOctets>774344</t:ifOutOctets>
      </t:interface>
      <t:interface t:ifName="eth1">
        <t:ifInOctets>1</t:ifInOctets>
        <t:ifOutOctets>2</t:ifOutOctets>
      </t:interface>
    </t:interfaces>
  </t:top>
  <crypto xmlns="{CRYPTO}">
    <ca>
      <trustpoint>
        <name>x</name>
        <enrollment><url>http://ca.example/x</url></enrollment>
      </trustpoint>
      <trustpoint>
        <name>y</name>
        <enrollment><url>http://ca.example/y</url></enrollment>
      </trustpoint>
    </ca>
  </crypto>
</data>
"""

USERS_SUBTREE = """
<users>
  <user><name>root</name><type>superuser</type><full-name>Charlie Root</full-name>
    <company-info><dept>1</dept><id>1</id></company-info></user>
  <user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name>
    <company-info><dept>2</dept><id>2</id></company-info></user>
  <user><name>barney</name><type>admin</type><full-name>Barney Rubble</full-name>
    <company-info><dept>2</dept><id>3</id></company-info></user>
</users>
"""


def data_tree() -> etree._Element:
    return etree.fromstring(DATA)


def make_filter(inner: str = "", **attributes: str) -> etree._Element:
    """A <filter> inside an <rpc> that declares the example prefixes, as a client sends it."""
    attrs = "".join(f' {name}="{value}"' for name, value in attributes.items())
    rpc = etree.fromstring(
        f'<rpc xmlns="{NC_NS}" message-id="1" xmlns:u="{USERS}" xmlns:c="{CRYPTO}">'
        f"<get><filter{attrs}>{inner}</filter></get></rpc>"
    )
    filter_el = rpc.find(f"{{{NC_NS}}}get/{{{NC_NS}}}filter")
    assert filter_el is not None
    return filter_el


def shape(element: etree._Element) -> tuple[object, ...]:
    """A comparable form: tag, attributes, stripped text, children (whitespace ignored)."""
    children = [shape(child) for child in element if isinstance(child.tag, str)]
    text = (element.text or "").strip() if not children else ""
    return (element.tag, sorted(element.attrib.items()), text, children)


def expected(inner: str) -> tuple[object, ...]:
    return shape(etree.fromstring(f'<data xmlns="{NC_NS}">{inner}</data>'))


def users_reply(inner: str) -> tuple[object, ...]:
    return expected(f'<top xmlns="{USERS}">{inner}</top>')


def run(inner: str = "", **attributes: str) -> etree._Element:
    return apply_filter(data_tree(), make_filter(inner, **attributes), keys_of)


# --------------------------------------------------------------------------
# no filter, empty filter (RFC 6241 6.4.1, 6.4.2)
# --------------------------------------------------------------------------


def test_no_filter_returns_a_copy_of_everything() -> None:
    data = data_tree()
    result = apply_filter(data, None, keys_of)
    assert result is not data
    assert shape(result) == shape(data)
    assert result.tag == f"{{{NC_NS}}}data"
    result[0].clear()
    assert shape(data) == shape(data_tree())


@pytest.mark.parametrize("inner", ["", "   \n  "])
def test_empty_filter_selects_nothing(inner: str) -> None:
    result = run(inner, type="subtree")
    assert result.tag == f"{{{NC_NS}}}data"
    assert len(result) == 0


def test_type_defaults_to_subtree() -> None:
    assert shape(run(f'<top xmlns="{USERS}"><users/></top>')) == users_reply(USERS_SUBTREE)


# --------------------------------------------------------------------------
# subtree filtering, RFC 6241 6.4.3 - 6.4.8
# --------------------------------------------------------------------------


def test_6_4_3_select_entire_users_subtree() -> None:
    result = run(f'<top xmlns="{USERS}"><users/></top>', type="subtree")
    assert shape(result) == users_reply(USERS_SUBTREE)


def test_6_4_3_selection_of_only_child_gives_same_result() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user/></users></top>', type="subtree")
    assert shape(result) == users_reply(USERS_SUBTREE)


def test_6_4_4_all_name_elements() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><name/></user></users></top>', type="subtree")
    assert shape(result) == users_reply(
        "<users><user><name>root</name></user><user><name>fred</name></user><user><name>barney</name></user></users>"
    )


def test_6_4_5_one_specific_user_entry() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><name>fred</name></user></users></top>', type="subtree")
    assert shape(result) == users_reply(
        "<users><user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name>"
        "<company-info><dept>2</dept><id>2</id></company-info></user></users>"
    )


def test_6_4_6_specific_elements_from_a_specific_user() -> None:
    result = run(
        f'<top xmlns="{USERS}"><users><user><name>fred</name><type/><full-name/></user></users></top>',
        type="subtree",
    )
    assert shape(result) == users_reply(
        "<users><user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name></user></users>"
    )


def test_6_4_7_multiple_subtrees() -> None:
    result = run(
        f"""<top xmlns="{USERS}"><users>
              <user><name>root</name><company-info/></user>
              <user><name>fred</name><company-info><id/></company-info></user>
              <user><name>barney</name><type>superuser</type><company-info><dept/></company-info></user>
            </users></top>""",
        type="subtree",
    )
    assert shape(result) == users_reply(
        "<users>"
        "<user><name>root</name><company-info><dept>1</dept><id>1</id></company-info></user>"
        "<user><name>fred</name><company-info><id>2</id></company-info></user>"
        "</users>"
    )


def test_6_4_8_attribute_match_expression() -> None:
    result = run(
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth0"/></t:interfaces></t:top>',
        type="subtree",
    )
    assert shape(result) == expected(
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth0">'
        "<t:ifInOctets>45621</t:ifInOctets><t:ifOutOctets>774344</t:ifOutOctets>"
        "</t:interface></t:interfaces></t:top>"
    )


def test_attribute_match_without_that_attribute_value_selects_nothing() -> None:
    result = run(
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth9"/></t:interfaces></t:top>',
        type="subtree",
    )
    assert len(result) == 0


def test_unqualified_attribute_does_not_match_qualified_one() -> None:
    # RFC 6241 6.4.8: the attribute must be qualified to be in the stats namespace.
    result = run(
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface ifName="eth0"/></t:interfaces></t:top>',
        type="subtree",
    )
    assert len(result) == 0


# --------------------------------------------------------------------------
# subtree filtering: namespaces, content match, keys, merging
# --------------------------------------------------------------------------


def test_element_without_namespace_matches_any_namespace() -> None:
    result = run('<top xmlns=""><users><user><name>fred</name><type/></user></users></top>')
    assert shape(result) == users_reply("<users><user><name>fred</name><type>admin</type></user></users>")


def test_namespace_less_top_matches_every_module_with_that_name() -> None:
    result = run('<top xmlns=""/>')
    assert [child.tag for child in result] == [f"{{{USERS}}}top", f"{{{STATS}}}top"]


def test_namespace_mismatch_selects_nothing() -> None:
    result = run('<top xmlns="urn:example:other"><users/></top>')
    assert len(result) == 0


def test_content_match_siblings_are_anded() -> None:
    both = run(f'<top xmlns="{USERS}"><users><user><name>fred</name><type>admin</type></user></users></top>')
    assert [n.text for n in both.iter(f"{{{USERS}}}name")] == ["fred"]
    assert both.find(f".//{{{USERS}}}company-info") is not None  # no selection node: whole entry

    neither = run(f'<top xmlns="{USERS}"><users><user><name>fred</name><type>superuser</type></user></users></top>')
    assert len(neither) == 0


def test_content_match_selects_every_matching_entry_with_selection_siblings() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><type>admin</type><full-name/></user></users></top>')
    assert shape(result) == users_reply(
        "<users>"
        "<user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name></user>"
        "<user><name>barney</name><type>admin</type><full-name>Barney Rubble</full-name></user>"
        "</users>"
    )


def test_content_match_ignores_surrounding_whitespace() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><name>\n  fred  \n</name><type/></user></users></top>')
    assert shape(result) == users_reply("<users><user><name>fred</name><type>admin</type></user></users>")


def test_whitespace_only_text_is_a_selection_node() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><name>   </name></user></users></top>')
    assert [n.text for n in result.iter(f"{{{USERS}}}name")] == ["root", "fred", "barney"]


def test_list_keys_are_included_when_a_nested_node_matches() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><company-info><id/></company-info></user></users></top>')
    assert shape(result) == users_reply(
        "<users>"
        "<user><name>root</name><company-info><id>1</id></company-info></user>"
        "<user><name>fred</name><company-info><id>2</id></company-info></user>"
        "<user><name>barney</name><company-info><id>3</id></company-info></user>"
        "</users>"
    )


def test_nested_content_match_selects_only_matching_entries() -> None:
    result = run(f'<top xmlns="{USERS}"><users><user><company-info><dept>2</dept></company-info></user></users></top>')
    assert shape(result) == users_reply(
        "<users>"
        "<user><name>fred</name><company-info><dept>2</dept><id>2</id></company-info></user>"
        "<user><name>barney</name><company-info><dept>2</dept><id>3</id></company-info></user>"
        "</users>"
    )


def test_overlapping_sibling_subtrees_merge_in_document_order() -> None:
    result = run(
        f"""<top xmlns="{USERS}"><users>
              <user><name>barney</name><full-name/></user>
              <user><name>fred</name><company-info><id/></company-info></user>
              <user><name>fred</name><company-info/></user>
              <user><name>fred</name><type/></user>
            </users></top>"""
    )
    assert shape(result) == users_reply(
        "<users>"
        "<user><name>fred</name><type>admin</type><company-info><dept>2</dept><id>2</id></company-info></user>"
        "<user><name>barney</name><full-name>Barney Rubble</full-name></user>"
        "</users>"
    )


def test_top_level_subtrees_in_different_namespaces() -> None:
    result = run(
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth1"><t:ifInOctets/>'
        f'</t:interface></t:interfaces></t:top><top xmlns="{USERS}"><users><user><name>root</name>'
        "<type/></user></users></top>"
    )
    assert shape(result) == expected(
        f'<top xmlns="{USERS}"><users><user><name>root</name><type>superuser</type></user></users></top>'
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth1"><t:ifInOctets>1</t:ifInOctets>'
        "</t:interface></t:interfaces></t:top>"
    )


def test_filter_comments_are_ignored() -> None:
    result = run(f'<top xmlns="{USERS}"><!-- who? --><users><user><name/><!-- x --></user></users></top>')
    assert [n.text for n in result.iter(f"{{{USERS}}}name")] == ["root", "fred", "barney"]


# --------------------------------------------------------------------------
# XPath filtering (RFC 6241 8.9)
# --------------------------------------------------------------------------


def xpath(select: str) -> etree._Element:
    return run(type="xpath", select=select)


def test_xpath_absolute_path_with_predicate() -> None:
    result = xpath("/c:crypto/c:ca/c:trustpoint[c:name='x']")
    assert shape(result) == expected(
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>x</name>'
        "<enrollment><url>http://ca.example/x</url></enrollment></trustpoint></ca></crypto>"
    )


def test_xpath_top_level_node() -> None:
    result = xpath("/c:crypto")
    assert [child.tag for child in result] == [f"{{{CRYPTO}}}crypto"]
    assert len(result.findall(f".//{{{CRYPTO}}}trustpoint")) == 2


def test_xpath_relative_path_starts_at_the_top_level_nodes() -> None:
    assert shape(xpath("c:crypto")) == shape(xpath("/c:crypto"))


def test_xpath_selecting_a_leaf_includes_ancestors_and_keys() -> None:
    result = xpath("/u:top/u:users/u:user[u:name='fred']/u:type")
    assert shape(result) == users_reply("<users><user><name>fred</name><type>admin</type></user></users>")


def test_xpath_selecting_a_text_node_selects_its_leaf() -> None:
    result = xpath("//u:user[u:name='barney']/u:full-name/text()")
    assert shape(result) == users_reply(
        "<users><user><name>barney</name><full-name>Barney Rubble</full-name></user></users>"
    )


def test_xpath_selecting_an_attribute_selects_its_element() -> None:
    result = run(type="xpath", select="//s:interface/@s:ifName[. = 'eth1']", **{"xmlns:s": STATS})
    assert [i.get(f"{{{STATS}}}ifName") for i in result.iter(f"{{{STATS}}}interface")] == ["eth1"]
    assert result.findtext(f".//{{{STATS}}}ifOutOctets") == "2"


def test_xpath_union_keeps_document_order() -> None:
    result = xpath("/u:top/u:users/u:user[u:name='barney'] | /u:top/u:users/u:user[u:name='root']/u:full-name")
    assert shape(result) == users_reply(
        "<users>"
        "<user><name>root</name><full-name>Charlie Root</full-name></user>"
        "<user><name>barney</name><type>admin</type><full-name>Barney Rubble</full-name>"
        "<company-info><dept>2</dept><id>3</id></company-info></user>"
        "</users>"
    )


def test_xpath_union_across_modules() -> None:
    result = xpath("/c:crypto/c:ca/c:trustpoint[c:name='y']/c:enrollment/c:url | //u:user[u:name='root']/u:type")
    assert shape(result) == expected(
        f'<top xmlns="{USERS}"><users><user><name>root</name><type>superuser</type></user></users></top>'
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>y</name><enrollment>'
        "<url>http://ca.example/y</url></enrollment></trustpoint></ca></crypto>"
    )


def test_xpath_overlapping_selections_are_merged() -> None:
    result = xpath("//u:name | /u:top/u:users | //u:user[u:name='fred']/u:company-info/u:id")
    assert shape(result) == users_reply(USERS_SUBTREE)


def test_xpath_root_selects_everything() -> None:
    assert shape(xpath("/")) == shape(data_tree())


def test_xpath_selecting_nothing_gives_empty_data() -> None:
    result = xpath("/u:top/u:users/u:user[u:name='wilma']")
    assert result.tag == f"{{{NC_NS}}}data"
    assert len(result) == 0


def test_xpath_nodes_outside_data_are_ignored() -> None:
    assert len(xpath("/..")) == 0


def test_xpath_uses_prefixes_declared_on_the_rpc_ancestor() -> None:
    filter_el = make_filter(type="xpath", select="/c:crypto/c:ca/c:trustpoint[c:name='y']/c:name")
    rpc = filter_el.getroottree().getroot()
    assert rpc.nsmap["c"] == CRYPTO  # make_filter declares "c" on <rpc> only
    result = apply_filter(data_tree(), filter_el, keys_of)
    assert [n.text for n in result.iter(f"{{{CRYPTO}}}name")] == ["y"]


def test_xpath_uses_prefixes_declared_on_the_filter_element() -> None:
    result = run(type="xpath", select="/s:top/s:interfaces/s:interface[@s:ifName='eth0']", **{"xmlns:s": STATS})
    assert [i.get(f"{{{STATS}}}ifName") for i in result.iter(f"{{{STATS}}}interface")] == ["eth0"]


@pytest.mark.parametrize(
    "select",
    ["string(/u:top/u:users/u:user/u:name)", "count(//u:user)", "count(//u:user) > 1", "'fred'"],
)
def test_xpath_result_that_is_not_a_node_set_is_an_error(select: str) -> None:
    with pytest.raises(NetconfError) as caught:
        xpath(select)
    assert caught.value.error_tag == "invalid-value"
    assert caught.value.error_type == "protocol"
    assert "node-set" in caught.value.message


@pytest.mark.parametrize("select", ["/u:top/u:users[", "/u:top/@@", "/u:top/u:users/u:user[u:name='x'", "///"])
def test_xpath_bad_syntax_is_an_error(select: str) -> None:
    with pytest.raises(NetconfError) as caught:
        xpath(select)
    assert caught.value.error_tag == "invalid-value"
    assert caught.value.error_type == "protocol"
    assert select in caught.value.message


def test_xpath_unknown_prefix_is_an_error() -> None:
    with pytest.raises(NetconfError) as caught:
        xpath("/nope:top/u:users")
    assert caught.value.error_tag == "invalid-value"
    assert caught.value.error_type == "protocol"
    assert "'nope'" in caught.value.message


def test_xpath_unbound_variable_is_an_error() -> None:
    with pytest.raises(NetconfError) as caught:
        xpath("$users/u:user")
    assert caught.value.error_tag == "invalid-value"


def test_xpath_without_select_is_an_error() -> None:
    with pytest.raises(NetconfError) as caught:
        run(type="xpath")
    assert caught.value.error_tag == "missing-attribute"
    assert caught.value.info == {"bad-attribute": "select", "bad-element": "filter"}


def test_unknown_filter_type_is_an_error() -> None:
    with pytest.raises(NetconfError) as caught:
        run(type="jsonpath")
    assert caught.value.error_tag == "bad-attribute"
    assert caught.value.info == {"bad-attribute": "type", "bad-element": "filter"}


# --------------------------------------------------------------------------
# purity and performance
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "attributes"),
    [
        (f'<top xmlns="{USERS}"><users><user><name>fred</name><type/></user></users></top>', {}),
        (f'<top xmlns="{USERS}"><users/></top>', {}),
        ("", {"type": "xpath", "select": "//u:user[u:name='fred']/u:type | /c:crypto"}),
        ("", {"type": "xpath", "select": "/"}),
    ],
)
def test_input_is_not_mutated(inner: str, attributes: dict[str, str]) -> None:
    data = data_tree()
    filter_el = make_filter(inner, **attributes)
    before_data = etree.tostring(data)
    before_filter = etree.tostring(filter_el.getroottree())
    result = apply_filter(data, filter_el, keys_of)
    assert etree.tostring(data) == before_data
    assert etree.tostring(filter_el.getroottree()) == before_filter
    originals = set(data.iter())
    assert not any(node in originals for node in result.iter())
    # editing the result leaves the input alone
    for node in list(result.iter()):
        node.text = "changed"
    assert etree.tostring(data) == before_data


def big_datastore(entries: int) -> etree._Element:
    users = "".join(
        f"<user><name>u{i}</name><type>admin</type><full-name>User {i}</full-name>"
        f"<company-info><dept>{i % 7}</dept><id>{i}</id></company-info></user>"
        for i in range(entries)
    )
    return etree.fromstring(f'<data xmlns="{NC_NS}"><top xmlns="{USERS}"><users>{users}</users></top></data>')


def test_one_of_a_thousand_entries_selected_by_key() -> None:
    """Subtree and XPath select exactly the keyed entry (timing: bench/micro.py)."""
    data = big_datastore(1000)
    subtree = make_filter(f'<top xmlns="{USERS}"><users><user><name>u737</name></user></users></top>')
    by_xpath = make_filter(type="xpath", select="/u:top/u:users/u:user[u:name='u737']")
    for filter_el in (subtree, by_xpath):
        result = apply_filter(data, filter_el, keys_of)
        users = result.findall(f"{{{USERS}}}top/{{{USERS}}}users/{{{USERS}}}user")
        assert [u.findtext(f"{{{USERS}}}name") for u in users] == ["u737"]
        assert [n.text for n in result.iter(f"{{{USERS}}}id")] == ["737"]


# --------------------------------------------------------------------------
# many list entries asked for by key: grouped once, same result
# --------------------------------------------------------------------------

_NAMES = ["root", "fred", "barney", "wilma", "betty", "dino"]


def _users_data(users: list[tuple[str, str, str]]) -> etree._Element:
    entries = "".join(
        f"<user><name>{name}</name><type>{kind}</type><company-info><dept>{dept}</dept></company-info></user>"
        for name, kind, dept in users
    )
    return etree.fromstring(f'<data xmlns="{NC_NS}"><top xmlns="{USERS}"><users>{entries}</users></top></data>')


_user_filter = st.tuples(
    st.sampled_from([*_NAMES, "nobody", " fred "]),  # the name to match (absent ones, whitespace too)
    st.sampled_from([  # what else the entry node asks for
        "", "<u:type>admin</u:type>", "<u:type/>", "<u:full-name/>", "<u:company-info><u:dept>2</u:dept></u:company-info>",
        "<u:company-info/>", '<name xmlns="">x</name>',
    ]),
)


@settings(max_examples=300, deadline=None)
@given(
    users=st.lists(
        st.tuples(st.sampled_from(_NAMES), st.sampled_from(["admin", "superuser"]), st.sampled_from(["1", "2"])),
        max_size=8,
    ),
    asked=st.lists(_user_filter, min_size=1, max_size=12),
)
def test_entries_asked_for_by_key_match_as_one_by_one(
    users: list[tuple[str, str, str]], asked: list[tuple[str, str]]
) -> None:
    entries = "".join(f"<u:user><u:name>{name}</u:name>{rest}</u:user>" for name, rest in asked)
    filter_el = make_filter(f"<u:top><u:users>{entries}</u:users></u:top>")
    grouped = apply_filter(_users_data(users), filter_el, keys_of)
    saved = filters._KEYED_FROM
    filters._KEYED_FROM = 10**9  # every node matched on its own, against every entry
    try:
        one_by_one = apply_filter(_users_data(users), filter_el, keys_of)
    finally:
        filters._KEYED_FROM = saved
    assert shape(grouped) == shape(one_by_one)


class _CountingBudget(FilterBudget):
    """Keeps the meters it hands out, to read their step counts."""

    made: list[Meter] = []

    def meter(self, hint: str = "") -> Meter:
        self.made.append(super().meter(hint))
        return self.made[-1]


def test_a_thousand_entries_asked_for_by_key_cost_steps_in_proportion() -> None:
    """Before: each of the filter's 1,000 entry nodes scanned all 2,000 entries (2 million steps)."""
    users = [(f"user{i}", "admin", "1") for i in range(2000)]
    entries = "".join(f"<u:user><u:name>user{i}</u:name><u:type/></u:user>" for i in range(0, 2000, 2))
    budget = _CountingBudget()
    result = apply_filter(_users_data(users), make_filter(f"<u:top><u:users>{entries}</u:users></u:top>"), keys_of,
                          budget=budget)
    assert len(result.findall(f".//{{{USERS}}}user")) == 1000
    assert sum(meter.steps for meter in budget.made) < 20_000


def test_a_subtree_filter_of_more_than_100_000_nodes_is_too_big() -> None:
    """Planned node by node before it is metered: 350,000 empty nodes took 1.7 s and 176 MB."""
    assert run(f"<u:top>{'<u:x/>' * (MAX_SUBTREE_FILTER_NODES - 1)}</u:top>") is not None  # at the limit
    with pytest.raises(NetconfError) as refused:
        run(f"<u:top>{'<u:x/>' * MAX_SUBTREE_FILTER_NODES}</u:top>")
    assert refused.value.error_tag == "too-big"


def test_an_xpath_expression_longer_than_256_kib_is_too_big() -> None:
    """Its tokens are Python objects before libxml2 compiles it: a 4.9 MB expression took 2.1 s and 320 MB."""
    longest = "/u:top" + " " * (MAX_XPATH_LENGTH - len("/u:top"))
    assert run(type="xpath", select=longest) is not None
    with pytest.raises(NetconfError) as refused:
        run(type="xpath", select=longest + " ")
    assert refused.value.error_tag == "too-big"


def test_an_error_quotes_at_most_200_characters_of_the_expression() -> None:
    with pytest.raises(NetconfError) as refused:
        run(type="xpath", select="count(/u:top" + "|/u:top" * 1000 + ")")
    message = str(refused.value)
    assert "evaluates to a number" in message and "(7013 characters)" in message and len(message) < 400
