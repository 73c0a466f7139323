#!/usr/bin/env python3
"""Run the agent with experimental monkeypatches, to measure a proposed fix before it is made.

    python bench/whatif_agent.py --patch chunks[,key_load,...] -- --data-dir DIR --port 0
    python bench/run.py --whatif chunks,key_load ...     # the whole benchmark against the patched agent

Nothing under agent/ is changed: each patch replaces one function at run time
with the behaviour the fix proposal in bench/README.md describes, so the
benchmark can show the expected gain. These are measuring aids, not the fixes
(they skip error handling the real change must keep).

Patches (nodelay, edit_index, validate_once and commit_incremental were
measured here and have since landed in agent/; see FINDINGS.md):
  chunks         base:1.1 replies in 16 KiB chunks, one sendall (the netconf package sends one chunk of
                 the whole reply in 16 KiB sendall pieces; ncclient re-decodes its whole buffer on every
                 4 KiB read until a chunk is complete: quadratic in the chunk size)
  mmap_threshold mallopt(M_MMAP_THRESHOLD, 128 KiB) at start (agent/main.py): scrypt's 16 MiB buffer
                 per password login otherwise stays in a per-thread malloc arena (peak RSS +~100 MiB)
  key_load       pki/keystore.py KeyStore._parse_pair_file: load_pem_private_key(...,
                 unsafe_skip_rsa_key_validation=True) for the agent's own key files (the RSA check
                 costs ~38 ms per 2048-bit key; ca-enroll reloads the key generated just before)
  thread_parser  netconf/dispatch.py: one XML parser per thread instead of the module-global _PARSER
                 (lxml lets one parser object parse in one thread at a time)
  no_fsync       files.py atomic_write without fsync (measures the durability cost only; NOT a proposal)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _patch(owner: Any, name: str, value: Any) -> None:
    """Replace ``owner.name`` for the rest of the process."""
    setattr(owner, name, value)


def patch_no_fsync() -> None:
    import os

    from agent import files

    def atomic_write(path: Any, data: bytes, mode: int = 0o600) -> None:
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)

    _patch(files, "atomic_write", atomic_write)
    from agent.datastore import store

    _patch(store, "atomic_write", atomic_write)


def patch_chunks() -> None:
    import netconf.base

    def send_pdu(self: Any, msg: str, new_framing: bool) -> None:
        assert self.stream is not None
        if not new_framing:
            self.stream.sendall((msg + "]]>]]>").encode("utf-8"))
            return
        data = msg.encode("utf-8")
        size = 16 * 1024
        parts = []
        for offset in range(0, len(data), size):
            piece = data[offset:offset + size]
            parts.append(b"\n#%d\n" % len(piece))
            parts.append(piece)
        parts.append(b"\n##\n")
        self.stream.sendall(b"".join(parts))

    _patch(netconf.base.NetconfFramingTransport, "send_pdu", send_pdu)


def patch_mmap_threshold() -> None:
    import ctypes

    # glibc: a fixed mmap threshold turns off the dynamic one, so scrypt's 16 MiB work buffer is
    # mmapped and given back on free, instead of staying in the heap arena of each login thread
    m_mmap_threshold = -3
    ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, 128 * 1024)


def patch_key_load() -> None:
    from cryptography.hazmat.primitives import serialization

    original = serialization.load_pem_private_key

    def load_pem_private_key(data: bytes, password: Any, backend: Any = None, *,
                             unsafe_skip_rsa_key_validation: bool = False) -> Any:
        # the agent's own key files (written by itself, 0600): skip the ~38 ms RSA consistency check
        return original(data, password, unsafe_skip_rsa_key_validation=True)

    _patch(serialization, "load_pem_private_key", load_pem_private_key)


def patch_thread_parser() -> None:
    import threading

    from lxml import etree

    from agent.netconf import dispatch

    shared = dispatch._PARSER
    local = threading.local()

    class EtreeProxy:
        """dispatch.py's etree, except that fromstring() with the shared parser uses a per-thread one."""

        def __getattr__(self, name: str) -> Any:
            return getattr(etree, name)

        def fromstring(self, text: Any, parser: Any = None, **kwargs: Any) -> Any:
            if parser is shared:
                parser = getattr(local, "parser", None)
                if parser is None:
                    parser = local.parser = etree.XMLParser(
                        remove_blank_text=True, resolve_entities=False, no_network=True, huge_tree=False,
                        remove_comments=True,
                    )
            return etree.fromstring(text, parser, **kwargs)

    _patch(dispatch, "etree", EtreeProxy())


PATCHES = {
    "thread_parser": patch_thread_parser,
    "key_load": patch_key_load,
    "mmap_threshold": patch_mmap_threshold,
    "chunks": patch_chunks,
    "no_fsync": patch_no_fsync,
}


def main() -> int:
    argv = sys.argv[1:]
    names: list[str] = []
    if argv[:1] == ["--patch"]:
        names = [n for n in argv[1].split(",") if n]
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    for name in names:
        if name not in PATCHES:
            print(f"whatif_agent.py: unknown patch {name!r}; known: {', '.join(PATCHES)}", file=sys.stderr)
            return 2
        PATCHES[name]()
    print(f"whatif_agent.py: patches applied: {', '.join(names) or 'none'}", file=sys.stderr, flush=True)
    from agent.main import main as agent_main

    return agent_main(argv)


if __name__ == "__main__":
    sys.exit(main())
