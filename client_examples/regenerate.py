"""Seed procedure "Regenerate the Certificate" (after an expiry notification).

    clear crypto ca certificates NAME
    crypto key generate rsa LABEL      (replacing the key pair configured under the trustpoint)
    crypto ca authenticate NAME
    crypto ca enroll NAME              (challenge password from $CA_CHALLENGE_PASSWORD)
"""

import os

from _common import CRYPTO, NS, connect, leaf, parser, rpc, run


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trustpoint", required=True)
    p.add_argument("--label", help="key pair to regenerate (default: the trustpoint's rsakeypair)")
    p.add_argument("--modulus", type=int, default=2048)
    p.add_argument("--fingerprint", help="expected CA certificate fingerprint (default: accept the one fetched)")
    args = p.parse_args()
    tp = leaf("trustpoint", args.trustpoint)
    with connect(args) as m:
        label = args.label
        if label is None:
            running = m.get_config("running", filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>'
                                                                 f"{leaf('name', args.trustpoint)}</trustpoint></ca></crypto>"))
            label = running.data_ele.findtext("c:crypto/c:ca/c:trustpoint/c:rsakeypair", namespaces=NS)
            if not label:
                print(f"trustpoint {args.trustpoint} has no rsakeypair: give --label")
                return 1
        cleared = rpc(m, "ca-clear-certificates", tp)
        print("cleared certificates of:", ", ".join(e.text for e in cleared.iterfind("c:cleared", NS)) or "none")
        rpc(m, "key-generate-rsa", leaf("label", label) + "<general-keys/>" + leaf("modulus", args.modulus)
            + "<replace>true</replace>")
        print(f"regenerated key pair {label} ({args.modulus} bits)")
        shown = rpc(m, "ca-authenticate", tp)
        fingerprint = args.fingerprint or shown.findtext("c:fingerprint-md5", namespaces=NS)
        print(f"CA {shown.findtext('c:subject', namespaces=NS)}, MD5 fingerprint {fingerprint}")
        if rpc(m, "ca-authenticate", tp + leaf("fingerprint", fingerprint)).findtext("c:installed", namespaces=NS) != "true":
            print("the CA certificate was not installed")
            return 1
        reply = rpc(m, "ca-enroll", tp + leaf("challenge-password", os.environ.get("CA_CHALLENGE_PASSWORD")))
    status = reply.findtext("c:status", namespaces=NS)
    serials = [r.findtext("c:serial-number", namespaces=NS) for r in reply.iterfind("c:request", NS)]
    print(f"enrollment: {status}", f"(serial number {', '.join(s for s in serials if s)})" if any(serials) else "")
    return 0 if status in ("issued", "pending") else 1


if __name__ == "__main__":
    run(main)
