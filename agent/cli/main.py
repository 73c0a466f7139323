"""``ca-cli``: connect to the agent over NETCONF and run router commands.

    ca-cli [--host H] [--port P] [--user U] [--key FILE] [--known-hosts FILE]
           [--data-dir DIR] [--timeout S] [-c COMMAND]...

Interactive shell when stdin is a terminal and no ``-c`` is given; otherwise
one-shot: the ``-c`` commands in order, or the commands read from stdin
(answers to a command's questions are the lines that follow it). The
password comes from ``$CA_AGENT_PASSWORD``; else, for user admin of an agent
on this host, from the agent's data directory (``DIR/admin-password``, which
the agent writes at its first start); else it is asked for.

Exit status: 0 success, 1 a command failed (one-shot mode), 2 usage error,
3 cannot connect or the connection was lost.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.cli.client import AgentClient, CliError, ConnectionLost
from agent.cli.console import Console, StreamConsole, TerminalConsole
from agent.cli.session import CliSession, ExitCli

__all__ = ["main", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_CONNECTION"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
PASSWORD_ENV = "CA_AGENT_PASSWORD"
ADMIN_USER = "admin"  # the user the agent creates at its first start...
ADMIN_PASSWORD_FILE = "admin-password"  # ...with its password in this file of its data directory
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ca-cli",
        description="IOS XR-style CLI for ca-agent, over NETCONF. "
        f"The password is read from ${PASSWORD_ENV} or asked for.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="agent address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8830, help="NETCONF over SSH port (default 8830)")
    parser.add_argument("--user", default="admin", help="user name (default admin)")
    parser.add_argument("--key", default=None, help="SSH private key file for public-key login")
    parser.add_argument("--known-hosts", type=Path, default=None,
                        help="verify the agent's host key against this known_hosts file (default: no check)")
    parser.add_argument("--data-dir", type=Path, default=Path("./ca-agent-data"),
                        help="the agent's data directory, for the admin password of an agent on this host "
                        "(default ./ca-agent-data, as ca-agent's)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each reply (default 300)")
    parser.add_argument("-c", "--command", action="append", default=[], metavar="COMMAND",
                        help="run this command and exit (repeatable; runs in order)")
    return parser


def _local_admin_password(args: argparse.Namespace) -> str | None:
    """The admin password the agent wrote in its data directory, when it runs on this host."""
    if args.user != ADMIN_USER or args.host not in LOCAL_HOSTS:
        return None
    try:
        return (args.data_dir / ADMIN_PASSWORD_FILE).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None  # no such file (e.g. the password came from $CA_AGENT_ADMIN_PASSWORD) or not readable


def _password(args: argparse.Namespace) -> str | None:
    password = os.environ.get(PASSWORD_ENV)
    if password or args.key:
        return password or None
    password = _local_admin_password(args)
    if password:
        return password
    if sys.stdin.isatty():
        return getpass.getpass(f"{args.user}@{args.host}'s password: ")
    raise CliError(f"No password: set ${PASSWORD_ENV}, or --data-dir of an agent on this host "
                   "(stdin is not a terminal)")


def _run_commands(session: CliSession, commands: Sequence[str]) -> int:
    status = EXIT_OK
    for command in commands:
        for line in command.splitlines() or [""]:
            if not session.execute(line):
                status = EXIT_FAILED
    return status


def _run_script(session: CliSession, console: StreamConsole) -> int:
    status = EXIT_OK
    while True:
        line = console.next_line()
        if line is None:
            return status
        console.write(session.prompt + line + "\n")
        if not session.execute(line):
            status = EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ca-cli``; returns the exit status. Raises nothing (errors are printed as ``% ...``)."""
    try:
        args = _parser().parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # argparse reports usage errors (and --help) by exiting
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # ncclient and paramiko log a broken session on their own; the CLI says it once, as the router would.
    for name in ("ncclient", "paramiko"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    interactive_stdin = sys.stdin.isatty()
    try:
        password = _password(args)
    except CliError as error:
        print(f"% {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        return EXIT_USAGE
    try:
        client = AgentClient.connect(args.host, args.port, args.user, password, key_filename=args.key,
                                     known_hosts=args.known_hosts, timeout=args.timeout)
    except ConnectionLost as error:
        print(f"% {error}", file=sys.stderr)
        return EXIT_CONNECTION
    console: Console
    if interactive_stdin:
        console = TerminalConsole(echoes_commands=not args.command)
    else:
        console = StreamConsole(iter(sys.stdin), echoes_commands=not args.command)
    session = CliSession(client, console)
    try:
        session.refresh_hostname()
        if args.command:
            status = _run_commands(session, args.command)
        elif isinstance(console, StreamConsole):
            status = _run_script(session, console)
        else:
            from agent.cli.shell import default_history, run_shell

            run_shell(session, default_history())
            status = EXIT_OK
        session.finish()
        return status
    except ExitCli:
        session.finish()
        return EXIT_OK
    except ConnectionLost as error:
        sys.stdout.flush()
        print(f"\n% {error}", file=sys.stderr)
        return EXIT_CONNECTION
    except CliError as error:
        print(f"% {error.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
