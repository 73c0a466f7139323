"""``logging ...``, ``snmp-server ...`` and ``show logging``: their grammar and what they do.

Configuration lines (config mode), each one defining a whole line of the
running configuration, as on the router (entering a ``logging host`` or
``snmp-server host`` line again replaces that host's settings)::

    logging host ADDRESS [transport udp] [port N] [format rfc5424|rfc3164] [severity LEVEL]
    logging buffered <10-2000>                        (lines kept in memory)
    snmp-server host ADDRESS traps [version 2c] COMMUNITY [udp-port N]
    snmp-server traps pki
    no logging host ADDRESS | no logging buffered | no snmp-server host ADDRESS | no snmp-server traps pki

and ``show logging`` (EXEC). :mod:`agent.cli.commands` mounts the grammar,
:mod:`agent.cli.session` the handlers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lxml import etree

from agent.cli.alert_render import render_logging
from agent.cli.client import NC_NS, AgentClient
from agent.cli.console import Console
from agent.cli.grammar import Node, Parsed, argument, integer_range, keyword, rest_of_line
from agent.cli.render import SYS_NS

if TYPE_CHECKING:  # trust_commands imports the grammar, which imports this module
    from agent.cli.trust_commands import SessionState

__all__ = ["AlertCommands", "config_nodes", "no_nodes", "show_nodes", "SEVERITIES", "BUFFER_RANGE"]

# From yang/ca-agent-system.yang: the severity enumeration and /logging/buffered/size.
SEVERITIES = (
    "emergencies", "alerts", "critical", "errors", "warnings", "notifications", "informational", "debugging",
)
BUFFER_RANGE = (10, 2000)
_PORT = (1, 65535)
_SYS_NSMAP: Any = {None: SYS_NS}  # typed Any: lxml-stubs reject a None key


def _ip_address(word: str) -> bool:
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return False
    return True


def _port(name: str, action: str, children: list[Node]) -> Node:
    low, high = _PORT
    return argument(f"<{low}-{high}>", "UDP port", name, *children, action=action, check=integer_range(low, high))


Option = Callable[[str, list[Node]], Node]


def _chain(action: str, options: Sequence[Option]) -> list[Node]:
    """Optional parts in a fixed order: after each, only the later ones may follow; each may end the line."""
    return [option(action, _chain(action, options[index + 1 :])) for index, option in enumerate(options)]


def _transport(action: str, rest: list[Node]) -> Node:
    return keyword("transport", "Transport protocol",
                   keyword("udp", "Syslog over UDP", *rest, action=action, name="transport"))


def _host_port(action: str, rest: list[Node]) -> Node:
    return keyword("port", "Set the syslog server's UDP port", _port("port", action, rest))


def _format(action: str, rest: list[Node]) -> Node:
    return keyword(
        "format", "Message format",
        keyword("rfc5424", "The syslog protocol (RFC 5424, default)", *rest, action=action, name="format"),
        keyword("rfc3164", "BSD syslog (RFC 3164)", *rest, action=action, name="format"),
    )


def _severity(action: str, rest: list[Node]) -> Node:
    return keyword(
        "severity", "Set the severity of messages sent to this host",
        *[keyword(level, f"Messages of severity {level} and above", *rest, action=action, name="severity")
          for level in SEVERITIES],
    )


def config_nodes() -> list[Node]:
    """The configuration-mode commands ``logging`` and ``snmp-server``. Raises nothing."""
    host_options = _chain("logging-host", [_transport, _host_port, _format, _severity])
    low, high = BUFFER_RANGE
    community = argument("WORD", "SNMP community string", "community",
                         keyword("udp-port", "The receiver's UDP port", _port("port", "snmp-host", [])),
                         action="snmp-host")
    return [
        keyword(
            "logging", "Modify message logging facilities",
            keyword("host", "Log to a syslog server",
                    argument("A.B.C.D", "IP address of the syslog server", "address", *host_options,
                             action="logging-host", check=_ip_address)),
            keyword("buffered", "Set the in-memory log buffer",
                    argument(f"<{low}-{high}>", "Number of lines the buffer keeps", "size",
                             action="logging-buffered", check=integer_range(low, high))),
        ),
        keyword(
            "snmp-server", "Modify SNMP engine parameters",
            keyword("host", "Specify hosts to receive SNMP notifications",
                    argument("A.B.C.D", "IP address of the SNMP notification host", "address",
                             keyword("traps", "Send traps to this host",
                                     keyword("version", "SNMP version",
                                             keyword("2c", "SNMPv2c", community)),
                                     community))),
            keyword("traps", "Enable SNMP notifications",
                    keyword("pki", "Enable PKI traps (certificate expiry and install)", action="snmp-traps-pki")),
        ),
    ]


def no_nodes() -> list[Node]:
    """What ``no`` accepts for these commands (children of the config mode's ``no``). Raises nothing."""
    return [
        keyword(
            "logging", "Modify message logging facilities",
            keyword("host", "Stop logging to a syslog server",
                    argument("A.B.C.D", "IP address of the syslog server", "address",
                             rest_of_line("LINE", "Rest of the logging line", "rest", action="no-logging-host"),
                             action="no-logging-host", check=_ip_address)),
            keyword("buffered", "Set the log buffer back to its default size",
                    rest_of_line("LINE", "Buffer size", "rest", action="no-logging-buffered"),
                    action="no-logging-buffered"),
        ),
        keyword(
            "snmp-server", "Modify SNMP engine parameters",
            keyword("host", "Stop sending notifications to a host",
                    argument("A.B.C.D", "IP address of the SNMP notification host", "address",
                             rest_of_line("LINE", "Rest of the snmp-server host line", "rest", action="no-snmp-host"),
                             action="no-snmp-host", check=_ip_address)),
            keyword("traps", "Disable SNMP notifications",
                    keyword("pki", "Disable PKI traps", action="no-snmp-traps-pki")),
        ),
    ]


def show_nodes() -> list[Node]:
    """``show logging``. Raises nothing."""
    return [keyword("logging", "Show the contents of logging buffers", action="show-logging")]


def _edit(path: Sequence[str], leaves: Sequence[tuple[str, str | None]], operation: str | None = None) -> etree._Element:
    """<config> with the container/list entry at ``path`` holding ``leaves`` (None: an empty leaf)."""
    config = etree.Element(f"{{{NC_NS}}}config", nsmap={"nc": NC_NS})
    node = config
    for index, step in enumerate(path):
        node = etree.SubElement(node, f"{{{SYS_NS}}}{step}", nsmap=_SYS_NSMAP if index == 0 else None)
    for name, value in leaves:
        etree.SubElement(node, f"{{{SYS_NS}}}{name}").text = value
    if operation is not None:
        node.set(f"{{{NC_NS}}}operation", operation)
    return config


class AlertCommands:
    """The handlers of the logging and SNMP commands."""

    def __init__(self, client: AgentClient, console: Console, session: SessionState) -> None:
        self.client = client
        self.console = console
        self.session = session

    def handlers(self) -> dict[str, Callable[[Parsed], None]]:
        """Action name -> handler, for the session's dispatch table. Raises nothing."""
        return {
            "logging-host": self.logging_host,
            "no-logging-host": lambda p: self._remove(["logging", "host"], [("address", p.args["address"])]),
            "logging-buffered": lambda p: self.session.stage_command(
                _edit(["logging", "buffered"], [("size", p.args["size"])])
            ),
            "no-logging-buffered": lambda p: self._remove(["logging", "buffered", "size"], []),
            "snmp-host": self.snmp_host,
            "no-snmp-host": lambda p: self._remove(["snmp-server", "host"], [("address", p.args["address"])]),
            "snmp-traps-pki": lambda p: self.session.stage_command(_edit(["snmp-server", "traps"], [("pki", None)])),
            "no-snmp-traps-pki": lambda p: self._remove(["snmp-server", "traps", "pki"], []),
            "show-logging": self.show_logging,
        }

    def _remove(self, path: Sequence[str], leaves: Sequence[tuple[str, str | None]]) -> None:
        self.session.stage_command(_edit(path, leaves, operation="remove"))

    def logging_host(self, parsed: Parsed) -> None:
        """``logging host ADDRESS [...]``: the host's line, replacing any earlier one. Raises CliError, ConnectionLost."""
        leaves: list[tuple[str, str | None]] = [("address", parsed.args["address"])]
        leaves += [(name, parsed.args[name]) for name in ("transport", "port", "format", "severity") if name in parsed.args]
        self.session.stage_command(_edit(["logging", "host"], leaves, operation="replace"))

    def snmp_host(self, parsed: Parsed) -> None:
        """``snmp-server host ADDRESS traps [version 2c] COMMUNITY [udp-port N]``. Raises CliError, ConnectionLost."""
        leaves: list[tuple[str, str | None]] = [
            ("address", parsed.args["address"]),
            ("version", "v2c"),
            ("community", parsed.args["community"]),
        ]
        if "port" in parsed.args:
            leaves.append(("port", parsed.args["port"]))
        self.session.stage_command(_edit(["snmp-server", "host"], leaves, operation="replace"))

    def show_logging(self, parsed: Parsed) -> None:
        """``show logging``. Raises CliError, ConnectionLost."""
        lines = render_logging(self.client.state("logging"))
        self.console.write("\n".join(lines) + "\n")
