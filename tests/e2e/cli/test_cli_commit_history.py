"""The commit database through ca-cli against the real agent: commit label/comment, the list, the changes,
rollback last N / to ID (itself a commit in the list), `?` and Tab, output modifiers, access control."""

from __future__ import annotations

import re
from pathlib import Path

from cli_e2e_helpers import Cli, run_cli
from lxml import etree

from agentproc import AgentProcess

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:ca-agent:yang:system"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
P = "RP/0/RP0/CPU0:"
BAD_LABEL = ("% Failed to commit the configuration changes: A commit label starts with a letter and holds "
             "letters, digits, '_', '.' and '-'.")


def script(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def history(agent: AgentProcess) -> list[etree._Element]:
    with agent.connect() as m:
        data = m.get(filter=("subtree", f'<commit-history xmlns="{SYS}"/>')).data_ele
    return list(data.iterfind(f"{{{SYS}}}commit-history/{{{SYS}}}commit"))


def field(entry: etree._Element, name: str) -> str | None:
    return entry.findtext(f"{{{SYS}}}{name}")


def hostname(agent: AgentProcess) -> str | None:
    with agent.connect() as m:
        return m.get_config(source="running").data_ele.findtext(f"{{{SYS}}}hostname")


def output_of(out: list[str], command: str) -> list[str]:
    """The lines a command printed in a one-shot transcript (up to the next prompt)."""
    start = next(i for i, line in enumerate(out) if line.startswith(P) and line.endswith("#" + command)) + 1
    end = next((i for i in range(start, len(out)) if out[i].startswith(P)), len(out))
    return out[start:end]


def test_labelled_commits_the_list_the_changes_and_rollbacks(agent: AgentProcess, tmp_path: Path) -> None:
    done = run_cli(agent, tmp_path, stdin=script(
        "configure", "hostname r1", "commit label lab-one comment the first hostname",
        "hostname r2", "commit label bad!label", "commit label lab-two", "end",
        "show configuration commit list",
        "show configuration commit list detail | include Comment",
        "show configuration commit changes lab-two",
        "show configuration commit changes last 2 diff",
        "show configuration commit changes 1999999999",
    ))
    assert done.returncode == 1, done.stdout + done.stderr  # the bad label and the unknown id failed
    out = done.stdout.splitlines()
    # the bad label is refused with the YANG error-message; the changes stay and go in with the next commit
    assert output_of(out, "commit label bad!label") == [BAD_LABEL]
    entries = history(agent)
    assert [(field(e, "label"), field(e, "comment"), field(e, "user")) for e in entries] == [
        (None, None, "system"), ("lab-one", "the first hostname", "admin"), ("lab-two", None, "admin")]
    ids = [field(e, "id") for e in entries]

    listing = output_of(out, "show configuration commit list")
    assert listing[:2] == ["SNo. Label/ID              User      Line                Client      Time Stamp",
                           "~~~~ ~~~~~~~~              ~~~~      ~~~~                ~~~~~~      ~~~~~~~~~~"]
    columns = [(0, 5), (5, 27), (27, 37), (37, 57), (57, 69), (69, None)]
    rows = [[row[a:b].strip() for a, b in columns] for row in listing[2:]]
    sessions = [f"session {field(e, 'session-id')}" for e in entries]
    assert [row[:5] for row in rows] == [  # newest first, a label instead of the id
        ["1", "lab-two", "admin", sessions[2], "Commit"],
        ["2", "lab-one", "admin", sessions[1], "Commit"],
        ["3", ids[0], "system", "agent", "Startup"],
    ]
    assert all(re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d 20\d\d", row[5]) for row in rows), rows
    assert output_of(out, "show configuration commit list detail | include Comment") == [
        "      Comment:  NONE", "      Comment:  the first hostname", "      Comment:  NONE"]
    assert output_of(out, "show configuration commit changes lab-two") == [
        "Building configuration...", "hostname r2", "end"]
    assert output_of(out, "show configuration commit changes last 2 diff") == [
        "Building configuration...", "+ hostname r1", "- hostname r1", "+ hostname r2", "end"]
    assert output_of(out, "show configuration commit changes 1999999999") == [
        f"% Commit 1999999999 is not in the commit database (the last {len(ids)} commits are kept)"]

    # rollback last 1, then to the first configuration's id: both are commits of their own, in the list
    done = run_cli(agent, tmp_path, stdin=script(
        "rollback configuration last 1",
        f"rollback configuration to {ids[0]} label back comment before any hostname",
        "rollback configuration to 1999999999",
        "show configuration commit list | include Rollback",
        "show configuration commit changes last 1",
    ))
    out = done.stdout.splitlines()
    last = output_of(out, "rollback configuration last 1")
    assert last == ["Loading Rollback Changes.", "Committing.", "1 item committed.",
                    f"Configuration successfully rolled back 1 commit (commit {int(ids[-1]) + 1})."]
    assert f"{P}r1#rollback configuration to {ids[0]} label back comment before any hostname" in out
    assert output_of(out, f"rollback configuration to {ids[0]} label back comment before any hostname")[-1] == (
        f"Configuration successfully rolled back to '{ids[0]}' (commit {int(ids[-1]) + 2}).")
    assert output_of(out, "rollback configuration to 1999999999") == [
        f"% Failed to roll back: commit 1999999999 is not in the commit database "
        f"(the last {len(ids) + 2} commits are kept)"]
    assert [row.split()[1] for row in output_of(out, "show configuration commit list | include Rollback")] == [
        "back", str(int(ids[-1]) + 1)]
    assert output_of(out, "show configuration commit changes last 1") == [
        "Building configuration...", "no hostname", "end"]
    assert hostname(agent) is None
    entries = history(agent)
    assert [(field(e, "kind"), field(e, "label"), field(e, "comment")) for e in entries[-2:]] == [
        ("rollback", None, f"rollback to the configuration of commit {ids[1]}"),
        ("rollback", "back", "before any hostname")]


def test_help_tab_and_modifiers_in_a_terminal(agent: AgentProcess, cli_factory) -> None:
    cli: Cli = cli_factory(agent)
    cli.run("configure")
    cli.run("hostname h1")
    assert cli.run("commit label first-name") == []
    cli.run("hostname h2")
    assert cli.run("commit comment second") == []
    # in a configuration mode too, and through 'do'
    assert cli.run("show configuration commit list | count") == ["Number of lines which match regexp = 5"]
    assert cli.run("do show configuration commit changes last 1") == ["Building configuration...", "hostname h2", "end"]
    ids = [field(e, "id") for e in history(agent)]
    cli.run("end")

    # `?` offers the kept ids and labels; Tab completes keywords and labels
    cli.child.send("rollback configuration to ?")
    cli.child.expect_exact("  WORD        Commit ID or label")
    for commit_id in reversed(ids):
        cli.child.expect_exact(f"  {commit_id}  Commit ID")
    cli.child.expect_exact("  first-name  Commit label")
    cli.child.send("\x15")  # Ctrl-U: clear the line
    cli.child.send("rollb\t")
    cli.child.expect_exact("rollback")
    cli.child.send("conf\t")
    cli.child.expect_exact("configuration")
    cli.child.send("to fir\t")
    cli.child.expect_exact("first-name")
    cli.send("")
    out = cli.wait_prompt()
    assert out[-1] == f"Configuration successfully rolled back to '{ids[1]}' (commit {int(ids[-1]) + 1})."
    assert cli.prompt == f"{P}h1#"
    assert cli.run(f"show configuration commit changes {int(ids[-1]) + 1}") == [
        "Building configuration...", "hostname h1", "end"]
    (client,) = cli.run("show configuration commit list 1 detail | include Client")
    assert client.startswith("      Client:   Rollback ")
    assert cli.close() == 0


def test_rollback_needs_the_right_to_change_the_configuration(agent: AgentProcess, tmp_path: Path) -> None:
    with agent.connect() as m:
        m.edit_config(target="running", config=(
            f'<config xmlns="{NC}"><aaa xmlns="{SYS}"><user><name>oper</name><password-hash>$0$oper-pw'
            f'</password-hash></user></aaa><nacm xmlns="{NACM}"><groups><group><name>operator</name>'
            f"<user-name>oper</user-name></group></groups></nacm><hostname xmlns=\"{SYS}\">kept</hostname>"
            f"</config>"))
    done = run_cli(agent, tmp_path, "--user", "oper", CA_AGENT_PASSWORD="oper-pw", stdin=script(
        "show configuration commit list | count",
        "rollback configuration last 1",
        "configure", "hostname evil",
    ))
    out = done.stdout.splitlines()
    assert output_of(out, "show configuration commit list | count") == ["Number of lines which match regexp = 4"]
    assert output_of(out, "rollback configuration last 1") == ["% This command is not authorized"]
    assert output_of(out, "hostname evil") == ["% This command is not authorized"]
    assert hostname(agent) == "kept"
