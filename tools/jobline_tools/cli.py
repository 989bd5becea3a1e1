"""The `jobline` command: operators' `jobs` and `runs`, and `local` (the same as `jobline-local`).

Subcommands import what they need on first use: `jobline runs ...` never loads the local stack."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="jobline", description="jobline: declared jobs, run from events on AWS.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("local", help="run the stack on a local AWS (the same as `jobline-local`)", add_help=False)
    commands.add_parser("jobs", help="the job catalog; `jobline jobs --help`", add_help=False)
    commands.add_parser("runs", help="start, watch, list, stop and retry runs; `jobline runs --help`", add_help=False)
    commands.add_parser("fanouts", help="start, list, show and stop fan-outs; `jobline fanouts --help`", add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands.choices:
        parser.print_help()
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "local":
        from jobline_local.cli import main as local_main

        return local_main(rest)
    if command in ("jobs", "runs", "fanouts"):
        from jobline_tools.operator_cli import main as operator_main

        return operator_main(argv)
    return 2  # pragma: no cover - every choice is handled above


if __name__ == "__main__":
    sys.exit(main())
