"""Fixtures for the SCEP end-to-end tests: real micromdm scepserver, lab CA, keys and CSRs.

scepserver listens on every interface, so it only ever runs inside a private
network namespace: run ``bash tests/netns_run.sh python -m pytest tests/e2e/scep``.
Outside one, the scepserver tests are skipped; the lab CA tests (127.0.0.1
only) run anywhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID, NameOID

from agent.labca import LabCa, LabCaServer
from agent.pki.scep import ScepClient, ScepTransportError

SCEPSERVER_CHALLENGE = "scep-secret"
READY_TIMEOUT = 10.0


def private_netns_reason() -> str | None:
    """None if we are inside the private namespace made by tests/netns_run.sh, else why not."""
    if os.environ.get("CA_AGENT_NETNS") != "1":
        return "scepserver binds all interfaces: run inside `bash tests/netns_run.sh python -m pytest ...`"
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        return f"CA_AGENT_NETNS=1 but this namespace has interfaces {interfaces}, not only lo"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ScepServer:
    url: str
    depot: Path
    challenge: str

    @property
    def ca_pem(self) -> Path:
        return self.depot / "ca.pem"


@pytest.fixture(scope="session")
def scepserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScepServer]:
    reason = private_netns_reason()
    if reason is not None:
        pytest.skip(reason)
    binary = shutil.which("scepserver")
    if binary is None:
        pytest.skip("scepserver (Debian package scep) is not installed")
    depot = tmp_path_factory.mktemp("scep") / "depot"
    subprocess.run(
        [binary, "ca", "-init", "-depot", str(depot), "-keySize", "2048", "-organization", "Test CA"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    log = (depot.parent / "scepserver.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-depot", str(depot), "-port", str(port), "-challenge", SCEPSERVER_CHALLENGE] + ["-allowrenew", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/scep"
    try:
        wait_until_serving(url, proc)
        yield ScepServer(url=url, depot=depot, challenge=SCEPSERVER_CHALLENGE)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def wait_until_serving(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll GetCACaps until it answers, within READY_TIMEOUT seconds."""
    deadline = time.monotonic() + READY_TIMEOUT
    delay = 0.005
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before serving")
        try:
            ScepClient(url, timeout=1.0).get_ca_caps()
            return
        except ScepTransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)  # bounded back-off: the socket is not listening yet
            delay = min(delay * 2, 0.1)


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


CsrFactory = Callable[..., x509.CertificateSigningRequest]


@pytest.fixture
def make_csr() -> CsrFactory:
    def make(
        key: rsa.RSAPrivateKey,
        *,
        cn: str | None = None,
        unstructured_name: str | None = None,
        challenge: str | None = None,
    ) -> x509.CertificateSigningRequest:
        attributes = []
        if unstructured_name is not None:
            attributes.append(x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, unstructured_name))
        if cn is not None:
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
        if challenge is not None:
            builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
        return builder.sign(key, hashes.SHA256())

    return make


LabCaFactory = Callable[..., tuple[LabCa, LabCaServer]]


@pytest.fixture
def lab_ca(tmp_path: Path) -> Iterator[LabCaFactory]:
    """Start lab CAs (in-process, 127.0.0.1, free port); all are stopped at teardown."""
    servers: list[LabCaServer] = []

    def start(*, cls: type[LabCa] = LabCa, name: str = "ca", **options: object) -> tuple[LabCa, LabCaServer]:
        ca = cls(tmp_path / name, **options)  # type: ignore[arg-type]
        server = LabCaServer(ca)
        server.start()
        servers.append(server)
        return ca, server

    yield start
    for server in servers:
        server.close()
