"""The seed's "Configuring Certification Authority Interoperability: Example", step by step.

    configure / hostname myrouter / domain name mydomain.com / end (commit: yes)
    crypto key generate rsa mykey
    show crypto key mypubkey rsa
    configure / crypto ca trustpoint myca / enrollment url URL / enrollment retry count 25 /
      enrollment retry period 2 / rsakeypair mykey / end (commit: yes)
    crypto ca authenticate myca          (accepting the fingerprint shown)
    crypto ca enroll myca                (challenge password from $CA_CHALLENGE_PASSWORD)
    show crypto ca certificates

Run it against a fresh agent: the key pair must not exist yet (as in the seed).
"""

import os
import time
from xml.sax.saxutils import escape

from _common import CRYPTO, NS, SYS, connect, edit_and_commit, leaf, parser, rpc, run


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the CA's SCEP URL (the seed's http://xyz-ultra5)")
    p.add_argument("--hostname", default="myrouter")
    p.add_argument("--domain", default="mydomain.com")
    p.add_argument("--label", default="mykey")
    p.add_argument("--trustpoint", default="myca")
    p.add_argument("--wait", type=float, default=60, help="seconds to wait if the CA holds the request")
    args = p.parse_args()
    with connect(args) as m:
        print("! configure / hostname / domain name / end")
        edit_and_commit(m, f'<hostname xmlns="{SYS}">{escape(args.hostname)}</hostname>'
                           f'<domain xmlns="{SYS}">{leaf("name", args.domain)}</domain>')

        print(f"! crypto key generate rsa {args.label}")
        key = rpc(m, "key-generate-rsa", leaf("label", args.label) + "<general-keys/>")
        print(f"Key label: {key.findtext('c:label', namespaces=NS)}, size {key.findtext('c:size', namespaces=NS)}")
        print(f"Data     : {key.findtext('c:key-pair/c:public-key', namespaces=NS)}")

        print(f"! crypto ca trustpoint {args.trustpoint}")
        edit_and_commit(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>{leaf("name", args.trustpoint)}'
                           f"<enrollment>{leaf('url', args.url)}<retry><count>25</count><period>2</period></retry>"
                           f"</enrollment>{leaf('rsakeypair', args.label)}</trustpoint></ca></crypto>")

        print(f"! crypto ca authenticate {args.trustpoint}")
        tp = leaf("trustpoint", args.trustpoint)
        ca = rpc(m, "ca-authenticate", tp)
        md5 = ca.findtext("c:fingerprint-md5", namespaces=NS)
        print(f"Subject Name: {ca.findtext('c:subject', namespaces=NS)}")
        print("Fingerprint:", " ".join(md5[i:i + 2] for i in range(0, len(md5), 2)))
        print("Do you accept this certificate?? [yes/no]:yes")
        if rpc(m, "ca-authenticate", tp + leaf("fingerprint", md5)).findtext("c:installed", namespaces=NS) != "true":
            return 1

        print(f"! crypto ca enroll {args.trustpoint}")
        reply = rpc(m, "ca-enroll", tp + leaf("challenge-password", os.environ.get("CA_CHALLENGE_PASSWORD")))
        for request in reply.iterfind("c:request", NS):
            print(f"Fingerprint: {request.findtext('c:fingerprint', namespaces=NS)}")
        status = reply.findtext("c:status", namespaces=NS)
        deadline = time.monotonic() + args.wait
        certificates = []
        while True:
            state = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>{leaf("name", args.trustpoint)}'
                                             "</trustpoint></ca></crypto>")).data_ele
            certificates = state.findall("c:crypto/c:ca/c:trustpoint/c:certificate", NS)
            available = certificates and all(c.findtext("c:status", namespaces=NS) == "available" for c in certificates)
            if available or status == "failed" or time.monotonic() > deadline:
                break
            time.sleep(1)  # the agent polls the CA; we only read its state

    print("! show crypto ca certificates")
    for cert in certificates:
        print(f"Router certificate: {cert.findtext('c:status', namespaces=NS)}, serial number "
              f"{cert.findtext('c:serial-number', namespaces=NS)}, subject {cert.findtext('c:subject', namespaces=NS)}")
    return 0 if certificates and all(c.findtext("c:status", namespaces=NS) == "available" for c in certificates) else 1


if __name__ == "__main__":
    run(main)
