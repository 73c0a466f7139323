#!/usr/bin/env python3
"""Run the agent with experimental monkeypatches, to measure a proposed fix before it is made.

    python bench/whatif_agent.py --patch nodelay[,edit_index,...] -- --data-dir DIR --port 0
    python bench/run.py --whatif nodelay,edit_index ...     # the whole benchmark against the patched agent

Nothing under agent/ is changed: each patch replaces one function at run time
with the behaviour the fix proposal in bench/README.md describes, so the
benchmark can show the expected gain. These are measuring aids, not the fixes
(they skip error handling the real change must keep).

Patches:
  nodelay        TCP_NODELAY on every accepted SSH socket (sshutil leaves Nagle on)
  edit_index     edit.py _Editor.find_existing: a per-edit dict index of list entries by key,
                 instead of a linear scan with findtext per candidate (O(n) -> O(1) per entry)
  validate_once  store.py: a tree that passed validation is not validated again (commit right
                 after edit-config of the candidate re-validates the same tree)
  chunks         base:1.1 replies in 16 KiB chunks, one sendall (the netconf package sends one chunk of
                 the whole reply in 16 KiB sendall pieces; ncclient re-decodes its whole buffer on every
                 4 KiB read until a chunk is complete: quadratic in the chunk size)
  commit_incremental
                 services/trustpoints.py TrustpointService.committed: trustpoint_configs() once per tree
                 (not for old and new on every commit); pki/enrollment.py Pki.configure: read the
                 request files (3 opens per trustpoint) only of new or changed trustpoints
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

import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _patch(owner: Any, name: str, value: Any) -> None:
    """Replace ``owner.name`` for the rest of the process."""
    setattr(owner, name, value)


def patch_nodelay() -> None:
    import sshutil.server

    original = sshutil.server.SSHServerSocket.__init__

    def init(self: Any, server_ctl: Any, session_class: Any, extra_args: Any, server: Any,
             newsocket: socket.socket, addr: Any, debug: bool) -> None:
        newsocket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        original(self, server_ctl, session_class, extra_args, server, newsocket, addr, debug)

    _patch(sshutil.server.SSHServerSocket, "__init__", init)


def patch_edit_index() -> None:
    from agent.datastore import edit
    from agent.schema.model import NodeKind

    original = edit._Editor.find_existing

    def key_values(element: Any, keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple((element.findtext(k) or "").strip() for k in keys)

    def find_existing(self: Any, parent: Any, item: Any, info: Any, path: str) -> Any:
        if info.kind is not NodeKind.LIST:
            return original(self, parent, item, info, path)
        keys = tuple(info.keys)
        wanted = []
        for key in keys:
            key_el = item.find(key)
            if key_el is None:
                return original(self, parent, item, info, path)  # raises missing-element
            wanted.append((key_el.text or "").strip())
        cache = self.__dict__.setdefault("_bench_index", {})
        slot = (id(parent), item.tag)
        entry = cache.get(slot)
        if entry is None or entry[0] is not parent:
            entry = cache[slot] = (parent, {}, set(), [])
        _, entries, seen, keep = entry
        fresh = []  # entries appended since the last lookup (edits only ever append list entries)
        for candidate in parent.iterchildren(item.tag, reversed=True):
            if id(candidate) in seen:
                break
            fresh.append(candidate)
        for candidate in reversed(fresh):
            entries.setdefault(key_values(candidate, keys), candidate)
            seen.add(id(candidate))
            keep.append(candidate)  # keeps the proxy alive, so its id() stays unique
        wanted_key = tuple(wanted)
        found = entries.get(wanted_key)
        if found is not None and found.getparent() is not parent:  # removed or replaced meanwhile
            found = original(self, parent, item, info, path)
            if found is None:
                del entries[wanted_key]
            else:
                entries[wanted_key] = found
                seen.add(id(found))
                keep.append(found)
        return found

    _patch(edit._Editor, "find_existing", find_existing)


def patch_validate_once() -> None:
    from agent.netconf import yang

    original = yang.YangSupport.validate
    # lxml elements take no weak references: remember the last few fully valid trees by identity
    valid: dict[int, Any] = {}

    def validate(self: Any, root: Any, *, full: bool) -> None:
        if valid.get(id(root)) is root:
            return
        try:
            original(self, root, full=True)
        except Exception:
            if full:
                raise
            original(self, root, full=False)  # reports only value errors, as before
            return
        valid[id(root)] = root
        while len(valid) > 4:
            del valid[next(iter(valid))]

    _patch(yang.YangSupport, "validate", validate)


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


def patch_commit_incremental() -> None:
    from lxml import etree

    from agent.pki import enrollment
    from agent.services import trustpoints

    # 1. trustpoint_configs of a tree is computed once per tree, not for old and new on every commit,
    #    and only for entries that differ from the previous tree's (compared as serialized bytes;
    #    the real fix would take the changed entries from the edit instead)
    original_configs = trustpoints.trustpoint_configs
    memo: dict[int, tuple[Any, Any, dict[str, tuple[bytes, Any]]]] = {}
    tp_path = trustpoints._TP
    name_tag = trustpoints.tag("name")

    def trustpoint_configs(running: Any) -> Any:
        hit = memo.get(id(running))
        if hit is not None and hit[0] is running:
            return hit[1]
        previous = next(reversed(memo.values()))[2] if memo else {}
        result: dict[str, Any] = {}
        entries: dict[str, tuple[bytes, Any]] = {}
        for entry in running.iterfind(tp_path):
            name = entry.findtext(name_tag) or ""
            data = etree.tostring(entry)
            known = previous.get(name)
            if known is not None and known[0] == data:
                config = known[1]
            else:
                holder = etree.Element("holder")
                crypto = etree.SubElement(holder, trustpoints.tag("crypto"))
                ca = etree.SubElement(crypto, trustpoints.tag("ca"))
                ca.append(etree.fromstring(data))
                config = original_configs(holder)[name]
            result[name] = config
            entries[name] = (data, config)
        memo[id(running)] = (running, result, entries)
        while len(memo) > 4:
            del memo[next(iter(memo))]
        return result

    _patch(trustpoints, "trustpoint_configs", trustpoint_configs)

    # 2. Pki.configure looks for pending requests on disk only for new or changed trustpoints
    def configure(self: Any, tps: Any) -> None:
        configs = {enrollment.validate_trustpoint_name(tp.name): tp for tp in tps}
        with self._lock:
            previous = self._configs
            forgotten = set(previous) - set(configs)
            self._configs = dict(configs)
        for name in forgotten:
            self._unschedule(name)
        first = not getattr(self, "_bench_configured", False)
        self._bench_configured = True
        for tp in configs.values():
            if not first and previous.get(tp.name) == tp:
                continue
            with self._tp_lock(tp.name):
                for record in self._files.load(tp.name).values():
                    if record.state is enrollment.RequestState.PENDING:
                        self._engine.resume(tp, record)

    _patch(enrollment.Pki, "configure", configure)


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
    "commit_incremental": patch_commit_incremental,
    "chunks": patch_chunks,
    "nodelay": patch_nodelay,
    "edit_index": patch_edit_index,
    "validate_once": patch_validate_once,
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
