"""Code that ``codegym`` runs but does not own, found through entry points.

``codegym`` never imports ``agents`` (the layers are ``sandboxes`` <- ``codegym`` <- ``agents``,
checked by ``import-linter``). What it needs from a package above it is declared by that
package in its ``pyproject.toml`` and read from the installed metadata:

* ``codegym.commands``: sub-commands of the ``codegym`` CLI (a module with ``NAME``, ``HELP``,
  ``add_parser(subparsers)`` and ``run(args)``); ``agents`` adds ``sft``, ``train`` and
  ``reproduce`` this way.
* ``codegym.trainers``: trainers that codegym's own pipelines run; ``sft`` is a module with
  ``SFTConfig`` and ``train_sft`` (``codegym defaults build`` trains its policy with them;
  the module also re-exports the evaluation helpers of :mod:`codegym.evaluation` under their
  older names).
* ``codegym.agents``: agents by name (see :mod:`codegym.plugins`).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

COMMANDS = "codegym.commands"
TRAINERS = "codegym.trainers"


def registered(group: str) -> dict[str, EntryPoint]:
    """Name -> entry point of every installed entry point in ``group``."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str) -> Any:
    """The object entry point ``name`` of ``group`` points to.

    Raises:
        ValueError: nothing of that name is installed (names what is, and how to install it),
            or it fails to import.
    """
    eps = registered(group)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ValueError(
            f"no {group!r} entry point named {name!r} is installed (installed: {known}); "
            "install the project with `pip install -e .` (the agents package provides the built-in ones)"
        )
    try:
        return eps[name].load()
    except ImportError as exc:
        raise ValueError(f"{group} entry point {name!r} ({eps[name].value}) cannot be imported: {exc}") from exc


__all__ = ["COMMANDS", "TRAINERS", "load", "registered"]
