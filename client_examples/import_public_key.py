"""Seed procedure "Importing a Public Key to the Router": crypto key import authentication rsa.

Stores a user's RSA public key (PEM, DER in hex/base64, or an OpenSSH
'ssh-rsa' line) so that user can log in over SSH with the matching private key.
"""

from pathlib import Path

from _common import NS, connect, leaf, parser, rpc, run


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--label", required=True, help="label to store the key under")
    p.add_argument("--key-file", type=Path, required=True, help="the public key file (e.g. id_rsa.pub)")
    p.add_argument("--for-user", help="the user the key logs in (default: the calling user)")
    args = p.parse_args()
    body = leaf("label", args.label) + leaf("public-key", args.key_file.read_text()) + leaf("user", args.for_user)
    with connect(args) as m:
        reply = rpc(m, "key-import-authentication-rsa", body)
    print(
        f"imported {reply.findtext('c:label', namespaces=NS)}: "
        f"{reply.findtext('c:size', namespaces=NS)}-bit RSA key for user {reply.findtext('c:user', namespaces=NS)}"
    )
    return 0


if __name__ == "__main__":
    run(main)
