"""The seed's output blocks (seed/000_b1ede359057f2533.txt, "Configuration Examples"), verbatim,
and a layout skeleton to compare the CLI's output with them field by field.

Only the PDF-extraction artifacts are dropped (the ``` fences and the blank
lines they leave). Shared by tests/unit/cli and tests/e2e/cli.
"""

from __future__ import annotations

import re

SEED_MYPUBKEY = """\
Key label:mykey
Type      :RSA General purpose
Size      :1024
Created   :17:33:23 UTC Thu Sep 18 2003
Data      :
  30819F30 0D06092A 864886F7 0D010101 05000381 8D003081 89028181 00CB8D86
  BF6707AA FD7E4F08 A1F70080 B9E6016B 8128004C B477817B BCF35106 BC60B06E
  07A417FD 7979D262 B35465A6 1D3B70D1 36ACAFBD 7F91D5A0 CFB0EE91 B9D52C69
  7CAF89ED F66A6A58 89EEF776 A03916CB 3663FB17 B7DBEBF8 1C54AF7F 293F3004
  C15B08A8 C6965F1E 289DD724 BD40AF59 E90E44D5 7D590000 5C4BEA9D B5020301
  0001""".splitlines()

SEED_AUTHENTICATE = """\
Serial Number :01
Subject Name  :
cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US
Issued By     :
cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US
Validity Start :07:00:00 UTC Tue Aug 19 2003
Validity End   :07:00:00 UTC Wed Aug 19 2020
Fingerprint:58 71 FB 94 55 65 D4 64 38 91 2B 00 61 E9 F8 05
Do you accept this certificate?? [yes/no]:yes""".splitlines()

SEED_ENROLL = """\
% Start certificate enrollment ...
% Create a challenge password. You will need to verbally provide this
  password to the CA Administrator in order to revoke your certificate.
% For security reasons your password will not be saved in the configuration.
% Please make a note of it.
Password:
Re-enter Password:
Fingerprint: 17D8B38D ED2BDF2E DF8ADB7F A7DBE35A""".splitlines()

SEED_CERTIFICATES = """\
Trustpoint      :myca
=====
CA certificate
  Serial Number :01
  Subject Name  :
    cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US
  Issued By     :
    cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US
  Validity Start :07:00:00 UTC Tue Aug 19 2003
  Validity End   :07:00:00 UTC Wed Aug 19 2020

Router certificate
Key usage      :General Purpose
Status        :Available
Serial Number  :6E
Subject Name   :
                unstructuredName=myrouter.mydomain.com,o=Cisco Systems
Issued By     :
                cn=Root coax-u10 Certificate Manager,ou=HFR,o=Cisco Systems,l=San Jose,st=CA,c=US
Validity Start :21:43:14 UTC Mon Sep 22 2003
Validity End   :21:43:14 UTC Mon Sep 29 2003
CRL Distribution Point
                ldap://coax-u10.cisco.com/CN=Root coax-u10 Certificate Manager,O=Cisco Systems""".splitlines()

# "Regenerate the Certificate", step 2 (once; the seed repeats the dialog).
SEED_REGENERATE_DIALOG = """\
The name for the keys will be: mykey
% You already have keys defined for mykey
Do you really want to replace them? [yes/no]: yes
Choose the size of the key modulus in the range of 512 to 4096 for your General Purpose Keypair. \
Choosing a key modulus greater than 512 may take a few minutes.
How many bits in the modulus [2048]:
Generating RSA keys ...
Done w/ crypto generate keypair
[OK]""".splitlines()

_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTH = "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
DATE = re.compile(rf"^\d\d:\d\d:\d\d UTC {_DAY} {_MONTH} \d{{1,2}} \d{{4}}$")
FINGERPRINT_PAIRS = re.compile(r"^(?:[0-9A-F]{2} ){15}[0-9A-F]{2}$")
FINGERPRINT_GROUPS = re.compile(r"^(?:[0-9A-F]{8} ){3}[0-9A-F]{8}$")
HEX_LINE = re.compile(r"^  (?:[0-9A-F]{8} ){0,7}[0-9A-F]{2,8}$")
LABEL_LINE = re.compile(r"^(?P<label>\s*[A-Z][A-Za-z ]*?\s*):(?P<value>.*)$")
LITERALS = {"=====", "CA certificate", "Router certificate", "CRL Distribution Point"}


def _value_kind(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if DATE.match(value):
        return "<date>"
    if FINGERPRINT_PAIRS.match(value):
        return "<md5 pairs>"
    if FINGERPRINT_GROUPS.match(value):
        return "<md5 groups>"
    return "<value>"


def skeleton(lines: list[str], *, exact_spacing: bool = True) -> list[str]:
    """The layout of an output block: labels (with their spacing), order, indentation; values as kinds.

    Consecutive key-data hex lines become one ``<hex>``. With
    ``exact_spacing=False`` a label is compared by its words only.
    """
    out: list[str] = []
    for line in lines:
        if HEX_LINE.match(line):
            if not out or out[-1] != "  <hex>":
                out.append("  <hex>")
            continue
        match = LABEL_LINE.match(line)
        if match and line.strip() not in LITERALS:
            label = match.group("label") if exact_spacing else " ".join(match.group("label").split())
            out.append(f"{label}:{_value_kind(match.group('value'))}")
        elif line.strip() in LITERALS or not line.strip():
            out.append(line.rstrip())
        else:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + _value_kind(line))
    return out


def fields(lines: list[str]) -> list[tuple[str, str]]:
    """(label words, value) for each ``Label : value`` line. Raises nothing."""
    found = []
    for line in lines:
        match = LABEL_LINE.match(line)
        if match:
            found.append((" ".join(match.group("label").split()), match.group("value").strip()))
    return found
