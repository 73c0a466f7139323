"""Seed procedure "Generating an RSA Key Pair": crypto key generate rsa [usage-keys | general-keys] [LABEL].

The router's questions are RPC inputs: the modulus ("How many bits in the
modulus [2048]") and replace ("Do you really want to replace them?").
Without --label the agent names the keys after the host's FQDN.
"""

from _common import NS, connect, leaf, parser, rpc, run


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--label", help="key pair label (default: the FQDN)")
    p.add_argument("--usage-keys", action="store_true", help="a signature and an encryption key pair")
    p.add_argument("--modulus", type=int, default=2048, help="1024..4096 bits (default 2048)")
    p.add_argument("--replace", action="store_true", help="replace an existing key pair of that label")
    args = p.parse_args()
    body = (
        leaf("label", args.label)
        + ("<usage-keys/>" if args.usage_keys else "<general-keys/>")
        + leaf("modulus", args.modulus)
        + leaf("replace", "true" if args.replace else "false")
    )
    with connect(args) as m:
        reply = rpc(m, "key-generate-rsa", body)
    print(f"Key label: {reply.findtext('c:label', namespaces=NS)}")
    print(f"Type     : {reply.findtext('c:type', namespaces=NS)}")
    print(f"Size     : {reply.findtext('c:size', namespaces=NS)}")
    for pair in reply.iterfind("c:key-pair", NS):
        print(f"{pair.findtext('c:usage', namespaces=NS)} public key (DER, hex): "
              f"{pair.findtext('c:public-key', namespaces=NS)}")
    return 0


if __name__ == "__main__":
    run(main)
