"""Code that ``codegym`` runs but does not own, found through entry points; agents by name.

``codegym`` never imports ``agents`` (the layers are ``sandboxes`` <- ``codegym`` <- ``agents``,
checked by ``import-linter``). What it needs from a package above it is declared by that
package in its ``pyproject.toml`` and read from the installed metadata:

* ``codegym.commands``: sub-commands of the ``codegym`` CLI (a module with ``NAME``, ``HELP``,
  ``add_parser(subparsers)`` and ``run(args)``); ``agents`` adds ``sft``, ``train`` and
  ``reproduce`` this way.
* ``codegym.trainers``: trainers that codegym's own pipelines run; ``sft`` is a module with
  ``SFTConfig`` and ``train_sft`` (``codegym defaults build`` trains its policy with them).
* ``codegym.agents``: agents by registered name or ``"module:Class"`` string, so a third-party
  package can add its own agent by declaring, in its ``pyproject.toml``::

    [project.entry-points."codegym.agents"]
    myagent = "mypkg.agent:MyAgent"
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

COMMANDS = "codegym.commands"
TRAINERS = "codegym.trainers"
ENTRY_POINT_GROUP = "codegym.agents"


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


def agent_names() -> dict[str, str]:
    """Registered agent names -> ``"module:Class"``."""
    return {name: ep.value for name, ep in registered(ENTRY_POINT_GROUP).items()}


def resolve(spec: str) -> type:
    """The class named by ``spec`` (a registered name or ``"module:Class"``)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"agent must be a name or 'module:Class', got {spec!r}")
    target = spec if ":" in spec else agent_names().get(spec)
    if target is None:
        names = ", ".join(sorted(agent_names())) or "(none installed: pip install -e .)"
        raise ValueError(f"unknown agent {spec!r}: use one of {names} or 'module:Class'")
    return resolve_object(target, what=f"agent {spec!r}")


def resolve_object(target: str, what: str | None = None) -> Any:
    """The object named by ``"module:attr"`` (imported lazily).

    A module that is not importable from ``sys.path`` is looked up in the current working
    directory too (as ``python -m`` and uvicorn do), so ``codegym eval --agent
    mypkg.agent:MyAgent`` finds ``./mypkg/agent.py`` without installing it.
    """
    what = what or repr(target)
    module_name, _, attr = target.partition(":")
    try:
        module = _import(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}: cannot import module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{what}: module {module_name!r} has no {attr!r}") from None


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        cwd = os.getcwd()
        if exc.name != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError:
            sys.path.remove(cwd)
            raise exc from None


def accepted_arguments(cls: type) -> tuple[set[str], bool]:
    """Keyword arguments ``cls(...)`` accepts: ``(names, open)``.

    Follows ``**kwargs`` that a constructor passes on to its parent's (walking the MRO);
    ``open`` is True when some class takes arbitrary keywords that no parent names.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return names, False
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a builtin: nothing known
            return names, True
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


def agent_defaults(cls: type) -> dict[str, Any]:
    """Constructor defaults of ``cls`` that are plain values (numbers, strings, booleans,
    ``None``), following ``**kwargs`` to the parents like :func:`accepted_arguments`."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        for p in params:
            plain = p.default is None or isinstance(p.default, (bool, int, float, str))
            if p.name != "self" and p.default is not p.empty and plain and p.name not in out:
                out[p.name] = p.default
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


def build_agent(spec: str, kwargs: dict[str, Any], optional: dict[str, Any] | None = None) -> Any:
    """Instantiate the agent named by ``spec``.

    Args:
        spec: A registered name or ``"module:Class"``.
        kwargs: Arguments the user asked for (``--agent-arg``, ``--model``): a name the
            constructor does not accept is refused with the accepted names.
        optional: Arguments passed only when the constructor takes them (e.g. the CLI's
            ``seed``), so an ``Agent`` subclass without a constructor works.

    Raises:
        ValueError: Unknown agent, unknown argument, or the constructor rejected a value.
    """
    cls = resolve(spec)
    names, open_ = accepted_arguments(cls)
    unknown = sorted(set(kwargs) - names) if not open_ else []
    if unknown:
        accepted = ", ".join(sorted(names)) if names else "no arguments"
        flags = ", ".join("--model" if k == "model" else f"--agent-arg {k}=..." for k in unknown)
        raise ValueError(f"agent {spec!r} does not take {flags}; it accepts: {accepted}")
    call = dict(kwargs)
    for key, value in (optional or {}).items():
        if key not in call and (open_ or key in names):
            call[key] = value
    try:
        return cls(**call)
    except TypeError as exc:
        raise ValueError(f"agent {spec!r} rejected its arguments {sorted(call)}: {exc}") from exc


def load_agent(spec: str, **kwargs: Any) -> Any:
    """Instantiate the agent named by ``spec`` with ``kwargs`` (see :func:`build_agent`)."""
    return build_agent(spec, kwargs)


def parse_kv(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (ints, floats, booleans parsed)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        parsed: Any = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        else:
            for conv in (int, float):
                try:
                    parsed = conv(value)
                    break
                except ValueError:
                    pass
        out[key] = parsed
    return out
