"""The ``codegym`` command line. Each sub-command lives in ``codegym/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: Sub-command modules under ``codegym.commands`` (each has ``add_parser`` and ``run``).
COMMANDS: list[str] = ["eval", "show", "label", "sandbox", "sft", "train_prm", "train", "reproduce", "plot",
                       "defaults"]


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
    """Entry point of the ``codegym`` console script.

    Errors a user can fix (bad input, a corrupt file, a missing Docker engine) print one line
    and exit 2; Ctrl-C says what was saved and how to resume, and exits 130.
    """
    # One style of progress: rich. transformers' own tqdm bars and advisory warnings would
    # interleave with it (these are read when transformers is first imported).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from codegym import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from rich.console import Console

    from sandboxes.base import SandboxUnavailable

    err = Console(stderr=True)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, SandboxUnavailable) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "on_interrupt", None)
        message = hint(args) if callable(hint) else "nothing was saved"
        err.print(f"[bold yellow]interrupted:[/] {message}", highlight=False, soft_wrap=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
