"""The two NETCONF servers the benchmark drives: our agent and yuma123 netconfd.

Both expose the same small interface so one piece of ncclient code measures
both: ``connect_params()`` (picklable keyword arguments for
``ncclient.manager.connect``, usable in worker processes), ``server_pids()``
(the processes whose CPU time is the server's), ``rss_pid()`` (the process
whose VmHWM is reported) and ``stop()``.

Every process started here is remembered by PID and stopped by PID; nothing
is killed by name. netconfd writes ``~/.yuma`` (from the passwd home, ignoring
``$HOME``): :class:`YumaGuard` removes it afterwards, but only if it did not
exist before the benchmark started.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
YANG_DIR = REPO / "yang"
CRYPTO_MODULE = YANG_DIR / "ca-agent-crypto.yang"
READY = re.compile(r"ready: NETCONF over SSH on (\S+) port (\d+)")
ADMIN_PASSWORD = "bench-admin-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Any, timeout: float, what: str, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``condition()`` with a bounded back-off until true; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def children_of(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    result: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            result.append(child)
            todo.append(child)
    return result


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime (+ reaped children's) of ``pids``, in seconds; vanished PIDs count 0."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
        total += sum(int(value) for value in fields[11:15])
    return total / ticks


def vm_hwm_kib(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of ``pid`` in KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait, SIGKILL if needed: by PID, only our own child."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def kill_pids(pids: list[int]) -> None:
    """SIGTERM then SIGKILL the given PIDs (descendants of processes we started)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.01)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class YumaGuard:
    """Removes ``~/.yuma`` at the end if, and only if, it did not exist at the start."""

    def __init__(self) -> None:
        self.path = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".yuma"
        self.existed = self.path.exists()

    def cleanup(self) -> None:
        if not self.existed and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------------
# our agent


class AgentPeer:
    """``python -m agent`` on a free 127.0.0.1 port with a fresh data directory."""

    name = "ca-agent"

    def __init__(self, workdir: Path, client_key: Path | None = None) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "agent-data"
        self.log_path = workdir / "agent.log"
        self.client_key = client_key
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.auth = "password"
        self.extra_args: list[str] = []  # more ca-agent flags
        self.extra_pythonpath: list[str] = []  # put before the repository on the agent's PYTHONPATH
        self.extra_env: dict[str, str] = {}  # more environment for the agent process

    def start(self, timeout: float = 60.0) -> AgentPeer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CA_AGENT_ADMIN_PASSWORD=ADMIN_PASSWORD, PYTHONUNBUFFERED="1", **self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join([*self.extra_pythonpath, str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        self.proc = subprocess.Popen(
            self._command() + ["--data-dir", str(self.data_dir), "--port", "0", *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(REPO),
        )
        ready = threading.Event()
        proc = self.proc

        def pump() -> None:
            assert proc.stderr is not None
            with open(self.log_path, "a", encoding="utf-8") as log:
                for raw in proc.stderr:
                    line = raw.decode("utf-8", "replace")
                    log.write(line)
                    log.flush()
                    match = READY.search(line)
                    if match:
                        self.port = int(match.group(2))
                        ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or not self.port:
            self.stop()
            raise RuntimeError("ca-agent did not become ready; see " + str(self.log_path))
        return self

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "agent"]

    def connect_params(self) -> dict[str, Any]:
        params: dict[str, Any] = dict(
            host="127.0.0.1", port=self.port, username="admin", hostkey_verify=False,
            allow_agent=False, look_for_keys=False, timeout=120,
        )
        if self.auth == "publickey" and self.client_key is not None:
            params["key_filename"] = str(self.client_key)
        else:
            params["password"] = ADMIN_PASSWORD
        return params

    def server_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None else []

    def rss_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)
        self.proc = None


# --------------------------------------------------------------------------
# yuma123 netconfd behind a throwaway sshd


SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 100:30:200
MaxSessions 100
Subsystem netconf "/usr/sbin/netconf-subsystem --ncxserver-sockname={port}@{dir}/ncxserver.sock"
"""


def make_ssh_key(path: Path, kind: str = "rsa") -> None:
    args = ["ssh-keygen", "-q", "-N", "", "-f", str(path), "-t", kind]
    if kind == "rsa":
        args += ["-b", "2048", "-m", "PEM"]
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def nacm_config(user: str, path_rule: bool = False) -> bytes:
    """Our agent's first-start ``/nacm`` (built by the agent's own code), ``user`` in root-system, as XML.

    The same three task groups and rule-lists as the agent's, so that every
    server enforces the same access control and serves the same ``/nacm``.
    ``path_rule`` adds ``<path>/</path>`` to root-system's permit-all rule:
    RFC 8341 says a rule without a rule type matches every request; yuma123
    matches it for RPCs only, and refused root's data writes without the
    path (tried).
    """
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from lxml import etree

    from agent.services.taskgroups import NACM_NS, ROOT_SYSTEM, default_access_config

    nacm = default_access_config(user)
    for rule_list in nacm.iterfind(f"{{{NACM_NS}}}rule-list"):
        if path_rule and rule_list.findtext(f"{{{NACM_NS}}}name") == ROOT_SYSTEM:
            operations = rule_list.find(f"{{{NACM_NS}}}rule/{{{NACM_NS}}}access-operations")
            assert operations is not None
            path = etree.Element(f"{{{NACM_NS}}}path")
            path.text = "/"
            operations.addprevious(path)
    return etree.tostring(nacm, pretty_print=True)


def nacm_startup(path: Path, user: str = "root") -> None:
    """A netconfd startup configuration holding :func:`nacm_config` (with yuma123's path rule)."""
    path.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n<config xmlns="' + NC_BASE.encode() + b'">\n'
                     + nacm_config(user, path_rule=True) + b"</config>\n")


NC_BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"


class NetconfdPeer:
    """netconfd (``--target=...``) with our module, reached through sshd.

    ``access_control``: NACM enforced (``--access-control=enforcing``, no
    superuser) with the agent's own task groups loaded at start from a
    startup file (see :func:`nacm_startup`), root in root-system: what our
    agent does for admin. Without it: ``--no-startup --access-control=off``,
    as the earlier runs. Either way netconfd has no :startup capability, so
    it writes its whole running configuration back to a file after every
    change (without fsync; ours makes each change durable with an fdatasync).
    """

    name = "netconfd"

    def __init__(self, workdir: Path, client_key: Path, module: Path, target: str, modpath: str,
                 access_control: bool = True) -> None:
        self.dir = workdir
        self.client_key = client_key
        self.module = module
        self.target = target
        self.modpath = modpath
        self.access_control = access_control
        if not access_control:
            self.name = "netconfd (NACM off)"
        self.port = 0
        self.netconfd: subprocess.Popen[bytes] | None = None
        self.sshd: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> NetconfdPeer:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "host_key").exists():
            # RSA 2048, the same kind as our agent's host key (the_default).
            make_ssh_key(self.dir / "host_key", "rsa")
        shutil.copy(f"{self.client_key}.pub", self.dir / "authorized_keys")
        self.port = free_port()
        (self.dir / "sshd_config").write_text(SSHD_CONFIG.format(port=self.port, dir=self.dir))
        sock = self.dir / "ncxserver.sock"
        sock.unlink(missing_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        netconfd_log = self.dir / f"netconfd-{self.target}.log"
        if self.access_control:
            startup = self.dir / "startup-nacm.xml"
            nacm_startup(startup)
            # No --with-startup: without the :startup capability netconfd writes running back to this
            # file after every change, as it writes ~/.yuma/startup-cfg.xml without access control. With
            # it, commits stayed in memory, while ours are made durable: not like with like.
            access = ["--access-control=enforcing", f"--startup={startup}"]
        else:
            access = ["--no-startup", "--access-control=off", "--superuser=root"]
        self.netconfd = subprocess.Popen(
            [
                "netconfd",
                f"--ncxserver-sockname={sock}",
                f"--port={self.port}",
                f"--target={self.target}",
                f"--modpath={self.modpath}",
                f"--module={self.module}",
                *access,
                "--log-level=warn",
                f"--log={netconfd_log}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=str(self.dir),
        )
        try:
            wait_for(sock.exists, timeout, "netconfd socket", self.netconfd)
            self.sshd = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-f", str(self.dir / "sshd_config"), "-E", str(self.dir / "sshd.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            wait_for(lambda: port_open(self.port), timeout, "sshd", self.sshd)
        except Exception:
            self.stop()
            raise
        return self

    def log_text(self) -> str:
        path = self.dir / f"netconfd-{self.target}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def connect_params(self) -> dict[str, Any]:
        return dict(
            host="127.0.0.1", port=self.port, username="root", key_filename=str(self.client_key),
            hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=120,
        )

    def server_pids(self) -> list[int]:
        """netconfd, the sshd listener and its per-connection children (incl. netconf-subsystem)."""
        pids = []
        if self.netconfd is not None:
            pids.append(self.netconfd.pid)
        if self.sshd is not None:
            pids.append(self.sshd.pid)
            pids.extend(children_of(self.sshd.pid))
        return pids

    def rss_pid(self) -> int:
        assert self.netconfd is not None
        return self.netconfd.pid

    def stop(self) -> None:
        if self.sshd is not None:
            leftovers = children_of(self.sshd.pid)
            stop_process(self.sshd)
            kill_pids(leftovers)
            self.sshd = None
        stop_process(self.netconfd)
        self.netconfd = None
        (self.dir / "ncxserver.sock").unlink(missing_ok=True)


# --------------------------------------------------------------------------
# a config-only copy of our module, for a netconfd that refuses the full one


def config_only_copy(module: Path, dest_dir: Path, search_path: list[str]) -> Path:
    """Write ``module`` without ``config false`` nodes, RPCs, actions and notifications.

    Generated at run time with pyang's parser and YANG emitter (never stored
    in the repository). Raises RuntimeError if pyang cannot parse the module.
    """
    import io
    import types

    from pyang import context, repository
    from pyang.translators import yang as yang_emitter

    repo = repository.FileRepository(os.pathsep.join(search_path), use_env=False)
    ctx = context.Context(repo)
    # the options the YANG emitter reads (pyang's command line normally sets them)
    ctx.opts = types.SimpleNamespace(
        yang_canonical=False, yang_line_length=None, yang_remove_comments=False, yang_remove_unused_imports=False
    )
    parsed = ctx.add_module(str(module), module.read_text())
    if parsed is None:
        raise RuntimeError(f"pyang cannot parse {module}")

    def strip(stmt: Any) -> None:
        kept = []
        for sub in stmt.substmts:
            if sub.keyword in ("rpc", "action", "notification"):
                continue
            if any(s.keyword == "config" and s.arg == "false" for s in sub.substmts):
                continue
            strip(sub)
            kept.append(sub)
        stmt.substmts = kept

    strip(parsed)
    out = io.StringIO()
    yang_emitter.emit_yang(ctx, parsed, out)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / module.name
    path.write_text(out.getvalue())
    return path


# --------------------------------------------------------------------------
# CESNET netopeer2 (sysrepo, libyang, libnetconf2), from the shared peer kit


NP2_KIT = Path(os.environ.get("NP2_KIT", str(REPO.parent / "shared" / "peers" / "netopeer2")))
NP2_SERVER = Path(os.environ.get("NP2_PREFIX", "/opt/np2")) / "sbin" / "netopeer2-server"


def netopeer2_available() -> str | None:
    """None if the kit and a built server are there, else why not."""
    if not (NP2_KIT / "start.sh").exists():
        return f"no netopeer2 kit at {NP2_KIT} (set NP2_KIT)"
    if not NP2_SERVER.exists():
        return f"{NP2_SERVER} not built: run {NP2_KIT}/setup.sh once (about 15 s to 1 min)"
    return None


NP2_NACM_USER = "ncbench"
"""The system user netopeer2's sessions log in as when access control is compared like with like.

sysrepo exempts root from NACM; libnetconf2 wants a passwd entry for any
other user: :meth:`Netopeer2Peer.start` creates this one (no home, no login
shell) when it is missing and the benchmark runs as root, and leaves it.
"""


def ensure_system_user(name: str) -> str | None:
    """None once ``name`` has a passwd entry (created with useradd if needed), else why not."""
    try:
        pwd.getpwnam(name)
        return None
    except KeyError:
        pass
    if os.geteuid() != 0:
        return f"user {name} does not exist and only root can create it"
    made = subprocess.run(["useradd", "--no-create-home", "--no-user-group", "--shell", "/usr/sbin/nologin",
                           "--comment", "ca-agent benchmark (netopeer2 NACM user)", name],
                          capture_output=True, text=True, timeout=30)
    return None if made.returncode == 0 else f"useradd {name}: {made.stderr.strip()[-200:]}"


class Netopeer2Peer:
    """One netopeer2-server instance of the kit (``start.sh PORT DIR``) with our module installed.

    Its running datastore lives in SHM (sysrepo): nothing reaches the disk on
    an edit. ``access_control``: sessions log in as :data:`NP2_NACM_USER`,
    a member of root-system in our agent's own ``/nacm`` (imported into
    running), so NACM is enforced as ours does for admin; without it, as
    root, which sysrepo exempts from NACM.
    """

    name = "netopeer2"

    def __init__(self, workdir: Path, module: Path, client_key: Path | None = None,
                 access_control: bool = True) -> None:
        self.dir = workdir
        self.module = module
        self.client_key = client_key  # also authorized for root, so every server sees the same client key
        self.access_control = access_control
        self.user = NP2_NACM_USER if access_control else "root"
        if not access_control:
            self.name = "netopeer2 (root, NACM bypassed)"
        self.port = 0
        self.pid = 0
        self.key = ""

    def start(self, timeout: float = 60.0) -> Netopeer2Peer:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = dict(os.environ, NP2_START_TIMEOUT=str(int(timeout)))
        out = subprocess.run([str(NP2_KIT / "start.sh"), str(self.port), str(self.dir)], capture_output=True,
                             text=True, timeout=timeout + 30, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"netopeer2 start.sh failed: {out.stderr.strip()[-500:]}")
        values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        self.pid = int(values["NP2_PID"])
        self.key = values["NP2_KEY"]
        if self.client_key is not None:
            # The kit's key is ed25519; the RSA 2048 key the other servers see costs the client more
            # to load and use: authorize it too and log in with it (read at each login).
            with open(self.dir / "authorized_keys" / "root", "a", encoding="ascii") as handle:
                handle.write(Path(f"{self.client_key}.pub").read_text())
            self.key = str(self.client_key)
        try:
            if self.access_control:
                self._enforce_access_control()
            installed = subprocess.run([str(NP2_KIT / "install-module.sh"), str(self.dir), str(self.module)],
                                       capture_output=True, text=True, timeout=120)
            # The kit's check (sysrepoctl -l | grep -q, under pipefail) can fail on SIGPIPE although
            # the module is installed: ask sysrepoctl ourselves.
            if installed.returncode != 0 and not self._installed(self.module.stem.partition("@")[0]):
                raise RuntimeError(f"netopeer2 install-module.sh {self.module.name}: {installed.stderr[-500:]}")
        except Exception:
            self.stop()
            raise
        return self

    def _enforce_access_control(self) -> None:
        why = ensure_system_user(self.user)
        if why is not None:
            raise RuntimeError(f"netopeer2 with access control: {why}")
        shutil.copy(self.dir / "authorized_keys" / "root", self.dir / "authorized_keys" / self.user)
        nacm = self.dir / "nacm.xml"
        nacm.write_bytes(nacm_config(self.user))
        imported = subprocess.run(
            ["bash", "-c", f'. "{self.dir}/env.sh" && sysrepocfg --import="{nacm}" -d running '
                           "-m ietf-netconf-acm -f xml"],
            capture_output=True, text=True, timeout=60)
        if imported.returncode != 0:
            raise RuntimeError(f"netopeer2: importing /nacm failed: {imported.stderr.strip()[-300:]}")

    def _installed(self, module: str) -> bool:
        listing = subprocess.run(["bash", "-c", f'. "{self.dir}/env.sh" && sysrepoctl -l'], capture_output=True,
                                 text=True, timeout=60).stdout
        return any(re.match(rf"{re.escape(module)}\s+\|[^|]*\|\s*I\s", line) for line in listing.splitlines())

    def connect_params(self) -> dict[str, Any]:
        return dict(
            host="127.0.0.1", port=self.port, username=self.user, key_filename=self.key,
            hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=120,
        )

    def server_pids(self) -> list[int]:
        return [self.pid] if self.pid else []

    def rss_pid(self) -> int:
        return self.pid

    def stop(self) -> None:
        if self.pid:
            subprocess.run([str(NP2_KIT / "stop.sh"), str(self.dir)], capture_output=True, timeout=60)
            self.pid = 0
