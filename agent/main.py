"""`ca-agent` command line: run the agent, the lab CA (`ca-agent lab-ca ...`), or `ca-agent recover-admin`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path


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
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # paramiko logs every failed handshake at ERROR with a traceback; a port scan is not an error.
    logging.getLogger("paramiko").setLevel(logging.WARNING if args.log_level == "DEBUG" else logging.CRITICAL)
    logging.getLogger("sshutil").setLevel(logging.CRITICAL)
    logging.getLogger("netconf").setLevel(logging.CRITICAL)

    from agent.app import AgentConfig, Application

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        app = Application(
            AgentConfig(
                data_dir=args.data_dir, host=args.host, port=args.port, retry_period_unit=args.retry_period_unit
            )
        )
    except OSError as error:
        logging.getLogger("ca-agent").error("cannot start: %s", error)
        return 1
    logging.getLogger("ca-agent").info("ready: NETCONF over SSH on %s port %d", args.host, app.port)
    stop.wait()
    logging.getLogger("ca-agent").info("shutting down")
    app.stop()
    return 0


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
