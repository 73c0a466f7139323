"""CliSession against a fake NETCONF client: modes, the end/commit dialog, edits, the key and CA dialogs.

(The same behaviour against the real agent, in a pty: tests/e2e/cli.)"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from cli_seed_text import SEED_REGENERATE_DIALOG
from lxml import etree

from agent.cli.client import CliError
from agent.cli.commands import Mode
from agent.cli.console import StreamConsole
from agent.cli.session import CliSession, ExitCli

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO, "s": SYS, "nc": NC}


class FakeAgent:
    """Records what the CLI asks of the agent; RPC replies come from ``replies[name]`` (a callable)."""

    username = "admin"
    where = "127.0.0.1 port 830"

    def __init__(self, running: str = "", keys: tuple[str, ...] = ()) -> None:
        self.running_xml = running
        self.edits: list[etree._Element] = []  # every edit checked (test-only), in order
        self.calls: list[tuple[str, dict[str, str | None]]] = []
        self.commits: list[list[etree._Element]] = []  # the edits of each commit
        self.refuse_commit: CliError | None = None
        self.keys = list(keys)
        self.replies: dict[str, Callable[[dict[str, str | None]], str]] = {}

    def running(self) -> etree._Element:
        return etree.fromstring(f'<data xmlns="{NC}">{self.running_xml}</data>')

    def hostname(self) -> str:
        return self.running().findtext(f"{{{SYS}}}hostname") or "router"

    def state(self, part: str) -> etree._Element:
        rsa = "".join(f"<rsa><label>{k}</label></rsa>" for k in self.keys)
        return etree.fromstring(f'<data xmlns="{NC}"><crypto xmlns="{CRYPTO}"><key>{rsa}</key></crypto></data>')

    def check_edit(self, config: etree._Element) -> bool:
        self.edits.append(config)
        return True

    def commit_changes(self, edits: list[etree._Element], commit: etree._Element | None = None) -> None:
        if self.refuse_commit is not None:
            raise self.refuse_commit
        self.commits.append(list(edits))
        for edit in edits:
            hostname = edit.findtext("s:hostname", namespaces=NS)
            if hostname:
                self.running_xml += f'<hostname xmlns="{SYS}">{hostname}</hostname>'

    def rpc(self, name: str, leaves=()) -> etree._Element:
        args = dict(leaves)
        self.calls.append((name, args))
        body = self.replies.get(name, lambda a: "<ok/>")(args)
        return etree.fromstring(f'<rpc-reply xmlns="{NC}">{body}</rpc-reply>')


def session(agent: FakeAgent, answers: list[str] = (), echo: bool = True) -> tuple[CliSession, io.StringIO]:
    out = io.StringIO()
    console = StreamConsole(iter(answers), out, echoes_commands=echo)
    cli = CliSession(agent, console)  # type: ignore[arg-type]
    cli.refresh_hostname()
    return cli, out


def crypto(body: str) -> str:
    return f'<crypto xmlns="{CRYPTO}">{body}</crypto>'


def test_prompts_follow_the_mode_and_the_committed_hostname() -> None:
    agent = FakeAgent()
    cli, _ = session(agent, ["yes"])
    assert cli.prompt == "RP/0/RP0/CPU0:router#"
    assert cli.execute("configure")
    assert cli.prompt == "RP/0/RP0/CPU0:router(config)#"
    assert cli.execute("hostname myhost")
    assert cli.prompt == "RP/0/RP0/CPU0:router(config)#"  # not committed yet
    assert cli.execute("crypto ca trustpoint myca")
    assert cli.prompt == "RP/0/RP0/CPU0:router(config-trustp)#"
    assert cli.execute("exit")
    assert cli.mode is Mode.CONFIG
    assert cli.execute("end")  # answers yes
    assert len(agent.commits) == 1
    assert cli.prompt == "RP/0/RP0/CPU0:myhost#"


def test_the_prompt_follows_a_hostname_committed_by_another_session() -> None:
    agent = FakeAgent()
    cli, _ = session(agent)
    agent.running_xml = f'<hostname xmlns="{SYS}">elsewhere</hostname>'
    assert cli.execute("")  # Enter alone is enough
    assert cli.prompt == "RP/0/RP0/CPU0:elsewhere#"


def test_config_commands_are_checked_then_committed_together() -> None:
    agent = FakeAgent()
    cli, out = session(agent)
    for line in ["configure", "hostname myhost", "domain name mydomain.com", "crypto ca trustpoint myca",
                 "enr url http://xyz-ultra5", "enrollment retry count 25", "rsaakeypair mykey",
                 "no query url", "enrollment terminal"]:
        assert cli.execute(line), line
    assert agent.commits == []
    assert cli.execute("show configuration")
    assert out.getvalue().splitlines() == [
        "Building configuration...",
        "hostname myhost",
        "domain name mydomain.com",
        "crypto ca trustpoint myca",
        " enrollment url http://xyz-ultra5",
        " enrollment retry count 25",
        " rsakeypair mykey",
        " no query url",
        " enrollment terminal",
        "!",
        "end",
    ]
    assert cli.execute("commit")
    assert agent.commits == [agent.edits]
    xml = [etree.tostring(e).decode() for e in agent.edits]
    assert f'<hostname xmlns="{SYS}">myhost</hostname>' in xml[0]
    assert "<domain" in xml[1] and "<name>mydomain.com</name>" in xml[1]
    assert agent.edits[2].findtext("c:crypto/c:ca/c:trustpoint/c:name", namespaces=NS) == "myca"
    tp = agent.edits[3].find("c:crypto/c:ca/c:trustpoint", NS)
    assert tp.findtext("c:name", namespaces=NS) == "myca"
    assert tp.findtext("c:enrollment/c:url", namespaces=NS) == "http://xyz-ultra5"
    assert agent.edits[4].findtext("c:crypto/c:ca/c:trustpoint/c:enrollment/c:retry/c:count", namespaces=NS) == "25"
    removed = agent.edits[6].find("c:crypto/c:ca/c:trustpoint/c:query-url", NS)
    assert removed.get(f"{{{NC}}}operation") == "remove"
    assert agent.edits[7].find("c:crypto/c:ca/c:trustpoint/c:enrollment/c:terminal", NS) is not None


@pytest.mark.parametrize(
    ("answers", "commits", "mode"),
    [
        ([""], 1, Mode.EXEC),  # [yes] is the default
        (["yes"], 1, Mode.EXEC),
        (["no"], 0, Mode.EXEC),
        (["cancel"], 0, Mode.CONFIG),
        (["maybe", "c"], 0, Mode.CONFIG),
    ],
)
def test_end_dialog(answers: list[str], commits: int, mode: Mode) -> None:
    agent = FakeAgent()
    cli, out = session(agent, answers)
    cli.execute("configure")
    cli.execute("hostname myhost")
    cli.execute("end")
    assert (len(agent.commits), cli.mode) == (commits, mode)
    assert cli.has_uncommitted_changes() == (mode is Mode.CONFIG)  # 'no' forgets them, 'cancel' keeps them
    assert out.getvalue().startswith("Uncommitted changes found, commit them? [yes]:")
    if answers[0] == "maybe":
        assert "% Please answer 'yes', 'no' or 'cancel'." in out.getvalue()


def test_end_without_changes_does_not_ask_and_commit_says_nothing_to_commit() -> None:
    agent = FakeAgent()
    cli, out = session(agent)
    cli.execute("configure")
    cli.execute("commit")
    assert out.getvalue() == "% No configuration changes to commit.\n"
    cli.execute("end")
    assert cli.mode is Mode.EXEC and agent.commits == []


def test_leaving_the_cli_discards_uncommitted_changes() -> None:
    agent = FakeAgent()
    cli, out = session(agent)
    cli.execute("configure")
    cli.execute("hostname myhost")
    cli.finish()
    assert not cli.has_uncommitted_changes() and "discarded" in out.getvalue() and agent.commits == []


def test_abort_forgets_this_sessions_changes() -> None:
    agent = FakeAgent()
    cli, out = session(agent)
    cli.execute("configure")
    cli.execute("hostname myhost")
    assert cli.execute("abort") and cli.mode is Mode.EXEC
    cli.execute("configure")
    cli.execute("commit")
    assert out.getvalue() == "% No configuration changes to commit.\n" and agent.commits == []


def test_a_commit_refused_for_the_lock_says_who_and_keeps_the_changes() -> None:
    agent = FakeAgent()
    agent.refuse_commit = CliError("the candidate datastore is locked by session 7", "lock-denied",
                                   f'<error-info xmlns="{NC}"><session-id>7</session-id></error-info>')
    cli, out = session(agent)
    cli.execute("configure")
    cli.execute("hostname myhost")
    assert not cli.execute("commit")
    assert out.getvalue() == (
        "% Failed to commit: another session holds the configuration (session 7). "
        "Your changes are kept: 'commit' again once it is released, or 'abort' them.\n"
    )
    agent.refuse_commit = None
    assert cli.execute("commit") and len(agent.commits) == 1


def test_parent_mode_command_in_a_submode_leaves_it() -> None:
    agent = FakeAgent()
    cli, _ = session(agent)
    cli.execute("configure")
    cli.execute("crypto ca trustpoint myca")
    assert cli.execute("hostname other")
    assert cli.mode is Mode.CONFIG and cli.trustpoint is None


def test_invalid_input_marker_under_the_word() -> None:
    cli, out = session(FakeAgent())
    assert not cli.execute("show crypto ca certificatez")
    prompt = "RP/0/RP0/CPU0:router#"
    assert out.getvalue() == " " * (len(prompt) + 15) + "^\n% Invalid input detected at '^' marker.\n"
    cli, out = session(FakeAgent(), echo=False)  # one-shot: the line is not on screen, so it is printed first
    assert not cli.execute("shw")
    assert out.getvalue() == "shw\n^\n% Invalid input detected at '^' marker.\n"


def test_exit_at_exec_ends_the_cli_and_comments_are_ignored() -> None:
    cli, out = session(FakeAgent())
    assert cli.execute("! The following commands declare a CA")
    assert cli.execute("   ")
    with pytest.raises(ExitCli):
        cli.execute("exit")
    assert out.getvalue() == ""


def test_question_mark_prints_help() -> None:
    cli, out = session(FakeAgent())
    assert cli.execute("show ?")
    assert out.getvalue() == (
        "  configuration   Configuration commit database\n"
        "  crypto          Crypto commands\n"
        "  logging         Show the contents of logging buffers\n"
        "  running-config  Current operating configuration\n"
    )


def test_generate_dialog_replacing_keys_is_the_seeds() -> None:
    agent = FakeAgent(keys=("mykey",))
    cli, out = session(agent, ["yes", ""])
    assert cli.execute("crypto key generate rsa mykey")
    lines = out.getvalue().splitlines()
    expected = [line.replace("512 to 4096", "1024 to 4096") for line in SEED_REGENERATE_DIALOG]
    assert [line.rstrip() for line in lines] == expected
    assert agent.calls == [("key-generate-rsa", {"label": "mykey", "general-keys": None, "modulus": "2048",
                                                 "replace": "true"})]


def test_generate_defaults_to_the_fqdn_and_refusing_replacement_does_nothing() -> None:
    agent = FakeAgent(running=f'<hostname xmlns="{SYS}">r1</hostname><domain xmlns="{SYS}"><name>ex.com</name></domain>',
                      keys=("r1.ex.com",))
    cli, out = session(agent, ["no"])
    assert cli.execute("crypto key generate rsa usage-keys")
    assert out.getvalue().splitlines()[0] == "The name for the keys will be: r1.ex.com"
    assert agent.calls == []
    cli, out = session(agent, ["yes", "512"])
    assert not cli.execute("crypto key generate rsa")
    assert "% The key modulus must be a number in the range of 1024 to 4096" in out.getvalue()
    assert agent.calls == []


def test_zeroize_asks_first() -> None:
    agent = FakeAgent(keys=("key1",))
    cli, out = session(agent, ["yes"])
    assert cli.execute("crypto key zeroize rsa key1")
    assert out.getvalue().startswith(
        "% Keys to be removed are named key1\n% All router certs issued using these keys will also be removed.\n"
    )
    assert agent.calls == [("key-zeroize-rsa", {"label": "key1"})]
    assert not cli.execute("crypto key zeroize rsa nokey")


CA_INFO = """<serial-number xmlns="urn:ca-agent:yang:crypto">01</serial-number>
<subject xmlns="urn:ca-agent:yang:crypto">cn=Root</subject><issuer xmlns="urn:ca-agent:yang:crypto">cn=Root</issuer>
<valid-from xmlns="urn:ca-agent:yang:crypto">2003-08-19T07:00:00Z</valid-from>
<valid-to xmlns="urn:ca-agent:yang:crypto">2020-08-19T07:00:00Z</valid-to>
<fingerprint-md5 xmlns="urn:ca-agent:yang:crypto">5871FB945565D46438912B0061E9F805</fingerprint-md5>"""


def authenticate_reply(args: dict[str, str | None]) -> str:
    installed = "true" if args.get("fingerprint") else "false"
    return CA_INFO + f'<installed xmlns="{CRYPTO}">{installed}</installed>'


def test_authenticate_installs_the_fingerprint_that_was_shown() -> None:
    agent = FakeAgent()
    agent.replies["ca-authenticate"] = authenticate_reply
    cli, out = session(agent, ["yes"])
    assert cli.execute("crypto ca authenticate myca")
    assert "Fingerprint:58 71 FB 94 55 65 D4 64 38 91 2B 00 61 E9 F8 05\n" in out.getvalue()
    assert out.getvalue().endswith("Do you accept this certificate?? [yes/no]:yes\n")
    assert agent.calls == [
        ("ca-authenticate", {"trustpoint": "myca"}),
        ("ca-authenticate", {"trustpoint": "myca", "fingerprint": "5871FB945565D46438912B0061E9F805"}),
    ]
    agent.calls.clear()
    cli, out = session(agent, ["no"])
    assert cli.execute("crypto ca authenticate myca")
    assert len(agent.calls) == 1 and "% Certificate not accepted." in out.getvalue()


def test_authenticate_terminal_trustpoint_reads_the_pasted_certificate() -> None:
    agent = FakeAgent(running=crypto("<ca><trustpoint><name>myca</name><enrollment><terminal/></enrollment>"
                                     "</trustpoint></ca>"))
    agent.replies["ca-authenticate"] = authenticate_reply
    cli, out = session(agent, ["", "MIIBbase64", "line2", "", "yes"])
    assert cli.execute("crypto ca authenticate myca")
    assert "Enter the base 64 encoded CA certificate.\n" in out.getvalue()
    pem = agent.calls[0][1]["ca-certificate"]
    assert pem == "-----BEGIN CERTIFICATE-----\nMIIBbase64\nline2\n-----END CERTIFICATE-----\n"
    assert agent.calls[1][1]["ca-certificate"] == pem and agent.calls[1][1]["fingerprint"]


def enroll_reply(status: str) -> Callable[[dict[str, str | None]], str]:
    def reply(args: dict[str, str | None]) -> str:
        return (f'<status xmlns="{CRYPTO}">{status}</status><transaction-id xmlns="{CRYPTO}">T1</transaction-id>'
                f'<request xmlns="{CRYPTO}"><key-usage>general-purpose</key-usage><status>{status}</status>'
                "<fingerprint>17D8B38DED2BDF2EDF8ADB7FA7DBE35A</fingerprint><serial-number>6E</serial-number>"
                "<message>refused by the CA</message></request>")
    return reply


def test_enroll_dialog_and_outcomes() -> None:
    agent = FakeAgent(running=crypto("<ca><trustpoint><name>myca</name><enrollment><retry><period>2</period>"
                                     "</retry></enrollment></trustpoint></ca>"))
    agent.replies["ca-enroll"] = enroll_reply("pending")
    cli, out = session(agent, ["secret", "secret"])
    assert cli.execute("crypto ca enroll myca")
    text = out.getvalue()
    assert "secret" not in text  # no echo
    assert "\nPassword: \nRe-enter Password: \n\nFingerprint: 17D8B38D ED2BDF2E DF8ADB7F A7DBE35A\n" in text
    assert "every 2 minute(s), up to 10 times" in text
    assert agent.calls == [("ca-enroll", {"trustpoint": "myca", "challenge-password": "secret"})]

    agent.calls.clear()  # a mismatch asks again
    cli, out = session(agent, ["secret", "other", "secret2", "secret2"])
    assert cli.execute("crypto ca enroll myca")
    assert "Re-enter Password: \n% Passwords do not match. Please try again.\nPassword: \nRe-enter Password: \n" in (
        out.getvalue()
    )
    assert agent.calls == [("ca-enroll", {"trustpoint": "myca", "challenge-password": "secret2"})]
    agent.calls.clear()
    cli, out = session(agent, ["secret", "other"])  # until the input ends
    assert not cli.execute("crypto ca enroll myca")
    assert out.getvalue().endswith("% Enrollment aborted\n") and agent.calls == []

    agent.replies["ca-enroll"] = enroll_reply("failed")
    cli, out = session(agent, ["a", "a"])
    assert not cli.execute("crypto ca enroll myca")
    assert out.getvalue().endswith("% Certificate enrollment failed: refused by the CA\n")


def test_agent_errors_read_like_the_router() -> None:
    agent = FakeAgent()

    def refuse(args: dict[str, str | None]) -> str:
        raise CliError("trustpoint nope is not configured", "data-missing")

    agent.replies["ca-clear-certificates"] = refuse
    cli, out = session(agent)
    assert not cli.execute("clear crypto ca certificates nope")
    assert out.getvalue() == "% trustpoint nope is not configured\n"


def test_output_modifiers_filter_any_show_and_only_shows() -> None:
    agent = FakeAgent(running=f'<hostname xmlns="{SYS}">r1</hostname>'
                      + crypto("<ca><trustpoint><name>myca</name><enrollment><url>http://ca</url></enrollment>"
                               "</trustpoint></ca>"))
    cli, out = session(agent)
    assert cli.execute("show running-config | include trustpoint|url")
    assert out.getvalue() == "crypto ca trustpoint myca\n enrollment url http://ca\n"
    cli, out = session(agent)
    assert cli.execute("sh run crypto ca trustpoint myca | count")  # with a section too
    assert out.getvalue() == "Number of lines which match regexp = 3\n"
    cli, out = session(agent)
    assert cli.execute("configure") and cli.execute("hostname r2")
    assert cli.execute("show configuration | exclude ^Building|^end")
    assert out.getvalue() == "hostname r2\n"
    cli, out = session(agent)
    assert not cli.execute("show running-config | grep x")
    assert out.getvalue() == " " * len("RP/0/RP0/CPU0:r1#show running-config | ") + "^\n" \
        "% Invalid input detected at '^' marker.\n"
    cli, out = session(agent)
    assert cli.execute("configure") and not cli.execute("hostname a | b")  # not a show: no modifiers
    assert out.getvalue().endswith("% Invalid input detected at '^' marker.\n")


def test_help_offers_the_modifiers_after_a_show() -> None:
    cli, _ = session(FakeAgent())
    assert cli.help_lines("show running-config ")[-2:] == ["  |     Output modifiers", "  <cr>"]
    assert cli.help_lines("show running-config | ")[0].startswith("  begin")
    assert "  |" not in "\n".join(cli.help_lines("crypto key generate rsa "))
    assert cli.completions("show running-config | ex") == ["exclude"]
