"""The command language of ``ca-cli``: one grammar tree per mode (exec, config, config-trustp).

Pure data. Action names are the keys :mod:`agent.cli.session` dispatches on;
every show command's action starts with ``show-`` (:func:`is_show`), which
is what lets its output go through the output modifiers (``| include ...``).
The syntax follows the seed (Cisco IOS XR, "Implementing Certification
Authority Interoperability"); where the seed spells a command two ways both
are accepted (``rsakeypair`` / ``rsa keypair``, ``usage-keys`` / ``usage
keys``), and the configuration example's ``rsaakeypair`` typo is a hidden
alias.
"""

from __future__ import annotations

import enum

from agent.cli import alert_commands, history_commands, trust_grammar
from agent.cli.grammar import Node, argument, integer_range, keyword, rest_of_line

__all__ = ["Mode", "tree", "is_show", "RETRY_PERIOD_RANGE", "RETRY_COUNT_RANGE", "MODULUS_RANGE"]

# From yang/ca-agent-crypto.yang: enrollment/retry/period, enrollment/retry/count and key-generate-rsa/modulus.
RETRY_PERIOD_RANGE = (1, 60)
RETRY_COUNT_RANGE = (1, 100)
MODULUS_RANGE = (1024, 4096)
DEFAULT_MODULUS = 2048


class Mode(enum.Enum):
    EXEC = "exec"
    CONFIG = "config"
    TRUSTPOINT = "config-trustp"
    TRUSTPOOL = "config-trustpool"


def is_show(action: str) -> bool:
    """Whether an action is a show command (its output may be filtered). Raises nothing."""
    return action.startswith("show-")


def _label(action: str) -> Node:
    return argument("WORD", "RSA key pair label", "label", action=action)


def _key_type_then_label(action: str) -> list[Node]:
    """[general-keys | usage-keys | usage keys] [LABEL], each position ending the command."""
    return [
        keyword("general-keys", "Generate a general purpose RSA key pair", _label(action), action=action, name="type"),
        keyword("usage-keys", "Generate separate signature and encryption RSA key pairs", _label(action),
                action=action, name="type"),
        keyword("usage", "usage keys", keyword("keys", "Special usage keys", _label(action), action=action),
                name="type", hidden=True),
        _label(action),
    ]


def _import_key_type_then_label(action: str) -> list[Node]:
    """[general-keys] [LABEL] of ``crypto key import authentication rsa``."""
    label = argument("WORD", "Label of the imported key (default: your user name)", "label", action=action)
    return [
        keyword("general-keys", "Import a general purpose RSA public key (the only kind accepted)", label,
                action=action, name="type"),
        label,
    ]


def _show(config_mode: bool = False) -> Node:
    if config_mode:
        configuration = keyword("configuration", "Contents of this session's uncommitted configuration changes",
                                *history_commands.show_nodes(), action="show-configuration")
    else:
        configuration = keyword("configuration", "Configuration commit database", *history_commands.show_nodes())
    return keyword(
        "show",
        "Show commands",
        configuration,
        keyword(
            "running-config",
            "Current operating configuration",
            rest_of_line("LINE", "Configuration section to show (e.g. crypto ca trustpoint myca)", "section",
                         action="show-running"),
            action="show-running",
        ),
        keyword(
            "crypto",
            "Crypto commands",
            keyword(
                "key",
                "Show key information",
                keyword(
                    "mypubkey",
                    "Show the router's public keys",
                    keyword("rsa", "RSA key pairs",
                            argument("WORD", "RSA key pair label", "label", action="show-mypubkey"),
                            action="show-mypubkey"),
                ),
                keyword(
                    "authentication",
                    "Show public keys imported for user authentication",
                    keyword("rsa", "RSA public keys",
                            argument("WORD", "RSA key label", "label", action="show-authkeys"),
                            action="show-authkeys"),
                ),
            ),
            keyword(
                "ca",
                "Show CA related information",
                keyword("certificates", "Show certificates",
                        argument("WORD", "Trustpoint name", "trustpoint", action="show-certificates"),
                        action="show-certificates"),
            ),
        ),
        *alert_commands.show_nodes(),
    )


def _trustpoint_name(action: str | None, *children: Node) -> Node:
    return argument("WORD", "Trustpoint (CA) name", "trustpoint", *children, action=action)


def _exec_commands(include_mode_changes: bool = True) -> list[Node]:
    commands = [
        keyword(
            "crypto",
            "Encryption module",
            keyword(
                "key",
                "Long term key operations",
                keyword("generate", "Generate new keys",
                        keyword("rsa", "Generate RSA keys", *_key_type_then_label("key-generate"),
                                action="key-generate")),
                keyword("zeroize", "Remove keys",
                        keyword("rsa", "Remove RSA keys", _label("key-zeroize"), action="key-zeroize")),
                keyword(
                    "import",
                    "Import a key",
                    keyword("authentication", "Import a public key for user authentication",
                            keyword("rsa", "RSA public key of a user (pasted; logs that user in over SSH)",
                                    *_import_key_type_then_label("key-import"), action="key-import")),
                ),
            ),
            keyword(
                "ca",
                "Certification authority",
                keyword("authenticate", "Get the certification authority certificate",
                        _trustpoint_name("ca-authenticate")),
                keyword("enroll", "Request a certificate from a CA", _trustpoint_name("ca-enroll")),
                keyword("cancel-enroll", "Cancel a pending enrollment request",
                        _trustpoint_name("ca-cancel-enroll")),
                keyword("import", "Import a certificate from a CA (cut-and-paste enrollment)",
                        _trustpoint_name(
                            None,
                            keyword("certificate", "Import a router certificate", action="ca-import"),
                        )),
            ),
        ),
        keyword(
            "clear",
            "Reset functions",
            keyword("crypto", "Encryption module",
                    keyword("ca", "Certification authority",
                            keyword("certificates", "Remove certificates",
                                    _trustpoint_name("ca-clear"), action="ca-clear"))),
        ),
        history_commands.rollback_node(),
        _show(),
    ]
    if include_mode_changes:
        commands.insert(0, keyword("configure", "Enter configuration mode",
                                   keyword("terminal", "Configure from the terminal", action="configure"),
                                   action="configure"))
        commands.append(keyword("exit", "Exit from the EXEC", action="exit"))
        commands.append(keyword("quit", "Exit from the EXEC", action="exit", hidden=True))
    return commands


def _config_common() -> list[Node]:
    return [
        keyword("commit", "Commit the configuration changes to running", *history_commands.commit_option_nodes(),
                action="commit"),
        keyword("end", "Exit from configure mode", action="end"),
        keyword("exit", "Exit from this submode", action="exit"),
        keyword("abort", "Discard all uncommitted changes and exit from configure mode", action="abort"),
        keyword("do", "Run an exec command", *_exec_commands(include_mode_changes=False)),
        _show(config_mode=True),
    ]


def _config_commands() -> list[Node]:
    hostname = argument("WORD", "This system's network name", "value", action="hostname")
    domain = argument("WORD", "Default domain name", "value", action="domain")
    trustpoint = argument("WORD", "Trustpoint name", "trustpoint", action="trustpoint")
    no = keyword(
        "no",
        "Negate a command or set its defaults",
        keyword("hostname", "Set system's network name",
                argument("WORD", "This system's network name", "value", action="no-hostname"),
                action="no-hostname"),
        keyword("domain", "Domain service configuration commands",
                keyword("name", "Define the default domain name",
                        argument("WORD", "Default domain name", "value", action="no-domain"),
                        action="no-domain")),
        keyword("crypto", "Encryption module",
                keyword("ca", "Certification authority",
                        keyword("trustpoint", "Define a CA trustpoint",
                                argument("WORD", "Trustpoint name", "trustpoint", action="no-trustpoint")))),
        *alert_commands.no_nodes(),
    )
    return [
        keyword("hostname", "Set system's network name", hostname),
        keyword("domain", "Domain service configuration commands",
                keyword("name", "Define the default domain name", domain)),
        keyword("crypto", "Encryption module",
                keyword("ca", "Certification authority",
                        keyword("trustpoint", "Define a CA trustpoint", trustpoint))),
        *alert_commands.config_nodes(),
        no,
        *_config_common(),
    ]


def _trustpoint_commands() -> list[Node]:
    period_low, period_high = RETRY_PERIOD_RANGE
    count_low, count_high = RETRY_COUNT_RANGE

    def retry(action: str, optional_value: bool) -> list[Node]:
        period = argument(f"<{period_low}-{period_high}>", "Number of minutes to wait between polls", "value",
                          action=f"{action}-period", check=integer_range(period_low, period_high))
        count = argument(f"<{count_low}-{count_high}>", "Number of polls before giving up", "value",
                         action=f"{action}-count", check=integer_range(count_low, count_high))
        return [
            keyword("period", "How long to wait between certificate request retries", period,
                    action=f"{action}-period" if optional_value else None),
            keyword("count", "How many times to retry a certificate request", count,
                    action=f"{action}-count" if optional_value else None),
        ]

    def rsakeypair(action: str, optional_value: bool) -> list[Node]:
        label = argument("WORD", "RSA key pair label", "value", action=action)
        end = action if optional_value else None
        return [
            keyword("rsakeypair", "Specify the RSA key pair for this trustpoint", label, action=end),
            keyword("rsa", "Specify the RSA key pair for this trustpoint",
                    keyword("keypair", "RSA key pair label", label, action=end), hidden=True),
            keyword("rsaakeypair", "Specify the RSA key pair for this trustpoint", label, action=end, hidden=True),
        ]

    url = argument("WORD", "The CA's enrollment URL (http://...)", "value", action="enrollment-url")
    query = argument("WORD", "The LDAP URL of the CA's CRL server (ldap://...)", "value", action="query-url")
    subject = rest_of_line("LINE", "Subject name, e.g. CN=r1,O=Example", "value", action="subject-name")
    no = keyword(
        "no",
        "Negate a command or set its defaults",
        keyword("enrollment", "Enrollment parameters",
                keyword("url", "CA URL", argument("WORD", "The CA's enrollment URL", "value",
                                                  action="no-enrollment-url"), action="no-enrollment-url"),
                keyword("terminal", "Cut-and-paste enrollment", action="no-enrollment-terminal"),
                keyword("retry", "Polling parameters", *retry("no-retry", optional_value=True))),
        keyword("query", "Query parameters",
                keyword("url", "LDAP URL", argument("WORD", "LDAP URL", "value", action="no-query-url"),
                        action="no-query-url")),
        *rsakeypair("no-rsakeypair", optional_value=True),
        keyword("subject-name", "Subject name",
                rest_of_line("LINE", "Subject name", "value", action="no-subject-name"), action="no-subject-name"),
    )
    return [
        keyword("enrollment", "Enrollment parameters",
                keyword("url", "CA URL", url),
                keyword("terminal", "Enroll via the terminal (cut-and-paste)", action="enrollment-terminal"),
                keyword("retry", "Polling parameters", *retry("retry", optional_value=False))),
        keyword("query", "Query parameters", keyword("url", "LDAP URL of the CA's CRL server", query)),
        *rsakeypair("rsakeypair", optional_value=False),
        keyword("subject-name", "Subject name to request", subject),
        no,
        *_config_common(),
    ]


_TREES: dict[Mode, list[Node]] = {
    Mode.EXEC: _exec_commands(),
    Mode.CONFIG: _config_commands(),
    Mode.TRUSTPOINT: _trustpoint_commands(),
    Mode.TRUSTPOOL: trust_grammar.trustpool_mode(_config_common()),
}
trust_grammar.graft(_TREES[Mode.EXEC], _TREES[Mode.CONFIG], _TREES[Mode.TRUSTPOINT], _TREES[Mode.TRUSTPOOL])


def tree(mode: Mode) -> list[Node]:
    """The top-level commands of a mode. Raises nothing."""
    return _TREES[mode]
