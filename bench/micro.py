#!/usr/bin/env python3
"""In-process timings of the agent's internal steps on an N-trustpoint datastore.

    python bench/micro.py [--entries 1000] [--seconds 1.0]

What one edit-config / commit / get-config costs inside the agent, step by
step, without SSH or a client: the numbers behind the fix proposals in
bench/README.md. Every step is repeated for at most ``--seconds`` (and at
most 200 times); the median is printed in milliseconds.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import figures  # noqa: E402
from lxml import etree  # noqa: E402


def measure(fn: Callable[[], Any], seconds: float, limit: int = 200) -> tuple[float, int]:
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < limit and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples), len(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    from agent.datastore.edit import apply_edit, new_root
    from agent.datastore.store import _serialize
    from agent.files import atomic_write
    from agent.netconf.filters import apply_filter
    from agent.netconf.rpcerror import rpc_reply
    from agent.netconf.yang import YangSupport
    from agent.passwords import hash_password, verify_password
    from agent.schema.model import SchemaModel
    from agent.schema.validate import validate_config

    start = time.perf_counter()
    model = SchemaModel.load()
    print(f"SchemaModel.load: {1000 * (time.perf_counter() - start):.0f} ms (once per process)")
    yang = YangSupport(model)
    parser_ = etree.XMLParser(remove_blank_text=True)

    def config_element(xml: str) -> etree._Element:
        return etree.fromstring(xml.encode(), parser_)

    bulk = config_element(figures.bulk_config(args.entries))
    empty = new_root()
    tree = apply_edit(empty, bulk, yang, yang).root
    one = config_element(figures.config([figures.trustpoint("extra", 1)]))
    work = Path(tempfile.mkdtemp(prefix="ca-agent-micro-"))
    wanted = f"tp{(args.entries * 3 // 4):04d}"
    by_key_subtree = config_element(
        f'<filter xmlns="{figures.NC_NS}" type="subtree"><crypto xmlns="{figures.CRYPTO_NS}"><ca>'
        f"<trustpoint><name>{wanted}</name></trustpoint></ca></crypto></filter>"
    )
    by_key_xpath = config_element(
        f'<filter xmlns="{figures.NC_NS}" xmlns:c="{figures.CRYPTO_NS}" type="xpath" '
        f"select=\"/c:crypto/c:ca/c:trustpoint[c:name='{wanted}']\"/>"
    )
    rows: list[tuple[str, Callable[[], Any]]] = [
        (f"apply_edit: {args.entries} new trustpoints into an empty datastore", lambda: apply_edit(empty, bulk, yang, yang)),
        (f"apply_edit: 1 trustpoint into {args.entries}", lambda: apply_edit(tree, one, yang, yang)),
        (f"  of which copy.deepcopy of the {args.entries}-entry tree", lambda: copy.deepcopy(tree)),
        (f"validate_config, {args.entries} trustpoints", lambda: validate_config(tree, model)),
        ("validate_config, empty datastore", lambda: validate_config(empty, model)),
        (f"_serialize (running.xml bytes), {args.entries} trustpoints", lambda: _serialize(tree)),
        (f"atomic_write of running.xml ({len(_serialize(tree)) // 1024} KiB, 2 fsyncs)",
         lambda: atomic_write(work / "running.xml", _serialize(tree))),
        ("atomic_write of a 1 KiB file (2 fsyncs)", lambda: atomic_write(work / "small.xml", b"x" * 1024)),
        (f"apply_filter: one of {args.entries} trustpoints by key (subtree)",
         lambda: apply_filter(tree, by_key_subtree, yang.keys_of)),
        (f"apply_filter: one of {args.entries} trustpoints by key (XPath)",
         lambda: apply_filter(tree, by_key_xpath, yang.keys_of)),
        (f"get-config: apply_filter(None) + rpc-reply tostring, {args.entries} trustpoints",
         lambda: etree.tostring(rpc_reply({"message-id": "1"}, [apply_filter(tree, None, yang.keys_of)]),
                                encoding="unicode")),
    ]
    try:
        from agent.services.trustpoints import trustpoint_configs

        rows.append((f"services.trustpoints.trustpoint_configs, {args.entries} trustpoints",
                     lambda: trustpoint_configs(tree)))
    except ImportError:
        pass
    stored = hash_password("pw")
    rows.append(("verify_password (scrypt n=2^14, r=8), per password login", lambda: verify_password("pw", stored)))
    try:
        for label, fn in rows:
            ms, n = measure(fn, args.seconds)
            print(f"{ms:9.2f} ms  {label}  (median of {n})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
