"""`ca-agent` command line: run the agent, the lab CA (`ca-agent lab-ca ...`), or `ca-agent recover-admin`.

``ca-agent --lab-ca`` also runs the lab SCEP CA (:mod:`agent.labca`) on
127.0.0.1, with its state in ``DATA_DIR/lab-ca``, so that a first try needs no
CA of one's own: its URL is printed at start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from agent.datastore.store import DEFAULT_MAX_SIZE
from agent.errors import AgentError
from agent.netconf.budget import DEFAULT_XPATH_BUDGET
from agent.netconf.buffer_budget import DEFAULT_MAX_BUFFERED_INPUT, DEFAULT_MAX_BUFFERED_OUTPUT, BufferBudget
from agent.netconf.framing import DEFAULT_MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    from agent.labca.server import LabCaServer

LAB_CA_DIR = "lab-ca"


def _start_lab_ca(data_dir: Path, port: int, challenge: str | None) -> LabCaServer:
    """Start the lab SCEP CA on 127.0.0.1 and say how to use it. Raises OSError (e.g. the port is taken)."""
    from agent.files import ensure_private_dir
    from agent.labca.ca import LabCa
    from agent.labca.server import LabCaServer

    ca_dir = ensure_private_dir(data_dir) / LAB_CA_DIR
    server = LabCaServer(LabCa(ca_dir, challenge=challenge), host="127.0.0.1", port=port)
    server.start()
    password = "the challenge password given with --lab-ca-challenge" if challenge else "any challenge password"
    for line in (
        f"lab CA: SCEP at {server.url} (issues at once to {password})",
        f"lab CA: on a trustpoint: enrollment url {server.url}",
        f"lab CA: its certificate: {ca_dir / 'ca.pem'}; cut-and-paste requests: ca-agent lab-ca sign "
        f"--data-dir {ca_dir} < request.pem",
    ):
        print(f"ca-agent: {line}", file=sys.stderr, flush=True)
    return server


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ca-agent", description="NETCONF/YANG agent for PKI (CA interoperability)")
    parser.add_argument("--data-dir", type=Path, default=Path("./ca-agent-data"), help="state directory (0700)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8830, help="NETCONF over SSH port (default 8830)")
    parser.add_argument(
        "--retry-period-unit",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="length of one 'enrollment retry period' unit (default 60: minutes, as on the router; "
        "demos and tests shorten it)",
    )
    limits = parser.add_argument_group("sessions (RFC 6242 over SSH)")
    limits.add_argument("--handshake-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="SSH handshake, login and netconf subsystem must be done within this (default 30)")
    limits.add_argument("--hello-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="the client's <hello> must arrive within this (default 30)")
    limits.add_argument("--idle-timeout", type=float, default=0.0, metavar="SECONDS",
                        help="close a session idle this long, unless it has a notification subscription "
                        "(default 0: never)")
    limits.add_argument("--tcp-keepalive", type=float, default=60.0, metavar="SECONDS",
                        help="probe a connection silent this long, and drop a client that vanished without "
                        "closing (power loss, a network cut) after about twice this; 0: never (default 60)")
    limits.add_argument("--max-sessions", type=int, default=256, metavar="N",
                        help="refuse new connections and sessions beyond this many (default 256)")
    limits.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES",
                        help=f"largest NETCONF message accepted (default {DEFAULT_MAX_MESSAGE_SIZE}, 16 MiB)")
    limits.add_argument("--max-buffered-input", type=int, default=DEFAULT_MAX_BUFFERED_INPUT, metavar="BYTES",
                        help="most bytes of unfinished requests all sessions may hold together; over it, the "
                        f"session holding the most is closed (default {DEFAULT_MAX_BUFFERED_INPUT}, 128 MiB)")
    limits.add_argument("--max-buffered-output", type=int, default=DEFAULT_MAX_BUFFERED_OUTPUT, metavar="BYTES",
                        help="most bytes of replies and notifications all sessions may hold unsent together; over "
                        f"it, the session holding the most is closed (default {DEFAULT_MAX_BUFFERED_OUTPUT}, 128 MiB)")
    limits.add_argument("--max-datastore-size", type=int, default=DEFAULT_MAX_SIZE, metavar="BYTES",
                        help="largest configuration (bytes of running.xml; the candidate too): a change that would "
                        "make it larger is refused with resource-denied; 0: no limit "
                        f"(default {DEFAULT_MAX_SIZE}, 16 MiB)")
    parser.add_argument("--replay-log-size", type=int, default=1000, metavar="N",
                        help="notifications kept for replay (RFC 5277 startTime), at most 4 MiB (default 1000)")
    limits.add_argument("--filter-budget", type=float, default=DEFAULT_XPATH_BUDGET, metavar="SECONDS",
                        help="CPU seconds one subtree or XPath filter may use before the request fails with "
                        f"operation-failed (default {DEFAULT_XPATH_BUDGET:g})")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--lab-ca", action="store_true",
                        help="also run the lab SCEP CA on 127.0.0.1 (state in DATA_DIR/lab-ca) for a first try")
    parser.add_argument("--lab-ca-port", type=int, default=8080, metavar="PORT",
                        help="port of the lab CA (default 8080; 0: any free port)")
    parser.add_argument("--lab-ca-challenge", default=None, metavar="PASSWORD",
                        help="challenge password the lab CA requires (default: none, any is accepted)")
    args = parser.parse_args(argv)
    if args.replay_log_size < 2:
        parser.error("--replay-log-size must be at least 2")
    for name in ("handshake_timeout", "hello_timeout", "max_sessions", "max_message_size", "filter_budget"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.tcp_keepalive < 0:
        parser.error("--tcp-keepalive must not be negative")
    if args.max_buffered_input < args.max_message_size:
        parser.error("--max-buffered-input must be at least --max-message-size")
    if args.max_datastore_size < 0:
        parser.error("--max-datastore-size must not be negative")
    if args.max_buffered_output <= 0:
        parser.error("--max-buffered-output must be positive")
    from agent.stderr_log import StderrLog

    logging.basicConfig(
        handlers=[StderrLog(sys.stderr)],  # never held up by a reader that stops reading: see the module
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # paramiko logs every failed handshake at ERROR with a traceback; a port scan is not an error.
    logging.getLogger("paramiko").setLevel(logging.WARNING if args.log_level == "DEBUG" else logging.CRITICAL)

    from agent.app import AgentConfig, Application
    from agent.netconf.session import SessionLimits
    from agent.netconf.ssh import ServerLimits

    stop_signals = _StopSignals()
    try:
        app = Application(
            AgentConfig(
                data_dir=args.data_dir,
                host=args.host,
                port=args.port,
                retry_period_unit=args.retry_period_unit,
                replay_log_size=args.replay_log_size,
                filter_budget=args.filter_budget,
                max_datastore_size=args.max_datastore_size or None,
                limits=ServerLimits(
                    handshake_timeout=args.handshake_timeout,
                    tcp_keepalive=args.tcp_keepalive or None,
                    max_sessions=args.max_sessions,
                    session=SessionLimits(
                        hello_timeout=args.hello_timeout,
                        idle_timeout=args.idle_timeout or None,
                        max_message_size=args.max_message_size,
                        input_budget=BufferBudget(args.max_buffered_input),
                        output_budget=BufferBudget(args.max_buffered_output),
                    ),
                ),
            )
        )
    except (OSError, AgentError) as error:  # e.g. a start-up rollback on a full disk
        logging.getLogger("ca-agent").error("cannot start: %s", error)
        return 1
    lab_ca = None
    if args.lab_ca:
        try:
            lab_ca = _start_lab_ca(args.data_dir, args.lab_ca_port, args.lab_ca_challenge)
        except OSError as error:
            logging.getLogger("ca-agent").error(
                "cannot start the lab CA on 127.0.0.1 port %d: %s (choose another with --lab-ca-port)",
                args.lab_ca_port,
                error,
            )
            app.stop()
            return 1
    from agent.memory_tuning import settle_garbage_collector

    settle_garbage_collector()  # what start-up made stays: see the module
    logging.getLogger("ca-agent").info("ready: NETCONF over SSH on %s port %d", args.host, app.port)
    received = stop_signals.wait()
    logging.getLogger("ca-agent").info("shutting down (%s)", received)
    app.stop()
    if lab_ca is not None:
        lab_ca.close()
    return 0


class _StopSignals:
    """Waits in the main thread for SIGTERM or SIGINT, whichever thread the kernel hands it to.

    A signal delivered to another thread does not interrupt the main thread's
    wait on a lock (so the agent once ignored SIGTERM); the C-level handler
    always writes to the wakeup fd, and the main thread blocks reading it.
    """

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: None)  # a Python handler makes the C handler write the fd

    def wait(self) -> str:
        """Block until a stop signal arrives; returns its name."""
        while True:
            data = self._read.recv(1)
            if data and data[0] in (signal.SIGTERM, signal.SIGINT):
                return signal.Signals(data[0]).name


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ca-agent` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["lab-ca"]:
        from agent.labca.cli import main as lab_ca_main

        return lab_ca_main(arguments[1:])
    if arguments[:1] == ["recover-admin"]:
        from agent.recovery import main as recover_admin_main

        return recover_admin_main(arguments[1:])
    from agent.memory_tuning import fix_mmap_threshold, limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts: see the module
    fix_mmap_threshold()
    return _serve(arguments)


def run() -> NoReturn:
    """The process's entry point (`ca-agent`, `python -m agent`): :func:`main`, then the process ends at once.

    Once the agent has stopped in order, threads still waiting on a CA (a poll, a
    CRL fetch in the background) have nothing left to do: their work is either
    durable or will be done again after a restart, as after a crash. Python's own
    exit would wait for them: ``concurrent.futures`` joins every pool thread, and a
    poll of a CA that never answers ends only at its 30 s deadline.
    """
    code = main()
    logging.shutdown()  # writes the log lines still queued, unless standard error is stalled
    try:
        # Not standard error: its writes are flushed as made, and when no one reads it the log's
        # writer thread is blocked inside it, holding the lock a flush would wait on.
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # closed or gone: nothing to flush to
    os._exit(code)


if __name__ == "__main__":
    run()
