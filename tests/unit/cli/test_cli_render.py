"""Renderers of agent/cli/render.py against the seed's blocks, line by line."""

from __future__ import annotations

from cli_seed_text import (
    SEED_AUTHENTICATE,
    SEED_CERTIFICATES,
    SEED_MYPUBKEY,
    fields,
    skeleton,
)
from lxml import etree

from agent.cli.render import (
    CertificateView,
    fingerprint_groups,
    fingerprint_pairs,
    fqdn_of,
    hex_data_lines,
    render_authenticate,
    render_certificates,
    render_mypubkey,
    render_running_config,
    router_date,
)

CRYPTO = "urn:ca-agent:yang:crypto"
SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SEED_KEY_HEX = "".join("".join(line.split()) for line in SEED_MYPUBKEY[5:])
ROOT_DN = "cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US"


def data(body: str) -> etree._Element:
    return etree.fromstring(f'<data xmlns="{NC}">{body}</data>')


def key_state(label: str = "mykey", *pairs: tuple[str, str], size: str = "1024") -> str:
    pair_xml = "".join(f"<key-pair><usage>{u}</usage><public-key>{k}</public-key></key-pair>" for u, k in pairs)
    return (
        f"<rsa><label>{label}</label><type>general-purpose</type><size>{size}</size>"
        f"<created>2003-09-18T17:33:23Z</created>{pair_xml}</rsa>"
    )


SEED_CA = f"""<ca-certificate><serial-number>01</serial-number><subject>{ROOT_DN}</subject>
  <issuer>{ROOT_DN}</issuer><valid-from>2003-08-19T07:00:00Z</valid-from><valid-to>2020-08-19T07:00:00Z</valid-to>
  <fingerprint-md5>5871FB945565D46438912B0061E9F805</fingerprint-md5></ca-certificate>"""
SEED_ROUTER_CERT = f"""<certificate><key-usage>general-purpose</key-usage><status>available</status>
  <serial-number>6E</serial-number><subject>unstructuredName=myrouter.mydomain.com,o=Cisco Systems</subject>
  <issuer>{ROOT_DN}</issuer><valid-from>2003-09-22T21:43:14Z</valid-from><valid-to>2003-09-29T21:43:14+00:00</valid-to>
  <crl-distribution-point>ldap://coax-u10.cisco.com/CN=Root coax-u10 Certificate Manager,O=Cisco Systems</crl-distribution-point>
</certificate>"""


def test_router_date_matches_the_seed_format() -> None:
    assert router_date("2003-08-19T07:00:00Z") == "07:00:00 UTC Tue Aug 19 2003"
    assert router_date("2003-09-18T19:33:23+02:00") == "17:33:23 UTC Thu Sep 18 2003"
    assert router_date("2026-11-06T01:02:03.5Z") == "01:02:03 UTC Fri Nov 6 2026"
    assert router_date("not a date") == "not a date"


def test_fingerprints_in_the_seed_groupings() -> None:
    assert fingerprint_pairs("5871FB945565D46438912B0061E9F805") == "58 71 FB 94 55 65 D4 64 38 91 2B 00 61 E9 F8 05"
    assert fingerprint_groups("17d8b38ded2bdf2edf8adb7fa7dbe35a") == "17D8B38D ED2BDF2E DF8ADB7F A7DBE35A"


def test_key_data_lines_are_the_seeds() -> None:
    assert hex_data_lines(SEED_KEY_HEX) == SEED_MYPUBKEY[5:]


def test_mypubkey_block_field_by_field() -> None:
    lines = render_mypubkey(data(f'<crypto xmlns="{CRYPTO}"><key>{key_state("mykey", ("general-purpose", SEED_KEY_HEX))}</key></crypto>'))
    # Values, labels and order are the seed's; the label column is IOS XR's ("Key label: X", "Type     : ...").
    assert fields(lines) == fields(SEED_MYPUBKEY)
    assert skeleton(lines, exact_spacing=False) == skeleton(SEED_MYPUBKEY, exact_spacing=False)
    assert lines[:5] == [
        "Key label: mykey",
        "Type     : RSA General purpose",
        "Size     : 1024",
        "Created  : 17:33:23 UTC Thu Sep 18 2003",
        "Data     :",
    ]
    assert lines[5:] == SEED_MYPUBKEY[5:]


def test_mypubkey_usage_keys_one_block_per_key_pair_and_label_filter() -> None:
    state = key_state("mykey", ("signature", "30"), ("encryption", "31")) + key_state("other", ("general-purpose", "32"))
    root = data(f'<crypto xmlns="{CRYPTO}"><key>{state}</key></crypto>')
    lines = render_mypubkey(root)
    assert [line for line in lines if line.startswith("Type")] == [
        "Type     : RSA Signature",
        "Type     : RSA Encryption",
        "Type     : RSA General purpose",
    ]
    assert lines.count("") == 2  # blocks are separated by one blank line
    assert [line for line in render_mypubkey(root, "other") if line.startswith("Key label")] == ["Key label: other"]
    assert render_mypubkey(root, "missing") == []


def test_authenticate_block_is_the_seeds() -> None:
    reply = etree.fromstring(f'<rpc-reply xmlns="{NC}">' + SEED_CA.replace("<ca-certificate>", f'<x xmlns="{CRYPTO}">')
                             .replace("</ca-certificate>", "</x>") + "</rpc-reply>")
    lines = render_authenticate(CertificateView.from_element(reply.find(f"{{{CRYPTO}}}x")))
    assert lines == SEED_AUTHENTICATE[:-1]


def test_certificates_block_is_the_seeds_line_by_line() -> None:
    root = data(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name>{SEED_CA}{SEED_ROUTER_CERT}'
                "</trustpoint></ca></crypto>")
    assert render_certificates(root) == SEED_CERTIFICATES
    assert render_certificates(root, "myca") == SEED_CERTIFICATES
    assert render_certificates(root, "other") == []


def test_certificates_pending_request_and_no_ca_yet() -> None:
    root = data(f'<crypto xmlns="{CRYPTO}"><ca>'
                "<trustpoint><name>a</name></trustpoint>"
                f"<trustpoint><name>b</name>{SEED_CA}<enrollment><request><key-usage>general-purpose</key-usage>"
                "<state>pending</state></request></enrollment></trustpoint></ca></crypto>")
    lines = render_certificates(root)
    assert lines[:3] == ["Trustpoint      :a", "=====", ""]
    assert lines[3:5] == ["Trustpoint      :b", "====="]
    assert lines[-3:] == ["Router certificate", "Key usage      :General Purpose", "Status        :Pending"]


def test_a_failed_re_enrollment_shows_under_the_certificate_it_meant_to_replace() -> None:
    mismatch = SEED_ROUTER_CERT.replace("<status>available</status>", "<status>key-mismatch</status>")
    request = ("<enrollment><request><key-usage>general-purpose</key-usage><state>timed-out</state>"
               "<transaction-id>T1</transaction-id><last-error>the CA still held the request pending</last-error>"
               "<updated>2003-09-23T10:00:00Z</updated></request></enrollment>")
    root = data(f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name>{request}{SEED_CA}{mismatch}'
                "</trustpoint></ca></crypto>")
    lines = render_certificates(root)
    assert "Status        :Key mismatch" in lines
    assert lines[-4:] == [
        "Last enrollment:Timed out",
        "Reason         :the CA still held the request pending",
        "Timed out at   :10:00:00 UTC Tue Sep 23 2003",
        "Transaction ID :T1",
    ]


def test_running_config_in_router_syntax() -> None:
    root = data(
        f'<hostname xmlns="{SYS}">myhost</hostname><domain xmlns="{SYS}"><name>mydomain.com</name></domain>'
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>myca</name>'
        "<enrollment><url>http://xyz-ultra5</url><retry><period>2</period><count>25</count></retry></enrollment>"
        "<query-url>ldap://my-ldap.domain.com</query-url><rsakeypair>mykey</rsakeypair></trustpoint>"
        "<trustpoint><name>paste</name><enrollment><terminal/></enrollment></trustpoint></ca></crypto>"
        '<snmp-server xmlns="urn:example"><traps><pki/></traps></snmp-server>'
    )
    assert render_running_config(root) == [
        "Building configuration...",
        "hostname myhost",
        "domain name mydomain.com",
        "crypto ca trustpoint myca",
        " enrollment url http://xyz-ultra5",
        " query url ldap://my-ldap.domain.com",
        " enrollment retry count 25",
        " enrollment retry period 2",
        " rsakeypair mykey",
        "!",
        "crypto ca trustpoint paste",
        " enrollment terminal",
        "!",
        "snmp-server traps pki",
        "end",
    ]
    # `show runn SECTION`, keywords abbreviated as on the router (the seed's `show runn snmp-server traps`).
    assert render_running_config(root, "snmp-server traps") == ["snmp-server traps pki"]
    assert render_running_config(root, "cry ca trust paste") == ["crypto ca trustpoint paste", " enrollment terminal", "!"]
    assert render_running_config(root, "hostn") == ["hostname myhost"]
    assert render_running_config(root, "logging") == ["% No such configuration item(s)"]
    assert fqdn_of(root) == "myhost.mydomain.com"
    assert fqdn_of(data("")) == "router"
