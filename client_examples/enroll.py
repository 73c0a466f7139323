"""Seed procedure "Requesting Your Own Certificates": crypto ca enroll NAME.

The challenge password ("Password:" / "Re-enter Password:") is read from
$CA_CHALLENGE_PASSWORD; it is used for this request only and never stored.
If the CA holds the request, the agent polls it; --wait waits for the
certificate (reading /crypto/ca/trustpoint/certificate) up to that many seconds.
"""

import os
import time

from _common import CRYPTO, NS, connect, leaf, parser, rpc, run


def certificate_status(m, trustpoint: str) -> list[str]:
    state = m.get(filter=("subtree", f'<crypto xmlns="{CRYPTO}"><ca><trustpoint><name>{trustpoint}</name>'
                                     "<certificate/></trustpoint></ca></crypto>")).data_ele
    return [s.text for s in state.iterfind("c:crypto/c:ca/c:trustpoint/c:certificate/c:status", NS)]


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trustpoint", required=True)
    p.add_argument("--wait", type=float, default=0, help="seconds to wait for a pending request to be issued")
    args = p.parse_args()
    body = leaf("trustpoint", args.trustpoint) + leaf("challenge-password", os.environ.get("CA_CHALLENGE_PASSWORD"))
    with connect(args) as m:
        reply = rpc(m, "ca-enroll", body)
        status = reply.findtext("c:status", namespaces=NS)
        for request in reply.iterfind("c:request", NS):
            print(f"{request.findtext('c:key-usage', namespaces=NS)}: {request.findtext('c:status', namespaces=NS)}, "
                  f"request fingerprint {request.findtext('c:fingerprint', namespaces=NS)}")
        print(f"status: {status} {reply.findtext('c:message', namespaces=NS) or ''}".rstrip())
        deadline = time.monotonic() + args.wait
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(1)  # the agent polls the CA; we only read its state
            statuses = certificate_status(m, args.trustpoint)
            if statuses and all(s == "available" for s in statuses):
                status = "issued"
                print("status: issued (after polling)")
    return 0 if status == "issued" or (status == "pending" and not args.wait) else 1


if __name__ == "__main__":
    run(main)
