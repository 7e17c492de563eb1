"""The `bnnkws` command line: one entry point, one subcommand per module.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` (called with the parsed namespace, returns an exit code). Errors
derived from BnnkwsError become a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys

from bnnkws import __version__
from bnnkws.generator.base.errors import BnnkwsError

# Modules under bnnkws.tools.commands that register subcommands, in --help order.
COMMAND_MODULES = [
    "bnnkws.tools.commands.data",
    "bnnkws.tools.commands.features",
    "bnnkws.tools.commands.train",
    "bnnkws.tools.commands.export",
    "bnnkws.tools.commands.build",
    "bnnkws.tools.commands.verify",
    "bnnkws.tools.commands.bench_host",
    "bnnkws.tools.commands.flash",
    "bnnkws.tools.commands.stream",
    "bnnkws.tools.commands.bench_mcu",
    "bnnkws.tools.commands.demo",
    "bnnkws.tools.commands.bench",
    "bnnkws.tools.commands.bench_accelerator",
    "bnnkws.tools.commands.bench_streaming",
    "bnnkws.tools.commands.bench_card",
]


def command_line(argv: list[str] | None = None) -> str:
    """The running command as text for reports and checkpoints, without machine paths.

    Absolute paths among the arguments are written relative to the working directory,
    so a recorded command can be rerun from another checkout.
    """
    args = sys.argv[1:] if argv is None else argv
    out = []
    for a in args:
        s = str(a)
        if os.path.isabs(s):
            s = os.path.relpath(s)
        out.append(shlex.quote(s))
    return " ".join(["bnnkws", *out])


def build_parser(modules: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnnkws",
        description="Binarized keyword spotting: train, export, build, flash, stream, verify.",
    )
    parser.add_argument("--version", action="version", version=f"bnnkws {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None, modules: list[str] | None = None) -> int:
    """Run one command. `modules` limits the parser to those command modules, for entry
    points (``python -m bnnkws.tools.commands.train``) on machines where other commands'
    imports (soundfile, cffi) are missing."""
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BnnkwsError as exc:
        print(f"bnnkws {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bnnkws {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
