"""``lab-ca``: run the lab SCEP CA, and administer its pending requests.

    lab-ca [serve] --port P --data-dir D [--host 127.0.0.1] [--challenge PW]
                   [--ra] [--manual-approval] [--validity-days N] [--crl-url URL]
                   [--subject DN]
    lab-ca list    --data-dir D [--all]
    lab-ca approve TXID --data-dir D
    lab-ca reject  TXID --data-dir D [--reason TEXT]
    lab-ca revoke  SERIAL --data-dir D [--reason REASON]   (hex, as displayed: 6E)
    lab-ca sign    [CSR-FILE] --data-dir D [--validity-days N]

``serve`` runs until SIGTERM/SIGINT and prints ``lab-ca listening on
http://HOST:PORT/scep`` on stderr once it accepts connections (``--port 0``
picks a free port). The other commands work on the data directory while the
server runs; the server re-reads request state from disk for every message. ``sign`` is the CA
side of cut-and-paste enrollment: it issues a certificate for a PKCS#10
request (PEM or DER, from the file or stdin) and prints it in PEM on stdout.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from agent.errors import PkiError
from agent.labca.ca import DEFAULT_CA_SUBJECT, LabCa
from agent.labca.server import LabCaServer
from agent.labca.store import LabCaError, RequestState, parse_serial, serial_hex
from agent.pki.csr import parse_subject_name

__all__ = ["main"]

_COMMANDS = ("serve", "list", "approve", "reject", "revoke", "sign")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab-ca", description="A small SCEP CA for labs and tests.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the CA's HTTP server (the default command)")
    serve.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    serve.add_argument("--data-dir", required=True, help="directory holding the CA state")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--challenge", default=None, help="required challenge password")
    serve.add_argument("--ra", action="store_true", help="use a registration authority certificate")
    serve.add_argument("--manual-approval", action="store_true", help="hold requests until approved")
    serve.add_argument("--validity-days", type=int, default=365, help="validity of issued certificates")
    serve.add_argument("--crl-url", default=None, help="CRL distribution point (default: this server's /crl)")
    serve.add_argument(
        "--subject", default=None, help="the CA's subject DN when it is created, e.g. 'CN=Domain B CA,O=Example'"
    )

    listing = sub.add_parser("list", help="list pending requests")
    listing.add_argument("--data-dir", required=True)
    listing.add_argument("--all", action="store_true", help="list requests in every state")

    for name, text in (("approve", "approve a pending request"), ("reject", "reject a pending request")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("transaction_id", metavar="TXID")
        cmd.add_argument("--data-dir", required=True)
        if name == "reject":
            cmd.add_argument("--reason", default=None)

    revoke = sub.add_parser("revoke", help="revoke an issued certificate and publish a new CRL")
    revoke.add_argument("serial", metavar="SERIAL", help="serial number in hex, e.g. 6E")
    revoke.add_argument("--data-dir", required=True)
    revoke.add_argument(
        "--reason",
        default=None,
        choices=[flag.value for flag in x509.ReasonFlags],
        help="RFC 5280 reason code put in the CRL entry (e.g. keyCompromise)",
    )

    sign = sub.add_parser("sign", help="issue a certificate for a pasted request (cut-and-paste enrollment)")
    sign.add_argument("csr", metavar="CSR-FILE", nargs="?", default="-",
                      help="the PKCS#10 request, PEM or DER (default: stdin)")
    sign.add_argument("--data-dir", required=True)
    sign.add_argument("--validity-days", type=int, default=365, help="validity of the certificate")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run the ``lab-ca`` command line; returns the exit status (0 ok, 1 failure, 2 usage).

    Raises nothing for operational failures (they are printed on stderr).
    """
    args_list = list(argv)
    if not args_list or args_list[0] not in (*_COMMANDS, "-h", "--help"):
        args_list.insert(0, "serve")
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse reports usage errors by exiting
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "list":
            return _list(args)
        if args.command == "revoke":
            return _revoke(args)
        if args.command == "sign":
            return _sign(args)
        return _decide(args)
    except LabCaError as exc:
        print(f"lab-ca: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"lab-ca: {exc}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="lab-ca: %(message)s", stream=sys.stderr)
    if args.validity_days <= 0:
        print("lab-ca: --validity-days must be positive", file=sys.stderr)
        return 2
    subject = DEFAULT_CA_SUBJECT
    if args.subject is not None:
        try:
            subject = parse_subject_name(args.subject)
        except PkiError as exc:
            print(f"lab-ca: --subject: {exc.message}", file=sys.stderr)
            return 2
    ca = LabCa(
        args.data_dir,
        ca_subject=subject,
        challenge=args.challenge,
        manual_approval=args.manual_approval,
        ra=args.ra,
        validity_days=args.validity_days,
        crl_url=args.crl_url,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    server = LabCaServer(ca, host=args.host, port=args.port)
    try:
        server.start()
        print(f"lab-ca listening on {server.url}", file=sys.stderr, flush=True)
        stop.wait()  # until a signal: serving has no deadline by design
    finally:
        server.close()
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    return 0


def _list(args: argparse.Namespace) -> int:
    ca = LabCa(args.data_dir, create=False)
    records = ca.requests() if args.all else ca.pending()
    if not records:
        print("no requests" if args.all else "no pending requests")
        return 0
    for record in records:
        serial = "" if record.serial is None else f" serial {serial_hex(record.serial)}"
        print(
            f"{record.transaction_id}  {record.state.value:<8}  {record.created:%Y-%m-%d %H:%M:%S}  "
            f"{record.subject}{serial}"
        )
    return 0


def _decide(args: argparse.Namespace) -> int:
    ca = LabCa(args.data_dir, create=False)
    if args.command == "approve":
        record = ca.approve(args.transaction_id)
    else:
        record = ca.reject(args.transaction_id, args.reason)
    verb = "approved" if record.state is RequestState.APPROVED else "rejected"
    print(f"{verb} {record.transaction_id} ({record.subject})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        serial = parse_serial(args.serial)
    except ValueError:
        print(f"lab-ca: {args.serial!r} is not a hexadecimal serial number", file=sys.stderr)
        return 2
    ca = LabCa(args.data_dir, create=False)
    crl = ca.revoke(serial, x509.ReasonFlags(args.reason) if args.reason else None)
    print(f"revoked serial {serial_hex(serial)}; CRL now lists {len(list(crl))} certificate(s)")
    return 0


def _read_csr(source: str) -> x509.CertificateSigningRequest | None:
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data[data.index(b"-----BEGIN") :])
        return x509.load_der_x509_csr(data)
    except ValueError:
        return None


def _sign(args: argparse.Namespace) -> int:
    if args.validity_days <= 0:
        print("lab-ca: --validity-days must be positive", file=sys.stderr)
        return 2
    csr = _read_csr(args.csr)
    if csr is None:
        print("lab-ca: that is not a PKCS#10 certificate request (PEM or DER)", file=sys.stderr)
        return 1
    if not csr.is_signature_valid:
        print("lab-ca: the request's signature does not verify", file=sys.stderr)
        return 1
    ca = LabCa(args.data_dir, create=False, validity_days=args.validity_days)
    cert = ca.issue(csr)
    sys.stdout.write(cert.public_bytes(Encoding.PEM).decode("ascii"))
    print(f"lab-ca: issued serial {serial_hex(cert.serial_number)} to {csr.subject.rfc4514_string()}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
