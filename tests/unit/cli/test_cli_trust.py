"""agent.cli.trust_grammar and trust_commands' renderers: the trust commands parse and print as the router's."""

from __future__ import annotations

import pytest
from lxml import etree

from agent.cli.commands import Mode, tree
from agent.cli.grammar import ErrorKind, ParseError, parse
from agent.cli.trust_commands import render_crls, render_trustpool

C = "urn:ca-agent:yang:crypto"


@pytest.mark.parametrize(
    ("mode", "line", "action", "args"),
    [
        (Mode.EXEC, "crypto ca crl request B", "crl-request", {"trustpoint": "B"}),
        (Mode.EXEC, "crypto ca trustpool import url http://h/b.pem", "trustpool-import-url", {"url": "http://h/b.pem"}),
        (Mode.EXEC, "crypto ca trustpool import url clean", "trustpool-clear", {}),
        (Mode.EXEC, "crypto ca trustpool import clean url http://h/b", "trustpool-import-clean-url", {"url": "http://h/b"}),
        (Mode.EXEC, "crypto ca verify trustpoint B purpose ike", "ca-verify", {"trustpoint": "B", "purpose": "ike"}),
        (Mode.EXEC, "sh cry ca crls", "show-crls", {}),
        (Mode.CONFIG, "do crypto ca crl request B", "crl-request", {"trustpoint": "B"}),
        (Mode.CONFIG, "crypto ca trustpool policy", "trustpool-policy", {}),
        (Mode.CONFIG, "no crypto ca trustpool policy", "no-trustpool-policy", {}),
        (Mode.TRUSTPOINT, "crl optional", "crl-optional", {}),
        (Mode.TRUSTPOINT, "no crl optional", "no-crl-optional", {}),
        (Mode.TRUSTPOOL, "cabundle url http://h/b", "cabundle-url", {"value": "http://h/b"}),
        (Mode.TRUSTPOOL, "crl optional", "pool-crl-optional", {}),
        (Mode.TRUSTPOOL, "show crypto ca trustpool", "show-trustpool", {}),
    ],
)
def test_trust_commands_parse(mode: Mode, line: str, action: str, args: dict[str, str]) -> None:
    parsed = parse(tree(mode), line)
    assert (parsed.action, parsed.args) == (action, args)


def test_incomplete_and_invalid() -> None:
    with pytest.raises(ParseError) as incomplete:
        parse(tree(Mode.EXEC), "crypto ca crl request")
    assert incomplete.value.kind is ErrorKind.INCOMPLETE
    with pytest.raises(ParseError) as invalid:
        parse(tree(Mode.EXEC), "crypto ca verify purpose sideways")
    assert invalid.value.kind is ErrorKind.INVALID


def test_render_crls_and_trustpool() -> None:
    data = etree.fromstring(
        f'<data><crypto xmlns="{C}"><ca><trustpoint><name>B</name><crl><source>ldap://h</source>'
        "<issuer>cn=B CA</issuer><this-update>2026-01-01T00:00:00Z</this-update>"
        "<next-update>2026-01-08T00:00:00Z</next-update><revoked-certificates>2</revoked-certificates>"
        "<last-error>ldap://h: refused</last-error><last-attempt>2026-01-02T10:00:00Z</last-attempt>"
        "<next-fetch>2026-01-02T10:05:00Z</next-fetch></crl></trustpoint>"
        "<trustpool><certificate><fingerprint>AB</fingerprint><subject>cn=R</subject><issuer>cn=R</issuer>"
        "<serial-number>01</serial-number><valid-from>2026-01-01T00:00:00Z</valid-from>"
        "<valid-to>2036-01-01T00:00:00Z</valid-to></certificate></trustpool></ca></crypto></data>"
    )
    assert render_crls(data) == [
        "CRL Entry", "=" * 47, "Trustpoint : B", "Issuer : cn=B CA",
        "Last Update : 00:00:00 UTC Thu Jan 1 2026", "Next Update : 00:00:00 UTC Thu Jan 8 2026",
        "Revoked Certificates : 2", "CRL Distribution Point :", "ldap://h", "Last Error : ldap://h: refused",
        "Last Attempt : 10:00:00 UTC Fri Jan 2 2026", "Next Fetch : 10:05:00 UTC Fri Jan 2 2026",
    ]
    pool = render_trustpool(data)
    assert "CA certificate" in pool and "  Serial Number  : 01" in pool and "        AB" in pool
    assert render_trustpool(etree.fromstring("<data/>")) == ["% The trustpool is empty"]
