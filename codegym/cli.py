"""The ``codegym`` command line.

The sub-commands that need only ``codegym`` live in ``codegym/commands/<name>.py``; those
that run agents (``sft``, ``train``, ``reproduce``) are registered by the ``agents`` package
as ``codegym.commands`` entry points (see :mod:`codegym.plugins`), as a third-party
package can register its own. A command module has ``NAME``, ``HELP``, ``add_parser`` and
``run``; only the invoked command builds its full parser (the others are listed by ``HELP``),
so ``codegym --help`` and light commands do not import torch.
"""

from __future__ import annotations

import _thread
import argparse
import importlib
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

#: Commands in the order ``codegym --help`` lists them; ``None`` = a ``codegym.commands``
#: entry point (installed by ``agents``), anything else = a module under ``codegym.commands``.
ORDER: dict[str, str | None] = {
    "eval": "eval", "show": "show", "label": "label", "sandbox": "sandbox", "sft": None,
    "train-prm": "train_prm", "train": None, "reproduce": None, "plot": "plot", "defaults": "defaults",
}  # fmt: skip


def command_loaders() -> dict[str, Callable[[], ModuleType | SimpleNamespace]]:
    """Command name -> a function importing its module (built-ins, then entry points)."""
    from codegym.plugins import COMMANDS, registered

    eps = registered(COMMANDS)
    loaders: dict[str, Callable[[], ModuleType | SimpleNamespace]] = {}
    for name, module in ORDER.items():
        if module is not None:
            loaders[name] = lambda m=module: importlib.import_module(f"codegym.commands.{m}")
        elif name in eps:
            loaders[name] = eps[name].load
        else:
            loaders[name] = lambda n=name: _not_installed(n)
    for name, ep in eps.items():  # commands of other packages
        loaders.setdefault(name, ep.load)
    return loaders


def _not_installed(name: str) -> SimpleNamespace:
    """A stand-in for a command whose entry point is missing (an install that predates it)."""
    why = (f"`codegym {name}` is provided by the agents package, whose entry points are not "
           "installed in this environment: run `pip install -e .` (or `bash .ci/setup.sh`) again")

    def add_parser(sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser(name, help="(not installed: pip install -e .)", add_help=False,
                           prefix_chars="\x00")
        p.add_argument("rest", nargs="*")  # every word, options included (no prefix chars)
        p.set_defaults(run=run)

    def run(args: argparse.Namespace) -> int:
        raise ValueError(why)

    return SimpleNamespace(NAME=name, HELP="(not installed: pip install -e .)", add_parser=add_parser)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with every sub-command; with ``only``, the other commands are
    listed by name and help but their options are not built (their modules may be heavy)."""
    parser = argparse.ArgumentParser(
        prog="codegym",
        description="RL environments for code generation with line-level process supervision.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, load in command_loaders().items():
        module = load()
        if only is None or only == name:
            module.add_parser(sub)
        else:
            sub.add_parser(name, help=module.HELP)
    return parser


def _invoked(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``codegym`` console script.

    Errors a user can fix (bad input, a corrupt file, a missing Docker engine) print one line
    and exit 2; Ctrl-C says what was saved and how to resume, and exits 130.
    """
    # One style of progress: rich. transformers' own tqdm bars and advisory warnings would
    # interleave with it (these are read when transformers is first imported).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_invoked(argv) or "")  # "": list every command by help only
    args = parser.parse_args(argv)
    if args.version:
        from codegym import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sandboxes.base import SandboxUnavailable

    err = Console(stderr=True)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _keep_interrupts(previous_hook)
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
    finally:
        sys.unraisablehook = previous_hook


def _keep_interrupts(previous: Callable[[Any], Any]) -> Callable[[Any], None]:
    """An unraisable-exception hook that does not lose Ctrl-C.

    A ``KeyboardInterrupt`` raised while Python runs a finaliser (a ``__del__``, a weakref
    callback) cannot propagate: Python reports it as "Exception ignored" and goes on, so the
    user's Ctrl-C would be dropped and the job would run to the end. This hook re-delivers
    the signal to the main thread from a short-lived helper thread (raising it from inside the
    hook would be swallowed the same way), so it is raised once the finaliser has returned.
    """

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Timer(0.01, _thread.interrupt_main).start()
            return
        previous(unraisable)

    return hook


if __name__ == "__main__":
    sys.exit(main())
