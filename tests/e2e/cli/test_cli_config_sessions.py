"""Each ca-cli configuration session has its own uncommitted changes: two CLIs in two ptys and a NETCONF
script against one real agent, none seeing, committing or discarding another's edits."""

from __future__ import annotations

from cli_e2e_helpers import Cli

from agentproc import AgentProcess

SYS = "urn:ca-agent:yang:system"
CRYPTO = "urn:ca-agent:yang:crypto"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"s": SYS, "c": CRYPTO}
P = "RP/0/RP0/CPU0:"


def running(agent: AgentProcess) -> dict[str, object]:
    with agent.connect() as m:
        data = m.get_config(source="running").data_ele
    return {
        "hostname": data.findtext("s:hostname", namespaces=NS),
        "domain": data.findtext("s:domain/s:name", namespaces=NS),
        "trustpoints": data.xpath("c:crypto/c:ca/c:trustpoint/c:name/text()", namespaces=NS),
    }


def test_two_cli_sessions_never_see_commit_or_discard_each_others_changes(agent: AgentProcess, cli_factory) -> None:
    a: Cli = cli_factory(agent)
    b: Cli = cli_factory(agent)
    a.run("configure")
    b.run("configure")
    assert a.run("hostname alpha") == []
    assert b.run("domain name beta.example") == []
    assert b.run("crypto ca trustpoint bca") == []
    assert b.run("enr url http://ca.example/scep") == []
    assert b.run("exit") == []

    # show configuration: each session's own changes, in the router's layout
    assert a.run("show configuration") == ["Building configuration...", "hostname alpha", "end"]
    assert b.run("show configuration") == [
        "Building configuration...",
        "domain name beta.example",
        "crypto ca trustpoint bca",
        " enrollment url http://ca.example/scep",
        "!",
        "end",
    ]

    # B commits: only B's changes reach running; A's hostname stays A's
    assert b.run("commit") == []
    assert running(agent) == {"hostname": None, "domain": "beta.example", "trustpoints": ["bca"]}
    assert b.run("show configuration") == ["Building configuration...", "end"]
    assert a.run("show configuration") == ["Building configuration...", "hostname alpha", "end"]

    # A aborts: B's next change is untouched; B commits it
    assert b.run("no domain name") == []
    assert a.run("abort") == []
    assert a.prompt == f"{P}router#"
    assert b.run("commit") == []
    assert running(agent)["domain"] is None

    # A commits a hostname: B's prompt follows it at B's next Enter
    a.run("configure")
    a.run("hostname alpha")
    assert a.run("commit") == []
    assert a.prompt == f"{P}alpha(config)#"
    assert b.run("") == []
    assert b.prompt == f"{P}alpha(config)#"
    assert b.run("commit") == ["% No configuration changes to commit."]
    assert a.run("end") == [] and b.run("end") == []
    assert a.close() == 0 and b.close() == 0


def test_a_netconf_commit_leaves_a_cli_users_pending_changes_alone(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    cli.run("hostname half-typed")
    with agent.connect() as m:  # a script: edit the candidate and commit, without a lock
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><domain xmlns="{SYS}"><name>script.example'
                                                 "</name></domain></config>")
        m.commit()
        assert m.get_config(source="candidate").data_ele.findtext("s:hostname", namespaces=NS) is None
    assert running(agent) == {"hostname": None, "domain": "script.example", "trustpoints": []}
    assert cli.run("show configuration") == ["Building configuration...", "hostname half-typed", "end"]
    cli.send("end")
    cli.answer("Uncommitted changes found, commit them? [yes]:", "yes")
    assert cli.wait_prompt() == ["Uncommitted changes found, commit them? [yes]:yes"]
    assert running(agent) == {"hostname": "half-typed", "domain": "script.example", "trustpoints": []}
    assert cli.prompt == f"{P}half-typed#"


def test_a_commit_refused_by_another_sessions_lock_says_so_and_keeps_the_changes(
    agent: AgentProcess, cli_factory
) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    cli.run("hostname mine")
    with agent.connect() as m:
        m.lock(target="candidate")
        holder = m.session_id
        out = cli.run("commit")
        assert out == [
            f"% Failed to commit: another session holds the configuration (session {holder}). "
            "Your changes are kept: 'commit' again once it is released, or 'abort' them."
        ]
        assert running(agent)["hostname"] is None
        # the script's own uncommitted edit is not the CLI's to commit or discard either
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">script</hostname>'
                                                 "</config>")
        assert cli.run("hostname mine2") == []  # typing on while the candidate is locked still works
        assert cli.run("commit")[0].startswith("% Failed to commit: another session holds the configuration")
        assert m.get_config(source="candidate").data_ele.findtext("s:hostname", namespaces=NS) == "script"
        m.discard_changes()
        m.unlock(target="candidate")
    assert cli.run("show configuration") == ["Building configuration...", "hostname mine", "hostname mine2", "end"]
    assert cli.run("commit") == []
    assert running(agent)["hostname"] == "mine2"


def test_a_script_with_uncommitted_candidate_changes_blocks_a_cli_commit_instead_of_losing_them(
    agent: AgentProcess, cli_factory
) -> None:
    cli: Cli = cli_factory(agent)
    with agent.connect() as m:
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}"><hostname xmlns="{SYS}">script</hostname>'
                                                 "</config>")
        cli.run("configure")
        cli.run("domain name cli.example")
        out = cli.run("commit")
        assert out[0].startswith("% Failed to commit: another session holds the configuration (")
        assert m.get_config(source="candidate").data_ele.findtext("s:hostname", namespaces=NS) == "script"
        m.commit()
    assert cli.run("commit") == []
    assert running(agent) == {"hostname": "script", "domain": "cli.example", "trustpoints": []}


def test_values_are_refused_as_typed_with_the_yang_error_message(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    assert cli.run("domain name -bad-.com") == [
        " " * len(f"{P}router(config)#domain name ") + "^",
        "% Invalid input detected at '^' marker.",
        "% A domain name is labels of letters, digits, hyphens and underscores joined by dots, each at most 63 "
        "characters, not starting or ending with a hyphen (e.g. example.com).",
    ]
    out = cli.run("hostname -bad-")
    assert out[-1] == ("% A hostname has only letters, digits and hyphens, and starts and ends with a letter or "
                       "digit (e.g. router20).")
    cli.run("crypto ca trustpoint myca")
    assert cli.run("enrollment url ftp://ca")[-1] == (
        "% The enrollment URL is an http:// or https:// URL (e.g. http://ca.example.com/cgi-bin/pkiclient.exe)."
    )
    assert cli.run("show configuration") == ["Building configuration...", "crypto ca trustpoint myca", "!", "end"]


def test_a_value_typed_while_the_candidate_was_locked_is_checked_at_commit(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    with agent.connect() as m:
        m.lock(target="candidate")
        assert cli.run("hostname -bad-") == []  # could not be checked now: kept, checked at commit
        m.unlock(target="candidate")
    assert cli.run("commit") == [
        "% Failed to commit the configuration changes: A hostname has only letters, digits and hyphens, and starts "
        "and ends with a letter or digit (e.g. router20)."
    ]
    with agent.connect() as m:  # the failed commit left nothing locked and nothing in the candidate
        m.lock(target="candidate")
        m.unlock(target="candidate")
    assert cli.run("abort") == []
    assert running(agent) == {"hostname": None, "domain": None, "trustpoints": []}
