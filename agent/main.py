"""`ca-agent` command line: run the agent, the lab CA (`ca-agent lab-ca ...`), or `ca-agent recover-admin`."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from pathlib import Path

from agent.netconf.framing import DEFAULT_MAX_MESSAGE_SIZE


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
    limits.add_argument("--max-sessions", type=int, default=256, metavar="N",
                        help="refuse new connections and sessions beyond this many (default 256)")
    limits.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES",
                        help=f"largest NETCONF message accepted (default {DEFAULT_MAX_MESSAGE_SIZE}, 16 MiB)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    for name in ("handshake_timeout", "hello_timeout", "max_sessions", "max_message_size"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    logging.basicConfig(
        stream=sys.stderr,
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
                limits=ServerLimits(
                    handshake_timeout=args.handshake_timeout,
                    max_sessions=args.max_sessions,
                    session=SessionLimits(
                        hello_timeout=args.hello_timeout,
                        idle_timeout=args.idle_timeout or None,
                        max_message_size=args.max_message_size,
                    ),
                ),
            )
        )
    except OSError as error:
        logging.getLogger("ca-agent").error("cannot start: %s", error)
        return 1
    logging.getLogger("ca-agent").info("ready: NETCONF over SSH on %s port %d", args.host, app.port)
    received = stop_signals.wait()
    logging.getLogger("ca-agent").info("shutting down (%s)", received)
    app.stop()
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
    return _serve(arguments)


if __name__ == "__main__":
    sys.exit(main())
