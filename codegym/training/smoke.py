"""Smoke-test budgets: ``CODEGYM_SMOKE=1`` caps every long job at a few steps.

The test suite runs every command of README.md and docs/ exactly as written, and every
``examples/*.py``; with ``CODEGYM_SMOKE=1`` in the environment a 15-minute SFT run or a
100-iteration PPO run becomes a few-second check that the command works end to end. The
trainers (SFT, PRM, PPO) apply their caps in one place, the trainer skeleton
(:attr:`codegym.training.trainer.Trainer.smoke_caps`), whether they are started by a command
or from Python; ``eval`` and ``label`` cap their own budgets. Each capped job prints which
budgets it lowered, so a smoke run is never mistaken for a real one. Never set it for real work.
"""

from __future__ import annotations

import os
from typing import Any

ENV_VAR = "CODEGYM_SMOKE"


def active() -> bool:
    """Whether smoke-test budgets are on (``CODEGYM_SMOKE`` set to anything but ``0``/empty)."""
    return os.environ.get(ENV_VAR, "") not in ("", "0")


def cap(target: Any, caps: dict[str, Any], what: str) -> dict[str, tuple[Any, Any]]:
    """Lower the numeric attributes (or dict keys) of ``target`` to ``caps`` when smoke
    budgets are on; returns ``{name: (old, new)}`` and prints one line naming them.

    A ``None`` value (meaning "all", e.g. every task of a suite) is capped too.
    """
    if not active():
        return {}
    changed: dict[str, tuple[Any, Any]] = {}
    for name, limit in caps.items():
        old = target.get(name) if isinstance(target, dict) else getattr(target, name, None)
        if isinstance(old, bool) or (old is not None and not isinstance(old, (int, float))):
            continue
        if old is None or old > limit:
            if isinstance(target, dict):
                target[name] = limit
            else:
                setattr(target, name, limit)
            changed[name] = (old, limit)
    if changed:
        from rich.console import Console

        parts = ", ".join(f"{k} {'all' if a is None else a} -> {b}" for k, (a, b) in changed.items())
        Console(stderr=True).print(f"[yellow]{ENV_VAR} is set: {what} budgets capped ({parts})[/]",
                                   highlight=False, soft_wrap=True)
    return changed


__all__ = ["ENV_VAR", "active", "cap"]
