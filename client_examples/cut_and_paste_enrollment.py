"""Seed procedure "Configuring Certificate Enrollment Using Cut-and-Paste", in two steps.

    request: configure / crypto ca trustpoint NAME / enrollment terminal / commit,
             crypto ca authenticate NAME (the CA certificate from --ca-cert-file),
             crypto ca enroll NAME -> the PKCS#10 request(s) written to --csr-out
    import:  crypto ca import NAME certificate (the certificate the CA issued)
"""

import argparse
import os
from pathlib import Path

from _common import CRYPTO, NS, connect, edit_and_commit, leaf, parser, rpc, run


def request(m, args: argparse.Namespace) -> int:
    trustpoint = leaf("name", args.trustpoint) + "<enrollment><terminal/></enrollment>" + leaf("rsakeypair", args.rsakeypair)
    edit_and_commit(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>{trustpoint}</trustpoint></ca></crypto>')
    # The operator got the CA certificate out of band and pastes it: accepting it is the point.
    body = leaf("trustpoint", args.trustpoint) + leaf("ca-certificate", args.ca_cert_file.read_text())
    authenticated = rpc(m, "ca-authenticate", body + "<accept/>")
    if authenticated.findtext("c:installed", namespaces=NS) != "true":
        print("the CA certificate was not installed")
        return 1
    enroll = leaf("trustpoint", args.trustpoint) + leaf("challenge-password", os.environ.get("CA_CHALLENGE_PASSWORD"))
    reply = rpc(m, "ca-enroll", enroll)
    requests = [r.findtext("c:pem", namespaces=NS) for r in reply.iterfind("c:certificate-request", NS)]
    if not requests:
        print(f"no certificate request: {reply.findtext('c:message', namespaces=NS)}")
        return 1
    args.csr_out.write_text("".join(requests))
    print(f"{len(requests)} certificate request(s) written to {args.csr_out}: have the CA sign them, then run "
          f"'{Path(__file__).name} import --trustpoint {args.trustpoint} --certificate-file CERT.pem'")
    return 0


def import_certificate(m, args: argparse.Namespace) -> int:
    body = leaf("trustpoint", args.trustpoint) + leaf("certificate", args.certificate_file.read_text())
    reply = rpc(m, "ca-import-certificate", body)
    print(f"imported the {reply.findtext('c:key-usage', namespaces=NS)} certificate, serial number "
          f"{reply.findtext('c:serial-number', namespaces=NS)}, subject {reply.findtext('c:subject', namespaces=NS)}")
    return 0


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    steps = p.add_subparsers(dest="step", required=True)
    first = steps.add_parser("request", help="declare the trustpoint, authenticate the CA, write the request(s)")
    first.add_argument("--trustpoint", required=True)
    first.add_argument("--ca-cert-file", type=Path, required=True, help="the CA certificate (PEM)")
    first.add_argument("--rsakeypair", help="key pair label (default: the default key pair)")
    first.add_argument("--csr-out", type=Path, required=True, help="where to write the PEM request(s)")
    second = steps.add_parser("import", help="install the certificate the CA issued")
    second.add_argument("--trustpoint", required=True)
    second.add_argument("--certificate-file", type=Path, required=True, help="the issued certificate (PEM)")
    args = p.parse_args()
    with connect(args) as m:
        return request(m, args) if args.step == "request" else import_certificate(m, args)


if __name__ == "__main__":
    run(main)
