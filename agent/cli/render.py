"""Renderers: NETCONF data (lxml elements) to the router's output blocks, line by line.

Pure functions, no I/O. Layouts copy the seed (Cisco IOS XR, "Implementing
Certification Authority Interoperability") label for label: ``show crypto key
mypubkey rsa``, ``show crypto ca certificates``, the certificate shown by
``crypto ca authenticate``, the request fingerprint of ``crypto ca enroll`` and
``show running-config``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lxml import etree

from agent.cli.alert_render import ALERT_CONFIG_TAGS, alert_config_blocks, expiry_alert_line
from agent.cli.dates import DAYS, MONTHS, parse_date_time

__all__ = [
    "SYS_NS",
    "CRYPTO_NS",
    "CertificateView",
    "router_date",
    "hex_data_lines",
    "fingerprint_pairs",
    "fingerprint_groups",
    "render_mypubkey",
    "render_authentication_keys",
    "render_authenticate",
    "render_certificates",
    "render_running_config",
    "key_usage_name",
    "hostname_of",
    "fqdn_of",
    "DEFAULT_HOSTNAME",
]

SYS_NS = "urn:ca-agent:yang:system"
CRYPTO_NS = "urn:ca-agent:yang:crypto"



def _c(name: str) -> str:
    return f"{{{CRYPTO_NS}}}{name}"


def _s(name: str) -> str:
    return f"{{{SYS_NS}}}{name}"


def _text(element: etree._Element | None, *path: str) -> str | None:
    """Text of the crypto-namespace descendant at ``path`` (None if absent)."""
    node = element
    for step in path:
        if node is None:
            return None
        node = node.find(_c(step))
    return None if node is None else (node.text or "")


def router_date(value: str | None) -> str:
    """A yang:date-and-time as the router prints it: ``07:00:00 UTC Tue Aug 19 2003``.

    Returns the value unchanged if it is not a date-and-time (never raises).
    """
    if not value:
        return ""
    utc = parse_date_time(value)
    if utc is None:
        return value
    return f"{utc:%H:%M:%S} UTC {DAYS[utc.weekday()]} {MONTHS[utc.month - 1]} {utc.day} {utc.year:04d}"


def hex_data_lines(hex_data: str, indent: str = "  ") -> list[str]:
    """Hex bytes in 8-digit groups, 8 groups a line (the ``Data`` of ``show crypto key mypubkey rsa``)."""
    digits = "".join(hex_data.split()).upper()
    groups = [digits[i : i + 8] for i in range(0, len(digits), 8)]
    return [indent + " ".join(groups[i : i + 8]) for i in range(0, len(groups), 8)]


def fingerprint_pairs(hex_data: str) -> str:
    """``58 71 FB 94 ...``: the fingerprint as ``crypto ca authenticate`` shows it."""
    digits = "".join(c for c in hex_data.upper() if c not in " :")
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def fingerprint_groups(hex_data: str) -> str:
    """``17D8B38D ED2BDF2E ...``: the request fingerprint as ``crypto ca enroll`` shows it."""
    digits = "".join(c for c in hex_data.upper() if c not in " :")
    return " ".join(digits[i : i + 8] for i in range(0, len(digits), 8))


_KEY_USAGE = {"general-purpose": "General Purpose", "signature": "Signature", "encryption": "Encryption"}
_STATUS = {
    "available": "Available",
    "pending": "Pending",
    "key-missing": "Key missing",
    "key-mismatch": "Key mismatch",
    "revoked": "Revoked",
    # the final states of a request that produced no certificate
    "rejected": "Rejected",
    "timed-out": "Timed out",
    "failed": "Failed",
}
_FAILED_REQUEST_STATES = ("rejected", "timed-out", "failed")
_KEY_TYPE = {"general-purpose": "RSA General purpose", "signature": "RSA Signature", "encryption": "RSA Encryption"}


def key_usage_name(usage: str | None) -> str:
    """``general-purpose`` -> ``General Purpose`` (the router's words). Raises nothing."""
    return _KEY_USAGE.get(usage or "", usage or "")


# --------------------------------------------------------------------------- keys


def render_mypubkey(data: etree._Element, label: str | None = None) -> list[str]:
    """``show crypto key mypubkey rsa [LABEL]`` from a <data> holding /crypto/key.

    One block per key pair (two for usage keys), blank line between blocks::

        Key label: mykey
        Type     : RSA General purpose
        Size     : 1024
        Created  : 17:33:23 UTC Thu Sep 18 2003
        Data     :
          30819F30 0D06092A ...
    """
    blocks: list[list[str]] = []
    for rsa in data.iterfind(f"{_c('crypto')}/{_c('key')}/{_c('rsa')}"):
        name = _text(rsa, "label") or ""
        if label is not None and name != label:
            continue
        for pair in rsa.iterfind(_c("key-pair")):
            usage = _text(pair, "usage") or "general-purpose"
            block = [
                f"Key label: {name}",
                f"Type     : {_KEY_TYPE.get(usage, usage)}",
                f"Size     : {_text(rsa, 'size') or ''}",
                f"Created  : {router_date(_text(rsa, 'created'))}",
                "Data     :",
                *hex_data_lines(_text(pair, "public-key") or ""),
            ]
            blocks.append(block)
    return _join_blocks(blocks)


def render_authentication_keys(data: etree._Element, label: str | None = None) -> list[str]:
    """``show crypto key authentication rsa``: imported public keys, in the mypubkey layout plus the user."""
    blocks: list[list[str]] = []
    path = f"{_c('crypto')}/{_c('key')}/{_c('authentication')}/{_c('rsa')}"
    for rsa in data.iterfind(path):
        name = _text(rsa, "label") or ""
        if label is not None and name != label:
            continue
        blocks.append(
            [
                f"Key label: {name}",
                "Type     : RSA public key used for authentication",
                f"User     : {_text(rsa, 'user') or ''}",
                f"Size     : {_text(rsa, 'size') or ''}",
                f"Created  : {router_date(_text(rsa, 'created'))}",
                "Data     :",
                *hex_data_lines(_text(rsa, "public-key") or ""),
            ]
        )
    return _join_blocks(blocks)


def _join_blocks(blocks: Iterable[list[str]]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        lines.extend(block)
    return lines


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class CertificateView:
    """The certificate-info leaves of the YANG (state, or an RPC's output)."""

    serial_number: str = ""
    subject: str = ""
    issuer: str = ""
    valid_from: str = ""
    valid_to: str = ""
    crl_distribution_points: tuple[str, ...] = ()
    fingerprint: str = ""
    fingerprint_md5: str = ""
    key_usage: str = ""
    status: str = ""

    @classmethod
    def from_element(cls, element: etree._Element) -> CertificateView:
        """Read the leaves that are children of ``element`` (missing ones are empty). Raises nothing."""
        return cls(
            serial_number=_text(element, "serial-number") or "",
            subject=_text(element, "subject") or "",
            issuer=_text(element, "issuer") or "",
            valid_from=_text(element, "valid-from") or "",
            valid_to=_text(element, "valid-to") or "",
            crl_distribution_points=tuple(e.text or "" for e in element.iterfind(_c("crl-distribution-point"))),
            fingerprint=_text(element, "fingerprint") or "",
            fingerprint_md5=_text(element, "fingerprint-md5") or "",
            key_usage=_text(element, "key-usage") or "",
            status=_text(element, "status") or "",
        )

    @property
    def display_fingerprint(self) -> str:
        """The MD5 fingerprint the router shows (SHA-256 if the agent gave no MD5)."""
        return self.fingerprint_md5 or self.fingerprint


def render_authenticate(cert: CertificateView) -> list[str]:
    """The CA certificate as ``crypto ca authenticate`` shows it, before ``Do you accept this certificate??``."""
    return [
        f"Serial Number :{cert.serial_number}",
        "Subject Name  :",
        cert.subject,
        "Issued By     :",
        cert.issuer,
        f"Validity Start :{router_date(cert.valid_from)}",
        f"Validity End   :{router_date(cert.valid_to)}",
        f"Fingerprint:{fingerprint_pairs(cert.display_fingerprint)}",
    ]


def _ca_block(title: str, cert: CertificateView, expiry: str | None = None) -> list[str]:
    lines = [
        title,
        f"  Serial Number :{cert.serial_number}",
        "  Subject Name  :",
        f"    {cert.subject}",
        "  Issued By     :",
        f"    {cert.issuer}",
        f"  Validity Start :{router_date(cert.valid_from)}",
        f"  Validity End   :{router_date(cert.valid_to)}",
    ]
    if expiry:
        lines.append(f"  {expiry}")
    if cert.crl_distribution_points:
        lines.append("  CRL Distribution Point")
        lines.extend(f"    {uri}" for uri in cert.crl_distribution_points)
    return lines


_VALUE_INDENT = " " * 16


def _router_block(cert: CertificateView, expiry: str | None = None) -> list[str]:
    lines = [
        "Router certificate",
        f"Key usage      :{key_usage_name(cert.key_usage)}",
        f"Status        :{_STATUS.get(cert.status, cert.status)}",
    ]
    if cert.serial_number:
        lines.append(f"Serial Number  :{cert.serial_number}")
    if cert.subject:
        lines += ["Subject Name   :", _VALUE_INDENT + cert.subject]
    if cert.issuer:
        lines += ["Issued By     :", _VALUE_INDENT + cert.issuer]
    if cert.valid_from:
        lines.append(f"Validity Start :{router_date(cert.valid_from)}")
    if cert.valid_to:
        lines.append(f"Validity End   :{router_date(cert.valid_to)}")
    if expiry:
        lines.append(expiry)
    if cert.crl_distribution_points:
        lines.append("CRL Distribution Point")
        lines.extend(_VALUE_INDENT + uri for uri in cert.crl_distribution_points)
    return lines


def _failed_request_lines(request: etree._Element, state: str) -> list[str]:
    """Why and when a request ended without a certificate (rejected, timed out, failed)."""
    lines = [f"Reason         :{_text(request, 'last-error') or 'not given'}"]
    updated = _text(request, "updated")
    if updated:
        lines.append(f"{_STATUS[state] + ' at':<15}:{router_date(updated)}")
    txid = _text(request, "transaction-id")
    if txid:
        lines.append(f"Transaction ID :{txid}")
    return lines


def _trustpoint_block(trustpoint: etree._Element, now: dt.datetime | None = None) -> list[str]:
    name = _text(trustpoint, "name") or ""
    sections: list[list[str]] = []
    ca = trustpoint.find(_c("ca-certificate"))
    if ca is not None:
        expiry = expiry_alert_line(ca, now) if now is not None else None
        sections.append(_ca_block("CA certificate", CertificateView.from_element(ca), expiry))
    for ra in trustpoint.iterfind(_c("ra-certificate")):
        sections.append(_ca_block("RA certificate", CertificateView.from_element(ra)))
    shown: dict[str, list[str]] = {}
    for element in trustpoint.iterfind(_c("certificate")):
        cert = CertificateView.from_element(element)
        shown[cert.key_usage] = _router_block(cert, expiry_alert_line(element, now) if now is not None else None)
        sections.append(shown[cert.key_usage])
    # A request still pending at the CA shows as a router certificate with Status Pending; one that
    # ended without a certificate stays visible (Rejected, Timed out, Failed: why and when) until
    # the next enrollment, under the certificate it was meant to replace if there is one.
    for request in trustpoint.iterfind(f"{_c('enrollment')}/{_c('request')}"):
        usage = _text(request, "key-usage") or "general-purpose"
        state = _text(request, "state") or ""
        if state == "pending" and usage not in shown:
            sections.append(_router_block(CertificateView(key_usage=usage, status="pending")))
        elif state in _FAILED_REQUEST_STATES and usage in shown:
            shown[usage].append(f"Last enrollment:{_STATUS[state]}")
            shown[usage].extend(_failed_request_lines(request, state))
        elif state in _FAILED_REQUEST_STATES:
            block = _router_block(CertificateView(key_usage=usage, status=state))
            sections.append(block + _failed_request_lines(request, state))
    lines = [f"Trustpoint      :{name}", "====="]
    for index, section in enumerate(sections):
        if index:
            lines.append("")
        lines.extend(section)
    return lines


def render_certificates(
    data: etree._Element, trustpoint: str | None = None, now: dt.datetime | None = None
) -> list[str]:
    """``show crypto ca certificates [NAME]`` from a <data> holding /crypto/ca (state).

    With ``now``, a certificate within 60 days of its end gets an ``Expiry
    alert`` line (mode and when the next notification is due).
    """
    blocks: list[list[str]] = []
    for element in data.iterfind(f"{_c('crypto')}/{_c('ca')}/{_c('trustpoint')}"):
        if trustpoint is not None and _text(element, "name") != trustpoint:
            continue
        blocks.append(_trustpoint_block(element, now))
    return _join_blocks(blocks)


# --------------------------------------------------------------------------- running-config

DEFAULT_HOSTNAME = "router"  # the YANG default of /hostname


def hostname_of(data: etree._Element) -> str:
    """The hostname in a running <data> (the YANG default ``router`` when unset). Raises nothing."""
    return data.findtext(_s("hostname")) or DEFAULT_HOSTNAME


def fqdn_of(data: etree._Element) -> str:
    """hostname.domain-name from a running <data>, as the agent names keys by default. Raises nothing."""
    domain = data.findtext(f"{_s('domain')}/{_s('name')}")
    return f"{hostname_of(data)}.{domain}" if domain else hostname_of(data)


def _trustpoint_config(trustpoint: etree._Element) -> list[str]:
    lines = [f"crypto ca trustpoint {_text(trustpoint, 'name') or ''}"]
    enrollment = trustpoint.find(_c("enrollment"))
    url = _text(enrollment, "url")
    if url is not None:
        lines.append(f" enrollment url {url}")
    if enrollment is not None and enrollment.find(_c("terminal")) is not None:
        lines.append(" enrollment terminal")
    query = _text(trustpoint, "query-url")
    if query is not None:
        lines.append(f" query url {query}")
    count = _text(enrollment, "retry", "count")
    if count is not None:
        lines.append(f" enrollment retry count {count}")
    period = _text(enrollment, "retry", "period")
    if period is not None:
        lines.append(f" enrollment retry period {period}")
    subject = _text(trustpoint, "subject-name")
    if subject is not None:
        lines.append(f" subject-name {subject}")
    rsakeypair = _text(trustpoint, "rsakeypair")
    if rsakeypair is not None:
        lines.append(f" rsakeypair {rsakeypair}")
    if trustpoint.find(_c("crl-optional")) is not None:
        lines.append(" crl optional")
    lines.append("!")
    return lines


NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
_KNOWN_CONFIG = {_s("hostname"), _s("domain"), _s("aaa"), _c("crypto"), f"{{{NACM_NS}}}nacm", *ALERT_CONFIG_TAGS}


def _n(name: str) -> str:
    return f"{{{NACM_NS}}}{name}"


def _nacm_blocks(nacm: etree._Element) -> list[list[str]]:
    """RFC 8341 access control as IOS XR-style task groups: one ``taskgroup`` block per rule-list.

    Group membership is shown under each ``username`` (``group NAME``).
    """
    blocks: list[list[str]] = []
    for leaf in ("enable-nacm", "read-default", "write-default", "exec-default", "enable-external-groups"):
        value = nacm.findtext(_n(leaf))
        if value is not None:
            blocks.append([f"nacm {leaf} {value}"])
    for rule_list in nacm.iterfind(_n("rule-list")):
        block = [f"taskgroup {rule_list.findtext(_n('name')) or ''}"]
        block += [f" usergroup {group.text or ''}" for group in rule_list.iterfind(_n("group"))]
        for rule in rule_list.iterfind(_n("rule")):
            words = [" rule", rule.findtext(_n("name")) or "", rule.findtext(_n("action")) or "",
                     rule.findtext(_n("access-operations")) or "*"]
            module = rule.findtext(_n("module-name"))
            if module is not None and module != "*":
                words.append(f"module {module}")
            for kind, word in (("rpc-name", "rpc"), ("path", "path"), ("notification-name", "notification")):
                target = rule.findtext(_n(kind))
                if target is not None:
                    words.append(f"{word} {target}")
            block.append(" ".join(words))
        blocks.append([*block, "!"])
    return blocks


def _groups_of(data: etree._Element, user: str) -> list[str]:
    return [
        group.findtext(_n("name")) or ""
        for group in data.iterfind(f"{_n('nacm')}/{_n('groups')}/{_n('group')}")
        if any(member.text == user for member in group.iterfind(_n("user-name")))
    ]


def _generic_lines(element: etree._Element, prefix: str) -> list[str]:
    """Configuration the CLI has no syntax for, flattened to ``words value`` lines."""
    name = etree.QName(element).localname
    words = f"{prefix} {name}".strip()
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        text = (element.text or "").strip()
        return [f"{words} {text}".rstrip()]
    lines: list[str] = []
    for child in children:
        lines.extend(_generic_lines(child, words))
    return lines


def config_blocks(data: etree._Element) -> list[list[str]]:
    """The running configuration as the router's blocks (a block: one line, or a mode ended by ``!``)."""
    blocks: list[list[str]] = []
    hostname = data.findtext(_s("hostname"))
    if hostname is not None:
        blocks.append([f"hostname {hostname}"])
    domain = data.findtext(f"{_s('domain')}/{_s('name')}")
    if domain is not None:
        blocks.append([f"domain name {domain}"])
    for user in data.iterfind(f"{_s('aaa')}/{_s('user')}"):
        name = user.findtext(_s("name")) or ""
        block = [f"username {name}", *(f" group {group}" for group in _groups_of(data, name))]
        secret = user.findtext(_s("password-hash"))
        if secret is not None:
            block.append(f" secret {secret}")
        block.append("!")
        blocks.append(block)
    for trustpoint in data.iterfind(f"{_c('crypto')}/{_c('ca')}/{_c('trustpoint')}"):
        blocks.append(_trustpoint_config(trustpoint))
    policy = data.find(f"{_c('crypto')}/{_c('ca')}/{_c('trustpool')}/{_c('policy')}")
    if policy is not None:
        block = ["crypto ca trustpool policy"]
        if _text(policy, "cabundle-url") is not None:
            block.append(f" cabundle url {_text(policy, 'cabundle-url')}")
        if policy.find(_c("crl-optional")) is not None:
            block.append(" crl optional")
        blocks.append([*block, "!"])
    blocks.extend(alert_config_blocks(data))
    nacm = data.find(_n("nacm"))
    if nacm is not None:
        blocks.extend(_nacm_blocks(nacm))
    crypto = data.find(_c("crypto"))
    if crypto is not None:
        for child in crypto:
            if isinstance(child.tag, str) and child.tag != _c("ca"):
                blocks.extend([line] for line in _generic_lines(child, "crypto"))
    for child in data:
        if isinstance(child.tag, str) and child.tag not in _KNOWN_CONFIG:
            blocks.extend([line] for line in _generic_lines(child, ""))
    return blocks


def _matches(header: str, words: Sequence[str]) -> bool:
    header_words = header.split()
    if len(words) > len(header_words):
        return False
    return all(h.lower().startswith(w.lower()) for h, w in zip(header_words, words, strict=False))


def render_running_config(data: etree._Element, section: str | None = None) -> list[str]:
    """``show running-config [SECTION]`` from a get-config <data>.

    Without a section: ``Building configuration...``, every block, ``end``.
    With one (``show runn crypto ca trustpoint myca``): the blocks whose first
    line starts with those words (each may be abbreviated), or
    ``% No such configuration item(s)``.
    """
    blocks = config_blocks(data)
    if section and section.strip():
        words = section.split()
        chosen = [b for b in blocks if _matches(b[0], words)]
        if not chosen:
            return ["% No such configuration item(s)"]
        return [line for block in chosen for line in block]
    return ["Building configuration...", *[line for block in blocks for line in block], "end"]
