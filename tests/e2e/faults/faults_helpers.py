"""Real faults for the real agent: a full filesystem, kill -9, and what is on disk afterwards.

A full disk is a real one: a small tmpfs mounted in a private mount
namespace (``unshare -m``) that a holder process keeps alive; the agent is
started in it with ``nsenter`` (again after every restart), and the test
reads and fills the tmpfs through ``/proc/<holder>/root``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from lxml import etree

from agent.datastore.history import read_journal

from agentproc import READY, AgentProcess, spawn_until_ready

SYS = "urn:ca-agent:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def hostname_config(name: str) -> str:
    return f'<config xmlns="{NC}"><hostname xmlns="{SYS}">{name}</hostname></config>'


def hostname_of(xml: bytes | str) -> str | None:
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    return root.findtext(f"{{{SYS}}}hostname")


def temporaries(directory: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (agent/files.py names them .NAME.HEX.tmp)."""
    return sorted(p for p in directory.rglob(".*.tmp") if p.is_file())


def commit_records(directory: Path) -> list[dict[str, object]]:
    """The commit history on disk (the journal DIR/commits/journal-*.log), oldest first, each with its "config"."""
    return [{**record, "config": config.decode()} for record, config in read_journal(directory)]


def check_history_matches_running(directory: Path) -> list[dict[str, object]]:
    """The history's newest record produced running.xml; ids are increasing. Returns the records."""
    records = commit_records(directory)
    assert records, "no commit record at all"
    ids = [int(str(r["id"])) for r in records]
    assert ids == sorted(set(ids)), f"commit ids not strictly increasing: {ids}"
    running = (directory / "running.xml").read_bytes()
    assert str(records[-1]["config"]).encode() == running, (
        f"the newest commit record ({records[-1]['id']}) is not running.xml")
    return records


def unshare_available() -> bool:
    if not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


class TmpfsNamespace:
    """A private mount namespace holding a tmpfs of ``size`` at ``mountpoint``."""

    def __init__(self, mountpoint: Path, size: str = "8m") -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        # The holder mounts, says so, then waits for its stdin to close.
        self.holder = subprocess.Popen(
            ["unshare", "-m", "sh", "-c",
             f"mount --make-rprivate / 2>/dev/null; mount -t tmpfs -o size={size},mode=0700 tmpfs '{mountpoint}'"
             " && echo mounted && exec cat"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != "mounted":
            self.close()
            raise RuntimeError("could not mount a tmpfs in a private mount namespace")

    @property
    def view(self) -> Path:
        """The tmpfs as the namespace sees it, from outside."""
        return Path(f"/proc/{self.holder.pid}/root") / str(self.mountpoint).lstrip("/")

    def fill(self) -> Path:
        """Fill the tmpfs to the last byte with one file; returns it (delete it to make room again)."""
        filler = self.view / "filler"
        with open(filler, "wb", buffering=0) as handle:
            block = b"\0" * 65536
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        handle.write(block[:size])
                except OSError:
                    continue
        return filler

    def close(self) -> None:
        if self.holder.poll() is None:
            assert self.holder.stdin is not None
            self.holder.stdin.close()
            try:
                self.holder.wait(10)
            except subprocess.TimeoutExpired:
                self.holder.send_signal(signal.SIGKILL)
                self.holder.wait()


class NamespacedAgent(AgentProcess):
    """An AgentProcess whose data directory is the tmpfs of a :class:`TmpfsNamespace`."""

    def __init__(self, namespace: TmpfsNamespace, args: list[str] | None = None) -> None:
        super().__init__(namespace.mountpoint / "data", args=args)
        self.namespace = namespace
        self.log_path = namespace.mountpoint.parent / "agent.log"  # outside the tmpfs: it must not fill it

    @property
    def view(self) -> Path:
        """The data directory, as seen from outside the namespace."""
        return self.namespace.view / "data"

    def start(self, port: int = 0, timeout: float = 30.0) -> AgentProcess:
        argv = ["nsenter", "-t", str(self.namespace.holder.pid), "-m", "--",
                sys.executable, "-m", "agent", "--data-dir", str(self.data_dir), "--port", str(port), *self.args]
        env = dict(self.env, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
        self.proc, match, lines = spawn_until_ready(argv, READY, env, self.log_path, timeout)
        if match is None:
            self.stop()
            raise RuntimeError("ca-agent did not become ready:\n" + "".join(lines))
        self.port = int(match.group(2))
        return self
