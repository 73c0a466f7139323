#!/usr/bin/env python3
"""What metering XPath filters costs (agent/netconf/xpath_rewrite.py), in process.

    python bench/filter_budget.py [--entries 1000]

For typical and hostile expressions on a datastore of N trustpoints: the
median time of the plain libxml2 evaluation and of the metered one, the
steps counted, and, for the hostile ones, the CPU used until the budget
stopped them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lxml import etree  # noqa: E402

from agent.errors import NetconfError  # noqa: E402
from agent.netconf.budget import FilterBudget  # noqa: E402
from agent.netconf.filters import NC_NS, xpath_filter  # noqa: E402
from agent.netconf.xpath_rewrite import METER_FUNCTION, METER_NS, METER_PREFIX, rewrite  # noqa: E402

CRYPTO = "urn:ca-agent:yang:crypto"
NAMESPACES = {"crypto": CRYPTO}
TYPICAL = [
    "/crypto:crypto/crypto:ca/crypto:trustpoint[crypto:name='tp500']",
    "/crypto:crypto/crypto:ca/crypto:trustpoint/crypto:name",
    "//crypto:rsakeypair",
    "//crypto:trustpoint[crypto:enrollment/crypto:retry/crypto:count > 5]/crypto:name",
    "//*",
]
HOSTILE = [
    "//*[count(//*) > 0]",
    "//*[count(//*[count(//*) > 0]) > 0]",
    "//*[count(//*[count(//*[count(//*) > 0]) > 0]) > 0]",
]


def tree(entries: int) -> etree._Element:
    body = "".join(
        f"<trustpoint><name>tp{i}</name><enrollment><url>http://ca/{i}</url><retry><count>{i % 10}</count>"
        f"</retry></enrollment><rsakeypair>k{i}</rsakeypair></trustpoint>"
        for i in range(entries)
    )
    return etree.fromstring(f'<data xmlns="{NC_NS}"><crypto xmlns="{CRYPTO}"><ca>{body}</ca></crypto></data>')


def run(data: etree._Element, select: str, metered: bool) -> tuple[float, int]:
    steps = [0]

    def tick(_context: object) -> bool:
        steps[0] += 1
        return True

    xpath = etree.XPath(rewrite(select, NAMESPACES, "r", metered=metered),
                        namespaces={**NAMESPACES, METER_PREFIX: METER_NS},
                        extensions={(METER_NS, METER_FUNCTION): tick})
    start = time.perf_counter()
    xpath(data, r=[data])
    return time.perf_counter() - start, steps[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=5.0)
    args = parser.parse_args()
    data = tree(args.entries)
    print(f"{len(data.xpath('//node()'))} nodes ({args.entries} trustpoints)")
    print(f"{'expression':60} {'plain ms':>9} {'metered ms':>10} {'steps':>9}")
    for select in TYPICAL:
        plain = statistics.median(run(data, select, False)[0] for _ in range(7))
        samples = [run(data, select, True) for _ in range(7)]
        metered = statistics.median(s[0] for s in samples)
        print(f"{select[:60]:60} {plain * 1000:9.2f} {metered * 1000:10.2f} {samples[0][1]:9d}")
    small = tree(60)
    print(f"hostile, on {len(small.xpath('//node()'))} nodes, budget {args.budget:g} s of CPU:")
    for select in HOSTILE:
        started = time.thread_time()
        try:
            xpath_filter(small, select, NAMESPACES, lambda e: [], FilterBudget(args.budget))
            outcome = "done"
        except NetconfError as error:
            outcome = error.error_tag
        print(f"  {select[:60]:60} {outcome:17} {time.thread_time() - started:6.2f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
