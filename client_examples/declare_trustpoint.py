"""Seed procedure "Declaring a Certification Authority and Configuring a Trusted Point".

    configure / crypto ca trustpoint myca / enrollment url URL / query url LDAP-URL /
    enrollment retry period N / enrollment retry count N / rsakeypair LABEL / commit
"""

from _common import CRYPTO, NS, connect, edit_and_commit, leaf, parser, run
from lxml import etree


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="trustpoint (CA) name, e.g. myca")
    method = p.add_mutually_exclusive_group(required=True)
    method.add_argument("--url", help="the CA's SCEP URL, e.g. http://ca.domain.com/certsrv/mscep/mscep.dll")
    method.add_argument("--terminal", action="store_true", help="cut-and-paste enrollment instead")
    p.add_argument("--query-url", help="LDAP URL of the CA's CRL server")
    p.add_argument("--retry-period", type=int, help="minutes between polls (1..60)")
    p.add_argument("--retry-count", type=int, help="polls before giving up (1..100)")
    p.add_argument("--rsakeypair", help="key pair label (default: the default key pair)")
    p.add_argument("--subject-name", help="subject to request, e.g. CN=r1,O=Example")
    args = p.parse_args()
    retry = leaf("period", args.retry_period) + leaf("count", args.retry_count)
    enrollment = ("<terminal/>" if args.terminal else leaf("url", args.url)) + (f"<retry>{retry}</retry>" if retry else "")
    trustpoint = (
        leaf("name", args.name)
        + f"<enrollment>{enrollment}</enrollment>"
        + leaf("query-url", args.query_url)
        + leaf("rsakeypair", args.rsakeypair)
        + leaf("subject-name", args.subject_name)
    )
    with connect(args) as m:
        edit_and_commit(m, f'<crypto xmlns="{CRYPTO}"><ca><trustpoint>{trustpoint}</trustpoint></ca></crypto>')
        running = m.get_config("running", filter=("xpath", f"/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='{args.name}']"))
    committed = running.data_ele.find("c:crypto/c:ca/c:trustpoint", NS)
    if committed is None:
        return 1
    print(etree.tostring(committed, pretty_print=True).decode().rstrip())
    return 0


if __name__ == "__main__":
    run(main)
