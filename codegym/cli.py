"""The ``codegym`` command line. Each sub-command lives in ``codegym/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import sys

#: Sub-command modules under ``codegym.commands`` (each has ``add_parser`` and ``run``).
COMMANDS: list[str] = ["eval", "show", "label", "sandbox", "sft", "train_prm", "train", "reproduce", "plot"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="codegym",
        description="RL environments for code generation with line-level process supervision.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"codegym.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``codegym`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from codegym import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
