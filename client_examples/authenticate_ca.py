"""Seed procedure "Authenticating the CA": crypto ca authenticate NAME.

The first ca-authenticate only fetches and shows the CA certificate. It is
installed by a second call carrying the fingerprint you verified with the CA
administrator (--fingerprint, MD5 as the router shows it, or SHA-1/SHA-256),
or --accept to take it as fetched ("Do you accept this certificate?? yes").
For an 'enrollment terminal' trustpoint give the CA certificate with --ca-cert-file.
"""

from pathlib import Path

from _common import NS, connect, leaf, parser, rpc, run


def show(reply) -> None:
    for label, name in (("Serial Number", "serial-number"), ("Subject Name", "subject"), ("Issued By", "issuer"),
                        ("Validity Start", "valid-from"), ("Validity End", "valid-to")):
        print(f"{label:<15}: {reply.findtext(f'c:{name}', namespaces=NS)}")
    md5 = reply.findtext("c:fingerprint-md5", namespaces=NS) or ""
    print("Fingerprint    :", " ".join(md5[i:i + 2] for i in range(0, len(md5), 2)))


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trustpoint", required=True)
    confirm = p.add_mutually_exclusive_group()
    confirm.add_argument("--fingerprint", help="install only if the CA certificate has this fingerprint")
    confirm.add_argument("--accept", action="store_true", help="install the certificate as fetched")
    p.add_argument("--ca-cert-file", type=Path, help="the CA certificate (PEM), for enrollment terminal")
    args = p.parse_args()
    body = leaf("trustpoint", args.trustpoint)
    if args.ca_cert_file:
        body += leaf("ca-certificate", args.ca_cert_file.read_text())
    with connect(args) as m:
        show(rpc(m, "ca-authenticate", body))
        if not (args.fingerprint or args.accept):
            print("not installed: check the fingerprint with the CA administrator, then re-run with --fingerprint")
            return 0
        confirm_leaf = leaf("fingerprint", args.fingerprint) if args.fingerprint else "<accept/>"
        reply = rpc(m, "ca-authenticate", body + confirm_leaf)
    installed = reply.findtext("c:installed", namespaces=NS) == "true"
    print("CA certificate installed" if installed else "CA certificate NOT installed")
    return 0 if installed else 1


if __name__ == "__main__":
    run(main)
