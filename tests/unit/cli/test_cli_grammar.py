"""The router-style grammar: abbreviations, errors with positions, `?` help, Tab completion."""

from __future__ import annotations

import pytest

from agent.cli.commands import Mode, tree
from agent.cli.grammar import ErrorKind, ParseError, completions, format_help, help_entries, parse

EXEC, CONFIG, TP = tree(Mode.EXEC), tree(Mode.CONFIG), tree(Mode.TRUSTPOINT)


@pytest.mark.parametrize(
    ("line", "action", "args"),
    [
        ("show running-config", "show-running", {}),
        ("show runn", "show-running", {}),
        ("sh run crypto ca trustpoint myca", "show-running", {"section": "crypto ca trustpoint myca"}),
        ("show crypto key mypubkey rsa", "show-mypubkey", {}),
        ("sh cry ca cert myca", "show-certificates", {"trustpoint": "myca"}),
        ("crypto key generate rsa", "key-generate", {}),
        ("crypto key generate rsa general-keys", "key-generate", {"type": "general-keys"}),
        ("crypto key generate rsa mykey", "key-generate", {"label": "mykey"}),
        ("crypto key generate rsa usage-keys mykey", "key-generate", {"type": "usage-keys", "label": "mykey"}),
        ("crypto key generate rsa usage keys mykey", "key-generate", {"type": "usage", "label": "mykey"}),
        ("crypto key zeroize rsa key1", "key-zeroize", {"label": "key1"}),
        ("crypto key import authentication rsa general-keys", "key-import", {"type": "general-keys"}),
        ("crypto ca authenticate myca", "ca-authenticate", {"trustpoint": "myca"}),
        ("crypto ca enroll myca", "ca-enroll", {"trustpoint": "myca"}),
        ("crypto ca import myca certificate", "ca-import", {"trustpoint": "myca"}),
        ("clear crypto ca certificates", "ca-clear", {}),
        ("clear crypto ca certificates myca", "ca-clear", {"trustpoint": "myca"}),
        ("conf t", "configure", {}),
    ],
)
def test_exec_commands_and_abbreviations(line: str, action: str, args: dict[str, str]) -> None:
    parsed = parse(EXEC, line)
    assert (parsed.action, parsed.args) == (action, args)


@pytest.mark.parametrize(
    ("line", "action", "value"),
    [
        ("enrollment url http://ca.domain.com/certsrv/mscep/mscep.dll", "enrollment-url",
         "http://ca.domain.com/certsrv/mscep/mscep.dll"),
        ("enrollment terminal", "enrollment-terminal", None),
        ("query url ldap://my-ldap.domain.com", "query-url", "ldap://my-ldap.domain.com"),
        ("enrollment retry period 2", "retry-period", "2"),
        ("enrollment retry count 100", "retry-count", "100"),
        ("rsakeypair mykey", "rsakeypair", "mykey"),
        ("rsa keypair mykey", "rsakeypair", "mykey"),  # the seed's summary spelling
        ("rsaakeypair mykey", "rsakeypair", "mykey"),  # the seed's configuration example spelling
        ("subject-name CN=r1, O=Example", "subject-name", "CN=r1, O=Example"),
        ("no enrollment retry period", "no-retry-period", None),
        ("no rsakeypair", "no-rsakeypair", None),
        ("no rsa keypair mykey", "no-rsakeypair", "mykey"),
    ],
)
def test_trustpoint_commands(line: str, action: str, value: str | None) -> None:
    parsed = parse(TP, line)
    assert parsed.action == action
    assert parsed.args.get("value") == value


def test_config_commands() -> None:
    assert parse(CONFIG, "hostname myhost").args == {"value": "myhost"}
    assert parse(CONFIG, "domain name mydomain.com").args == {"value": "mydomain.com"}
    assert parse(CONFIG, "crypto ca trustpoint myca").action == "trustpoint"
    assert parse(CONFIG, "no crypto ca trustpoint myca").action == "no-trustpoint"
    assert parse(CONFIG, "do show runn").action == "show-running"
    assert parse(CONFIG, "end").action == "end"


@pytest.mark.parametrize(
    ("mode_tree", "line", "kind", "position"),
    [
        (EXEC, "shw", ErrorKind.INVALID, 0),
        (EXEC, "show crypto ca certificatez", ErrorKind.INVALID, 15),
        (EXEC, "show crypto", ErrorKind.INCOMPLETE, 11),
        (EXEC, "crypto ca import myca", ErrorKind.INCOMPLETE, 21),
        (EXEC, "c", ErrorKind.AMBIGUOUS, 0),  # configure, crypto, clear
        (TP, "enrollment retry period 61", ErrorKind.INVALID, 24),
        (TP, "enrollment retry count 0", ErrorKind.INVALID, 23),
        (TP, "rsa mykey", ErrorKind.INVALID, 4),
        (EXEC, "show runn", None, 0),
    ],
)
def test_errors_say_where(mode_tree, line: str, kind: ErrorKind | None, position: int) -> None:
    if kind is None:
        parse(mode_tree, line)
        return
    with pytest.raises(ParseError) as caught:
        parse(mode_tree, line)
    assert caught.value.kind is kind
    assert caught.value.position == position


def test_error_messages_are_the_routers() -> None:
    assert ParseError(ErrorKind.INVALID, 0).message == "% Invalid input detected at '^' marker."
    assert ParseError(ErrorKind.INCOMPLETE, 0).message == "% Incomplete command."
    assert ParseError(ErrorKind.AMBIGUOUS, 0, "c").message == '% Ambiguous command: "c"'


def test_help_lists_what_is_valid_here() -> None:
    assert [w for w, _ in help_entries(EXEC, "")] == ["clear", "configure", "crypto", "exit", "rollback", "show"]
    assert [w for w, _ in help_entries(EXEC, "c")] == ["clear", "configure", "crypto"]
    assert [w for w, _ in help_entries(EXEC, "show ")] == ["configuration", "crypto", "logging", "running-config"]
    assert [w for w, _ in help_entries(EXEC, "crypto key generate rsa ")] == [
        "general-keys", "usage-keys", "WORD", "<cr>"]
    assert [w for w, _ in help_entries(TP, "enrollment retry period ")] == ["<1-60>"]
    assert [w for w, _ in help_entries(TP, "enrollment retry count ")] == ["<1-100>"]
    hidden = [w for w, _ in help_entries(TP, "")]
    assert "rsakeypair" in hidden and "rsaakeypair" not in hidden and "rsa" not in hidden
    with pytest.raises(ParseError):
        help_entries(EXEC, "shw ")
    lines = format_help(help_entries(EXEC, "show "))
    assert lines == [
        "  configuration   Configuration commit database",
        "  crypto          Crypto commands",
        "  logging         Show the contents of logging buffers",
        "  running-config  Current operating configuration",
    ]


def test_completion_of_keywords() -> None:
    assert completions(EXEC, "sh") == ["show"]
    assert completions(EXEC, "show cr") == ["crypto"]
    assert completions(EXEC, "show crypto ") == ["key", "ca"]
    assert completions(TP, "enrollment r") == ["retry"]
    assert completions(EXEC, "shw ") == []
