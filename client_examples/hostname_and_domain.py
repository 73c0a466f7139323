"""Seed procedure "Configuring a Router Hostname and IP Domain Name".

    configure / hostname myhost / domain name mydomain.com / commit

The FQDN hostname.domain names the keys and certificates the agent makes.
"""

from xml.sax.saxutils import escape

from _common import SYS, connect, edit_and_commit, leaf, parser, run


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hostname", required=True, help="e.g. myhost")
    p.add_argument("--domain", required=True, help="e.g. mydomain.com")
    args = p.parse_args()
    with connect(args) as m:
        edit_and_commit(
            m,
            f'<hostname xmlns="{SYS}">{escape(args.hostname)}</hostname>'
            f'<domain xmlns="{SYS}">{leaf("name", args.domain)}</domain>',
        )
        running = m.get_config("running").data_ele
        hostname = running.findtext(f"{{{SYS}}}hostname")
        domain = running.findtext(f"{{{SYS}}}domain/{{{SYS}}}name")
    print(f"committed: hostname {hostname}, domain name {domain} (FQDN {hostname}.{domain})")
    return 0 if (hostname, domain) == (args.hostname, args.domain) else 1


if __name__ == "__main__":
    run(main)
