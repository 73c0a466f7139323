"""The commit database's renderers and grammar: XR's commit list, changes as router lines, ids offered by `?`/Tab.

(The same against the real agent, through ca-cli: tests/e2e/cli/test_cli_commit_history.py.)"""

from __future__ import annotations

import pytest
from lxml import etree

from agent.cli.commands import Mode, tree
from agent.cli.grammar import ParseError, completions, help_entries, parse
from agent.cli.history_render import (
    ChangeView,
    Step,
    change_lines,
    commits_of,
    list_time,
    parse_instance_identifier,
    render_commit_changes,
    render_commit_detail,
    render_commit_list,
)

SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
TP = "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='myca']"


def history(*commits: str) -> etree._Element:
    return etree.fromstring(f'<data xmlns="{NC}"><commit-history xmlns="{SYS}">{"".join(commits)}</commit-history></data>')


def commit(cid: str, user: str, sid: str, when: str, kind: str, extra: str = "") -> str:
    return (f"<commit><id>{cid}</id><user>{user}</user><session-id>{sid}</session-id><timestamp>{when}</timestamp>"
            f"<kind>{kind}</kind>{extra}</commit>")


DATA = history(
    commit("1000000001", "system", "0", "2024-11-03T05:47:51Z", "initial-configuration",
           "<change><index>0</index><target>/sys:aaa</target><operation>create</operation></change>"),
    commit("1000000002", "admin", "7", "2024-11-03T05:48:02Z", "commit",
           "<label>lab1</label><comment>a first commit</comment>"
           "<change><index>1</index><target>/sys:domain</target><operation>create</operation></change>"
           "<change><index>0</index><target>/sys:hostname</target><operation>create</operation>"
           "<new-value>r1</new-value></change>"),
    commit("1000000003", "oper", "12", "2024-11-13T17:00:09+01:00", "rollback"),
)


def test_the_list_is_xrs_table_newest_first_labels_instead_of_ids() -> None:
    commits = commits_of(DATA)
    assert [c.commit_id for c in commits] == ["1000000003", "1000000002", "1000000001"]
    assert render_commit_list(commits) == [
        "SNo. Label/ID              User      Line                Client      Time Stamp",
        "~~~~ ~~~~~~~~              ~~~~      ~~~~                ~~~~~~      ~~~~~~~~~~",
        "1    1000000003            oper      session 12          Rollback    Wed Nov 13 16:00:09 2024",
        "2    lab1                  admin     session 7           Commit      Sun Nov  3 05:48:02 2024",
        "3    1000000001            system    agent               Startup     Sun Nov  3 05:47:51 2024",
    ]


def test_a_long_label_pushes_the_row_instead_of_merging_columns() -> None:
    data = history(commit("1000000004", "admin", "1", "2024-11-03T05:48:02Z", "commit",
                          "<label>a-label-longer-than-its-column</label>"))
    row = render_commit_list(commits_of(data))[2]
    assert row.split() == ["1", "a-label-longer-than-its-column", "admin", "session", "1", "Commit",
                           "Sun", "Nov", "3", "05:48:02", "2024"]


def test_detail_blocks() -> None:
    lines = render_commit_detail(commits_of(DATA)[1:])
    assert lines == [
        "   1) CommitId: 1000000002                 Label: lab1",
        "      UserId:   admin                      Line:  session 7",
        "      Client:   Commit                     Time:  Sun Nov  3 05:48:02 2024",
        "      Comment:  a first commit",
        "",
        "   2) CommitId: 1000000001                 Label: NONE",
        "      UserId:   system                     Line:  agent",
        "      Client:   Startup                    Time:  Sun Nov  3 05:47:51 2024",
        "      Comment:  NONE",
    ]


def test_list_time_leaves_what_is_not_a_date() -> None:
    assert list_time("2024-02-29T23:59:59.5-00:30") == "Fri Mar  1 00:29:59 2024"
    assert list_time("soon") == "soon"


def test_changes_are_in_index_order_under_building_configuration() -> None:
    (second,) = [c for c in commits_of(DATA) if c.commit_id == "1000000002"]
    assert render_commit_changes([second]) == [
        "Building configuration...",
        "hostname r1",
        "!! domain: created",
        "end",
    ]


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("/sys:hostname", [Step("sys", "hostname")]),
        (f"{TP}/crypto:enrollment/crypto:url",
         [Step("crypto", "crypto"), Step("crypto", "ca"), Step("crypto", "trustpoint", (("name", "myca"),)),
          Step("crypto", "enrollment"), Step("crypto", "url")]),
        ("/a:l[a:k1='x/y]'][a:k2=\"it's\"]", [Step("a", "l", (("k1", "x/y]"), ("k2", "it's")))]),
        ("/a:l[a:k=concat('a', \"'\", 'b\"c')]", [Step("a", "l", (("k", "a'b\"c"),))]),
        ("/a:ll[.='v']", [Step("a", "ll", ((".", "v"),))]),
    ],
)
def test_instance_identifiers_are_split_into_steps(path: str, steps: list[Step]) -> None:
    assert parse_instance_identifier(path) == steps


@pytest.mark.parametrize("path", ["sys:hostname", "/a:l[a:k='x]", "/a:l[a:k]", "/a:l[a:k='x'", "//x"])
def test_bad_instance_identifiers_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        parse_instance_identifier(path)


def test_changes_read_as_router_configuration() -> None:
    changes = [
        ChangeView("/sys:hostname", "replace", "r1", "r2"),
        ChangeView("/sys:domain/sys:name", "delete", "example.com"),
        ChangeView(f"{TP}/crypto:enrollment/crypto:url", "create", new_value="http://ca/scep"),
        ChangeView(f"{TP}/crypto:enrollment/crypto:retry/crypto:count", "replace", "10", "25"),
        ChangeView(f"{TP}/crypto:query-url", "delete", "ldap://x"),
        ChangeView(f"{TP}/crypto:crl-optional", "create", new_value=""),
        ChangeView("/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='old']", "delete"),
        ChangeView("/sys:logging/sys:host[sys:address='10.0.0.1']/sys:port", "replace", "514", "1514"),
        ChangeView("/sys:logging/sys:buffered/sys:size", "create", new_value="500"),
        ChangeView("/sys:snmp-server/sys:traps/sys:pki", "create", new_value=""),
        ChangeView("/sys:aaa/sys:user[sys:name='oper']", "create"),
        ChangeView("/sys:aaa/sys:user[sys:name='oper']/sys:password-hash", "create"),
        ChangeView("/nacm:nacm/nacm:enable-nacm", "replace", "true", "false"),
        ChangeView("/nacm:nacm/nacm:groups", "create"),
    ]
    assert change_lines(changes) == [
        "hostname r2",
        "no domain name",
        "crypto ca trustpoint myca",
        " enrollment url http://ca/scep",
        " enrollment retry count 25",
        " no query url",
        " crl optional",
        "!",
        "no crypto ca trustpoint old",
        "logging host 10.0.0.1 port 1514",
        "logging buffered 500",
        "snmp-server traps pki",
        "username oper",
        " secret <not shown>",
        "!",
        "/nacm:nacm/nacm:enable-nacm false",  # no CLI syntax: the instance-identifier
        "!! /nacm:nacm/nacm:groups: created",
    ]


def test_a_deletion_hides_only_what_follows_inside_it() -> None:
    """Records made before deletions were recorded once list what a deleted trustpoint held: not printed.
    A later commit that makes it again (changes of several commits are shown together) is printed whole."""
    old = "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='old']"
    changes = [
        ChangeView(old, "delete"),
        ChangeView(f"{old}/crypto:enrollment/crypto:url", "delete", "http://ca/scep"),
        ChangeView(old, "create"),
        ChangeView(f"{old}/crypto:enrollment/crypto:url", "create", new_value="http://ca2/scep"),
    ]
    assert change_lines(changes) == [
        "no crypto ca trustpoint old",
        "crypto ca trustpoint old",
        " enrollment url http://ca2/scep",
        "!",
    ]


def test_a_created_submode_opens_its_block_once() -> None:
    changes = [
        ChangeView("/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='new']", "create"),
        ChangeView("/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='new']/crypto:rsakeypair", "create",
                   new_value="k1"),
        ChangeView("/crypto:crypto/crypto:ca/crypto:trustpool/crypto:policy", "delete"),
    ]
    assert change_lines(changes) == [
        "crypto ca trustpoint new", " rsakeypair k1", "!", "no crypto ca trustpool policy"]
    assert change_lines(changes, diff=True) == [
        "+ crypto ca trustpoint new", "+  rsakeypair k1", "  !", "- crypto ca trustpool policy"]


def test_diff_shows_what_went_and_what_came() -> None:
    changes = [
        ChangeView("/sys:hostname", "replace", "r1", "r2"),
        ChangeView(f"{TP}/crypto:subject-name", "delete", "CN=r1"),
        ChangeView(f"{TP}/crypto:enrollment/crypto:retry", "create"),
        ChangeView("/sys:domain/sys:name", "create", new_value="example.com"),
    ]
    assert change_lines(changes, diff=True) == [
        "- hostname r1",
        "+ hostname r2",
        "# crypto ca trustpoint myca",
        "-  subject-name CN=r1",
        " !! enrollment retry: created",
        "  !",
        "+ domain name example.com",
    ]


def test_the_commit_commands_parse() -> None:
    exec_tree, config_tree = tree(Mode.EXEC), tree(Mode.CONFIG)
    cases = [
        (exec_tree, "show configuration commit list", "show-commit-list", {}),
        (exec_tree, "sh conf com li 5 det", "show-commit-list", {"count": "5", "detail": "detail"}),
        (exec_tree, "show configuration commit changes 1000000002 diff", "show-commit-changes",
         {"commit": "1000000002", "diff": "diff"}),
        (exec_tree, "show configuration commit changes last 3", "show-commit-changes", {"count": "3"}),
        (exec_tree, "rollback configuration last 2", "rollback", {"count": "2"}),
        (exec_tree, "rollback configuration to lab1 label back comment undo lab1", "rollback",
         {"commit": "lab1", "label": "back", "comment": "undo lab1"}),
        (config_tree, "commit label L1 comment two words", "commit", {"label": "L1", "comment": "two words"}),
        (config_tree, "commit comment label L1", "commit", {"comment": "label L1"}),
        (config_tree, "show configuration", "show-configuration", {}),
        (config_tree, "show configuration commit list", "show-commit-list", {}),
        (config_tree, "do rollback configuration last 1", "rollback", {"count": "1"}),
    ]
    for root, line, action, args in cases:
        parsed = parse(root, line)
        assert (parsed.action, parsed.args) == (action, args), line
    for line in ("rollback configuration last 100", "rollback configuration last 0",
                 "show configuration commit list 101", "rollback configuration"):
        with pytest.raises(ParseError):
            parse(exec_tree, line)


def test_help_and_tab_offer_the_commits_kept() -> None:
    exec_tree = tree(Mode.EXEC)

    def values(name: str) -> list[tuple[str, str]]:
        assert name == "commit"
        return [("1000000002", "Commit ID"), ("1000000001", "Commit ID"), ("lab1", "Commit label")]

    assert help_entries(exec_tree, "rollback configuration to ", values) == [
        ("WORD", "Commit ID or label"), ("1000000002", "Commit ID"), ("1000000001", "Commit ID"),
        ("lab1", "Commit label")]
    assert [w for w, _ in help_entries(exec_tree, "show configuration commit changes l", values)] == [
        "last", "WORD", "lab1"]
    assert completions(exec_tree, "rollback configuration to la", values) == ["lab1"]
    assert completions(exec_tree, "show configuration commit changes ", values) == [
        "last", "1000000002", "1000000001", "lab1"]
    assert help_entries(exec_tree, "rollback configuration to ") == [("WORD", "Commit ID or label")]  # no source
