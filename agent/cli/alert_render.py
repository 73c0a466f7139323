"""Renderers for logging and SNMP: ``show logging``, their running-config lines, the expiry-alert line.

Pure functions, no I/O (the caller passes ``now``).
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from agent.cli.dates import MONTHS, parse_date_time

__all__ = ["alert_config_blocks", "render_logging", "expiry_alert_line", "ALERT_CONFIG_TAGS"]

SYS_NS = "urn:ca-agent:yang:system"  # the same namespaces as agent.cli.render (which imports this module)
CRYPTO_NS = "urn:ca-agent:yang:crypto"
_WINDOW = dt.timedelta(days=60)  # expiry notifications start 60 days before the end of validity
_LINE_PREFIX = "RP/0/RP0/CPU0:"


def _s(name: str) -> str:
    return f"{{{SYS_NS}}}{name}"


def _c(name: str) -> str:
    return f"{{{CRYPTO_NS}}}{name}"


ALERT_CONFIG_TAGS = frozenset({_s("logging"), _s("snmp-server")})
"""Top-level configuration rendered by :func:`alert_config_blocks`."""


def _relative(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def expiry_alert_line(element: etree._Element, now: dt.datetime) -> str | None:
    """``Expiry alert   :warning, next in 6 days`` for a certificate within 60 days of its end; else None.

    ``element`` is a certificate node of the state (``certificate`` or
    ``ca-certificate``) with its ``valid-to`` and ``expiry-alert``. Raises nothing.
    """
    alert = element.find(_c("expiry-alert"))
    valid_to = parse_date_time(element.findtext(_c("valid-to")))
    if alert is None or valid_to is None or valid_to - now > _WINDOW:
        return None
    next_time = parse_date_time(alert.findtext(_c("next-notification")))
    next_mode = alert.findtext(_c("next-mode"))
    if next_time is not None and next_mode:
        when = "due now" if next_time <= now else f"next in {_relative(next_time - now)}"
        return f"Expiry alert   :{next_mode}, {when}"
    last_mode = alert.findtext(_c("last-mode"))
    if valid_to <= now:
        return "Expiry alert   :expired"
    return f"Expiry alert   :{last_mode or 'alert'}, last one sent"


def _log_time(value: str | None) -> str:
    utc = parse_date_time(value)
    if utc is None:
        return value or ""
    return f"{MONTHS[utc.month - 1]} {utc.day:>2} {utc:%H:%M:%S}.{utc.microsecond // 1000:03d} UTC"


def render_logging(data: etree._Element) -> list[str]:
    """``show logging`` from a <get> of /logging (configuration and state). Raises nothing."""
    log_config = data.find(_s("logging"))
    buffered = log_config.find(_s("buffered")) if log_config is not None else None
    size = (buffered.findtext(_s("size")) if buffered is not None else None) or "200"  # the YANG default
    logged = (buffered.findtext(_s("messages-logged")) if buffered is not None else None) or "0"
    lines = ["Syslog logging: enabled"]
    hosts = log_config.findall(_s("host")) if log_config is not None else []
    for host in hosts:
        port = host.findtext(_s("port")) or "514"
        transport = (host.findtext(_s("transport")) or "udp").upper()
        form = (host.findtext(_s("format")) or "rfc5424").upper().replace("RFC", "RFC ")
        severity = host.findtext(_s("severity")) or "informational"
        sent = host.findtext(_s("messages-sent")) or "0"
        lines.append(
            f"    Logging to {host.findtext(_s('address'))} port {port} ({transport}, {form}), "
            f"level {severity}, {sent} message lines sent"
        )
    lines.append(f"    Buffer logging: level debugging, {logged} messages logged")
    lines += ["", f"Log Buffer ({size} lines):", ""]
    entries = buffered.findall(_s("entry")) if buffered is not None else []
    for entry in sorted(entries, key=lambda e: int(e.findtext(_s("sequence")) or 0)):
        lines.append(f"{_LINE_PREFIX}{_log_time(entry.findtext(_s('time')))}: ca-agent: {entry.findtext(_s('message'))}")
    return lines


def alert_config_blocks(data: etree._Element) -> list[list[str]]:
    """The running-config lines of /logging and /snmp-server, one block per line. Raises nothing."""
    blocks: list[list[str]] = []
    log_config = data.find(_s("logging"))
    if log_config is not None:
        for host in log_config.iterfind(_s("host")):
            line = f"logging host {host.findtext(_s('address'))}"
            for leaf, word in (("transport", "transport"), ("port", "port"), ("format", "format"), ("severity", "severity")):
                value = host.findtext(_s(leaf))
                if value is not None:
                    line += f" {word} {value}"
            blocks.append([line])
        size = log_config.findtext(f"{_s('buffered')}/{_s('size')}")
        if size is not None:
            blocks.append([f"logging buffered {size}"])
    snmp = data.find(_s("snmp-server"))
    if snmp is not None:
        for host in snmp.iterfind(_s("host")):
            version = (host.findtext(_s("version")) or "v2c").lstrip("v")
            line = f"snmp-server host {host.findtext(_s('address'))} traps version {version} {host.findtext(_s('community'))}"
            port = host.findtext(_s("port"))
            if port is not None:
                line += f" udp-port {port}"
            blocks.append([line])
        if snmp.find(f"{_s('traps')}/{_s('pki')}") is not None:
            blocks.append(["snmp-server traps pki"])
    return blocks
