"""Seed step "show crypto ca certificates": the CA and router certificates of each trustpoint.

Reads the state under /crypto/ca/trustpoint with <get>.
"""

from _common import CRYPTO, NS, connect, parser, run

FIELDS = (("Serial Number", "serial-number"), ("Subject Name", "subject"), ("Issued By", "issuer"),
          ("Validity Start", "valid-from"), ("Validity End", "valid-to"))


def show(cert, indent: str = "  ") -> None:
    for label, name in FIELDS:
        print(f"{indent}{label:<15}: {cert.findtext(f'c:{name}', namespaces=NS)}")
    for uri in cert.iterfind("c:crl-distribution-point", NS):
        print(f"{indent}{'CRL Distribution Point':<15}: {uri.text}")


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trustpoint", help="only this trustpoint")
    args = p.parse_args()
    name = f"<name>{args.trustpoint}</name>" if args.trustpoint else ""
    with connect(args) as m:
        data = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>{name}</trustpoint></ca></crypto>'))
    trustpoints = data.data_ele.findall("c:crypto/c:ca/c:trustpoint", NS)
    for tp in trustpoints:
        print(f"Trustpoint: {tp.findtext('c:name', namespaces=NS)}")
        ca = tp.find("c:ca-certificate", NS)
        if ca is not None:
            print("CA certificate")
            show(ca)
        for cert in tp.iterfind("c:certificate", NS):
            print(f"Router certificate ({cert.findtext('c:key-usage', namespaces=NS)}), "
                  f"status {cert.findtext('c:status', namespaces=NS)}")
            show(cert)
        for request in tp.iterfind("c:enrollment/c:request", NS):
            print(f"Enrollment request ({request.findtext('c:key-usage', namespaces=NS)}): "
                  f"{request.findtext('c:state', namespaces=NS)}")
    if args.trustpoint and not trustpoints:
        print(f"no trustpoint {args.trustpoint}")
        return 1
    return 0


if __name__ == "__main__":
    run(main)
