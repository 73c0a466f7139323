"""Seed procedure "Generating an RSA Key Pair", step 2: crypto key zeroize rsa [LABEL].

Deletes one key pair (--label) or every RSA key pair (--all).
"""

from _common import NS, connect, leaf, parser, rpc, run


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--label", help="the key pair to delete")
    which.add_argument("--all", action="store_true", help="delete every RSA key pair")
    args = p.parse_args()
    with connect(args) as m:
        reply = rpc(m, "key-zeroize-rsa", leaf("label", args.label))
        left = m.get(filter=("subtree", '<crypto xmlns="urn:ca-agent:yang:crypto"><key/></crypto>')).data_ele
    zeroized = [e.text for e in reply.iterfind("c:zeroized", NS)]
    print("zeroized:", ", ".join(zeroized) or "nothing")
    remaining = {e.text for e in left.iterfind("c:crypto/c:key/c:rsa/c:label", NS)}
    return 1 if remaining & set(zeroized) else 0


if __name__ == "__main__":
    run(main)
