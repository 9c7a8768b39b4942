"""``qdqforge`` entry point: argparse dispatch over a registry of subcommand modules.

To add a subcommand, write ``qdqforge/cli/<name>.py`` with ``register(subparsers)`` that adds
its parser and sets ``func=handler`` (``handler(args) -> int``), and list the module in
:data:`SUBCOMMANDS`. Modules are imported only when the CLI starts, so a heavy import in one
subcommand does not slow the others' ``--help`` much, and a module that fails to import is
reported rather than breaking the whole CLI.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence

from qdqforge.cli.say import SafeFormatter, say
from qdqforge.errors import QdqforgeError

SUBCOMMANDS: list[str] = [
    "qdqforge.cli.record",
    "qdqforge.cli.passes",
    "qdqforge.cli.diff",
    "qdqforge.cli.doctor",
]

log = logging.getLogger("qdqforge.cli")


def build_parser(modules: Sequence[str] = SUBCOMMANDS) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per registered module."""
    parser = argparse.ArgumentParser(prog="qdqforge", description="AMCT-compatible INT8 tools")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            importlib.import_module(name).register(sub)
        except ImportError as e:  # keep the other subcommands usable
            log.warning("subcommand module %s unavailable: %s", name, e)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except QdqforgeError as e:
        say(f"qdqforge {args.command}: error: {e}", err=True)
        return 1
