"""Load agents by registered name or ``"module:Class"`` string (codegym never imports agents).

Names come from the ``codegym.agents`` entry-point group, so a third-party package can add
its own agent by declaring, in its ``pyproject.toml``::

    [project.entry-points."codegym.agents"]
    myagent = "mypkg.agent:MyAgent"
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "codegym.agents"


def agent_names() -> dict[str, str]:
    """Registered agent names -> ``"module:Class"``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


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
    """The object named by ``"module:attr"`` (imported lazily)."""
    what = what or repr(target)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}: cannot import module {module_name!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{what}: module {module_name!r} has no {attr!r}") from None


def load_agent(spec: str, **kwargs: Any) -> Any:
    """Instantiate the agent named by ``spec`` with ``kwargs``."""
    cls = resolve(spec)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"agent {spec!r} rejected its arguments {sorted(kwargs)}: {exc}") from exc


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
