"""Helpers of the trust end-to-end tests: NETCONF calls, enrollment, a throwaway slapd (recipe of ../shared/PEERS.md)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).parents[2]))


CRYPTO = "urn:ca-agent:yang:crypto"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS = {"c": CRYPTO}
SUFFIX = "o=Example"
ADMIN = "cn=admin,o=Example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rpc(m, name: str, body: str = "") -> etree._Element:
    reply = m.dispatch(etree.fromstring(f'<{name} xmlns="{CRYPTO}">{body}</{name}>'))
    return etree.fromstring(reply.xml.encode())


def configure(m, xml: str) -> None:
    m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{xml}</config>')
    m.commit()


def text(element: etree._Element, path: str) -> str | None:
    return element.findtext(path, namespaces=NS)


def tp_state(m, name: str) -> etree._Element:
    data = m.get(filter=("xpath", f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='{name}']")).data_ele
    return data.find("c:crypto/c:ca/c:trustpoint", NS)


def enroll(m, tp: str, url: str, cn: str, extra: str = "") -> etree._Element:
    """Key pair, trustpoint, authenticate (accepted), enroll; returns the router certificate's state element."""
    rpc(m, "key-generate-rsa", f"<label>{tp}-key</label><modulus>2048</modulus>")
    configure(
        m,
        f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{tp}</name><enrollment><url>{url}</url></enrollment>'
        f"<rsakeypair>{tp}-key</rsakeypair><subject-name>CN={cn},O=Example</subject-name>{extra}</trustpoint></ca></crypto>",
    )
    assert text(rpc(m, "ca-authenticate", f"<trustpoint>{tp}</trustpoint><accept/>"), "c:installed") == "true"
    out = rpc(m, "ca-enroll", f"<trustpoint>{tp}</trustpoint>")
    assert text(out, "c:status") == "issued", etree.tostring(out).decode()
    return tp_state(m, tp).find("c:certificate", NS)


@dataclass
class Slapd:
    """A slapd instance on 127.0.0.1:port with suffix o=Example (started and stopped by the test)."""

    directory: Path
    port: int = field(default_factory=free_port)
    # (certificate, key) PEM files: slapd also listens for ldaps on tls_port with them.
    tls: tuple[Path, Path] | None = None
    tls_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def start(self) -> Slapd:
        (self.directory / "db").mkdir(parents=True, exist_ok=True)
        (self.directory / "slapd.conf").write_text(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n"
            "include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            f"pidfile {self.directory}/slapd.pid\n"
            + (f"TLSCertificateFile {self.tls[0]}\nTLSCertificateKeyFile {self.tls[1]}\n" if self.tls else "")
            + f"database mdb\nmaxsize 104857600\nsuffix \"{SUFFIX}\"\n"
            f"rootdn \"{ADMIN}\"\nrootpw secret\ndirectory {self.directory}/db\n"
        )
        listen = f"{self.url}/" + (f" {self.tls_url}/" if self.tls else "")
        subprocess.run(["slapd", "-f", str(self.directory / "slapd.conf"), "-h", listen], check=True, timeout=30)
        deadline = time.monotonic() + 15
        while True:
            probe = subprocess.run(["ldapsearch", "-x", "-H", self.url, "-b", "", "-s", "base"], capture_output=True)
            if probe.returncode in (0, 32):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not answer: {probe.stderr!r}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid_file = self.directory / "slapd.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().split()[0])
        subprocess.run(["kill", str(pid)], check=False)
        deadline = time.monotonic() + 15
        while pid_file.exists() or Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("slapd did not stop")
            time.sleep(0.05)

    def _ldap(self, tool: str, ldif: str) -> None:
        done = subprocess.run(
            [tool, "-x", "-H", self.url, "-D", ADMIN, "-w", "secret"], input=ldif, text=True, capture_output=True, timeout=30
        )
        assert done.returncode == 0, done.stderr

    def publish(self, dn: str, ca_der: bytes, crl_der: bytes) -> None:
        """The organisation entry (once) and the CA entry with its certificate and CRL (';binary', as slapd wants)."""
        ca_file, crl_file = self._files(ca_der, crl_der)
        cn = dn.split(",")[0].split("=", 1)[1]
        self._ldap(
            "ldapadd",
            f"dn: {SUFFIX}\nobjectClass: organization\no: Example\n\n"
            f"dn: {dn}\nobjectClass: cRLDistributionPoint\nobjectClass: pkiCA\ncn: {cn}\n"
            f"cACertificate;binary:< file://{ca_file}\ncertificateRevocationList;binary:< file://{crl_file}\n",
        )

    def replace_crl(self, dn: str, crl_der: bytes) -> None:
        _, crl_file = self._files(None, crl_der)
        self._ldap(
            "ldapmodify",
            f"dn: {dn}\nchangetype: modify\nreplace: certificateRevocationList;binary\n"
            f"certificateRevocationList;binary:< file://{crl_file}\n",
        )

    def _files(self, ca_der: bytes | None, crl_der: bytes) -> tuple[Path, Path]:
        folder = Path(tempfile.mkdtemp(dir=self.directory))
        (folder / "ca.der").write_bytes(ca_der or b"")
        (folder / "crl.der").write_bytes(crl_der)
        return folder / "ca.der", folder / "crl.der"
