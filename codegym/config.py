"""One shape for every ``*Config`` dataclass and one way from the command line to it.

:class:`Config` is the base of every config dataclass (evaluation, SFT, PPO, PRM training,
labeling, ``reproduce``, ``defaults build``):

* ``validate()`` checks every field and raises ``ValueError`` naming the field, the bad
  value and the fix; it returns the config. It runs on construction (``__post_init__``), so
  a config object that exists is a valid one; code that changes a field afterwards calls it
  again.
* ``from_dict(data)`` refuses unknown keys (naming them and the valid ones) and turns JSON
  lists and comma-separated strings into the tuples that tuple fields hold; a nested config
  given as a dict sets those of its fields over the field's default (``{"suite":
  {"max_lines": 6}}`` keeps the rest of the default suite). Settings written by an older
  version are read through :meth:`Config.upgrade` first (e.g. the flat ``min_steps`` of
  configs that predate :class:`codegym.tasks.SuiteConfig`, with a note on stderr);
  ``to_dict()``, ``save(path)`` (atomic JSON) and ``load(path)`` round-trip it.

:func:`add_config_args` turns the fields of such a class into ``argparse`` flags (the help
of a flag is the docstring written under its field), plus ``--config FILE`` and ``--set
KEY=VALUE``; :func:`config_data` reads them back, in the order defaults < ``--config`` <
``--set`` < flags. A field that is not a flag is listed, with the reason, in the
``not_exposed`` mapping given to :func:`add_config_args` (a test checks every command).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import os
import re
import sys
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

C = TypeVar("C", bound="Config")


class Config:
    """Base of the config dataclasses: validation on construction, dict/JSON round trips."""

    def __post_init__(self) -> None:
        self._coerce_nested()
        self._check_literals()
        self.validate()

    def _coerce_nested(self) -> None:
        """Nested-config fields given as a dict (or a spec string) become that config."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            tp = _strip_optional(_type_hints(type(self)).get(f.name))
            value = getattr(self, f.name)
            if _is_config(tp) and value is not None and not isinstance(value, tp):
                object.__setattr__(self, f.name, _field_value(f, tp, value))  # frozen configs too

    def _check_literals(self) -> None:
        """Fields typed ``Literal[...]`` hold one of their values."""
        for name, hint in _type_hints(type(self)).items():
            tp = _strip_optional(hint)
            value = getattr(self, name, None)
            if get_origin(tp) is Literal and value is not None and value not in get_args(tp):
                raise ValueError(f"{name} must be one of {get_args(tp)}, got {value!r}")

    def validate(self: C) -> C:
        """Check every field; raise ``ValueError`` naming the field and the fix. Returns self."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all fields (tuples become lists, nested configs dicts)."""
        return _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def upgrade(cls, data: Mapping[str, Any], note: bool = True) -> dict[str, Any]:
        """``data`` with the fields of older versions of this config renamed to today's (a
        config that renamed fields overrides it; ``note`` says so on stderr)."""
        return dict(data)

    @classmethod
    def over(cls: type[C], base: C, data: Mapping[str, Any]) -> C:
        """The config with ``data``'s fields set over ``base``'s (a nested config's default)."""
        return cls.from_dict({**base.to_dict(), **data})

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build (and validate) from a dict; unknown keys raise ``ValueError`` listing the valid ones."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} needs a mapping of fields, got {type(data).__name__}")
        data = cls.upgrade(data)
        names = field_names(cls)
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; valid fields: {sorted(names)}")
        hints = _type_hints(cls)
        defaults = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _field_value(defaults[k], hints.get(k, Any), v) for k, v in data.items()})

    def save(self, path: str | Path) -> None:
        """Write the config as JSON (atomically: a crash leaves the old file or the new one)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a config written by :meth:`save` (or any JSON object of its fields)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read {cls.__name__} from {path}: {exc}") from exc
        return cls.from_dict(data)


def _is_config(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, Config)


def _field_value(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """``value`` for field ``f``: coerced to its type; a dict for a nested config with a default
    sets those fields over the default."""
    tp = _strip_optional(hint)
    if _is_config(tp) and isinstance(value, Mapping) and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
        if isinstance(default, tp):
            return tp.over(default, value)
    return coerce(hint, value, f.name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def field_names(cls: type) -> list[str]:
    """The dataclass field names of ``cls``, in declaration order."""
    return [f.name for f in dataclasses.fields(cls)]


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, globalns=vars(module) if module else None)


def _strip_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def coerce(tp: Any, value: Any, name: str = "value") -> Any:
    """``value`` turned into field type ``tp`` where a JSON or command-line value differs from it:
    lists and comma-separated strings -> tuples, dicts (and, for configs with ``from_spec``,
    strings) -> nested configs. Anything else is returned as is (``validate`` judges it)."""
    tp = _strip_optional(tp)
    if value is None:
        return None
    if get_origin(tp) is tuple:
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            return value
        elem = (get_args(tp) or (Any,))[0]
        convert = elem if elem in (int, float) else None
        try:
            return tuple(convert(x) if convert else x for x in items)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a list of {elem.__name__}, got {value!r}") from None
    if _is_config(tp) and isinstance(value, Mapping):
        return tp.from_dict(value)
    if _is_config(tp) and isinstance(value, str) and hasattr(tp, "from_spec"):
        return tp.from_spec(value)  # e.g. suite="humaneval" for SuiteConfig(name="humaneval")
    return value


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under the field (or its ``Attributes:`` entry in
    the class docstring), whitespace collapsed; read from the source of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        docs.update(_attributes_section(klass.__doc__ or ""))
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):  # fmt: skip
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _attributes_section(doc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    if "Attributes:" not in lines:
        return out
    name = None
    for line in lines[lines.index("Attributes:") + 1:]:
        if line and not line.startswith(" "):
            break
        head, sep, rest = line.strip().partition(": ")
        if line.startswith("    ") and not line.startswith("        ") and sep and head.isidentifier():
            name = head
            out[name] = rest.strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


# --- command line ------------------------------------------------------------------------

#: Fields whose flag is given as ``--set`` or ``--config`` only (no scalar type to parse).
_NOT_SCALAR = (dict, list)


class _Deprecated(argparse.Action):
    """An old flag name: stores like the new one and says so on stderr."""

    def __init__(self, *args: Any, new: str, const_value: Any = None, **kwargs: Any) -> None:
        self.new, self.const_value = new, const_value
        if const_value is not None:
            kwargs["nargs"] = 0
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(f"note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values if self.const_value is None else self.const_value)


def add_deprecated(parser: argparse.ArgumentParser, old: str, new: str, dest: str, type: Any = None,
                   const: Any = None) -> None:
    """Keep flag ``old`` working as ``new`` (same ``dest``), with a note on stderr when used.

    ``const`` makes it a switch that stores that value (e.g. ``--linear`` = ``--mode linear``).
    """
    parser.add_argument(old, dest=dest, default=argparse.SUPPRESS, new=new, const_value=const,
                        type=None if const is not None else type, action=_Deprecated,
                        help=argparse.SUPPRESS)


def add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    not_exposed: Mapping[str, str],
    flags: Mapping[str, str] | None = None,
    deprecated: Mapping[str, str] | None = None,
    options: Mapping[str, dict[str, Any]] | None = None,
    prefix: str = "",
    shared: Iterable[str] = (),
) -> None:
    """Add one flag per field of dataclass ``cls``, plus ``--config`` and ``--set``.

    Args:
        parser: The command's parser.
        cls: The config dataclass; a field's flag is ``--name-with-dashes`` and its help the
            field's docstring. ``int``/``float``/``str`` fields parse as such, ``Literal``
            fields offer their choices, ``bool`` fields get ``--name``/``--no-name``, tuple
            fields take comma-separated values. An absent flag leaves the field unset.
        not_exposed: Field -> why it is no flag (set by the command, or ``--set`` only).
        flags: Field -> its flag when the field name does not say the unit (e.g.
            ``{"steps": "--sft-steps"}``).
        deprecated: Old flag -> field; the old name keeps working with a note on stderr.
        options: Field -> extra ``add_argument`` keywords (``choices``, ``help``, ...).
        prefix: Field of the command's config that holds ``cls`` (a nested config): flags set
            ``prefix.field``.
        shared: Fields whose flag the command already has (added for another config class
            with a field of the same name and meaning); not added again.
    """
    flags, deprecated, options = dict(flags or {}), dict(deprecated or {}), dict(options or {})
    shared = set(shared)
    unknown = sorted((set(not_exposed) | set(flags) | set(deprecated.values()) | set(options) | shared)
                     - set(field_names(cls)))
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {unknown}")
    hints, docs = _type_hints(cls), field_docs(cls)
    dest_prefix = prefix + "." if prefix else ""
    dests = []
    for f in dataclasses.fields(cls):
        if f.name in not_exposed or f.name in shared:
            continue
        flag = flags.get(f.name, "--" + f.name.replace("_", "-"))
        kwargs = _flag_kwargs(cls, f, hints[f.name], docs.get(f.name, ""))
        kwargs.update(dest=dest_prefix + f.name, **options.get(f.name, {}))
        if "choices" not in kwargs and "action" not in kwargs:
            kwargs.setdefault("metavar", flag.lstrip("-").replace("-", "_").upper())
        parser.add_argument(flag, **kwargs)
        dests.append(kwargs["dest"])
        for old in (o for o, name in deprecated.items() if name == f.name):
            add_deprecated(parser, old, flag, kwargs["dest"], type=kwargs.get("type"))
    _add_file_args(parser, cls)
    specs = [*(parser.get_default("config_specs") or []), (cls, prefix, dict(not_exposed))]
    parser.set_defaults(config_specs=specs,
                        config_dests=[*(parser.get_default("config_dests") or []), *dests])


def _flag_kwargs(cls: type, f: dataclasses.Field, hint: Any, doc: str) -> dict[str, Any]:
    tp = _strip_optional(hint)
    if get_origin(tp) in _NOT_SCALAR or tp in _NOT_SCALAR or dataclasses.is_dataclass(tp):
        raise TypeError(f"{cls.__name__}.{f.name}: a {tp} field cannot be a flag; list it in not_exposed")
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": _plain(doc).replace("%", "%%")}
    if tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        return kwargs
    kwargs["required"] = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        kwargs.update(type=type(choices[0]), choices=choices)
    elif tp in (int, float, str):
        kwargs.update(type=tp)
    elif get_origin(tp) is tuple:
        kwargs.update(type=str, metavar="A,B,...")
    else:
        kwargs.update(type=str)
    return kwargs


def _plain(doc: str) -> str:
    """A docstring as terminal text: no reST roles or literal markup."""
    return re.sub(r":\w+:`([^`]*)`", r"\1", doc).replace("``", "")


def _add_file_args(parser: argparse.ArgumentParser, cls: type) -> None:
    if parser.get_default("config_file") is not None or any(a.dest == "config_file" for a in parser._actions):
        return
    parser.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                        help=f"JSON file of {cls.__name__} fields (--set and flags override it)")
    parser.add_argument("--set", dest="config_set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"a {cls.__name__} field, e.g. --set seed=1; KEY.SUB sets a field of a "
                             "nested config (repeatable; flags override it)")


def read_config_file(path: str | None) -> dict[str, Any]:
    """The JSON object in ``--config FILE`` (empty without one)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--config {path}: cannot read JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a JSON object of config fields")
    return data


def merge(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[key] = value``; ``key`` ``"a.b"`` sets ``data["a"]["b"]`` (keeping the rest
    of ``data["a"]``), and a dict value is merged into a dict already there."""
    head, dot, rest = key.partition(".")
    if dot:
        inner = data.get(head)
        data[head] = inner = dict(inner) if isinstance(inner, Mapping) else {}
        merge(inner, rest, value)
    elif isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
        data[key] = {**data[key], **value}
    else:
        data[key] = value


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags (``prefix.field`` for nested ones); absent flags are absent."""
    given = vars(args)
    return {dest: given[dest] for dest in (getattr(args, "config_dests", None) or []) if dest in given}


def config_data(args: argparse.Namespace, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Config fields from ``base`` < ``--config FILE`` < ``--set KEY=VALUE`` < flags.

    The file and ``--set`` layers are read through the command config's
    :meth:`Config.upgrade` (an old ``config.json`` given as ``--config`` still works).
    """
    from codegym.plugins import parse_kv

    specs = getattr(args, "config_specs", None) or []
    main = next((cls for cls, prefix, _ in specs if not prefix), None)
    upgrade = main.upgrade if main is not None and issubclass(main, Config) else dict
    data = dict(base or {})
    for layer in (upgrade(read_config_file(getattr(args, "config_file", None))),
                  upgrade(parse_kv(getattr(args, "config_set", None))), flag_values(args)):  # fmt: skip
        for key, value in layer.items():
            merge(data, key, value)
    return data


def config_from_args(args: argparse.Namespace, cls: type[C], base: Mapping[str, Any] | None = None) -> C:
    """The validated config: :func:`config_data` through ``cls.from_dict``."""
    return cls.from_dict(config_data(args, base))


__all__ = [
    "Config",
    "add_config_args",
    "add_deprecated",
    "check_lora_fields",
    "coerce",
    "config_data",
    "config_from_args",
    "field_docs",
    "field_names",
    "flag_values",
    "lora_kwargs",
    "merge",
    "read_config_file",
]


# ------------------------------------------------- LoRA fields shared by trainer configs
def check_lora_fields(rank: int, alpha: float, dropout: float, targets: str) -> None:
    """Validate a config's LoRA fields (``lora_rank``, ``lora_alpha``, ``lora_dropout``,
    ``lora_targets``).

    Raises:
        ValueError: Naming the field, its value and the fix.
    """
    if rank < 0:
        raise ValueError(f"lora_rank must be >= 0 (0: no LoRA), got {rank}")
    if alpha < 0:
        raise ValueError(f"lora_alpha must be >= 0 (0: 2 * lora_rank), got {alpha}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"lora_dropout must be in [0, 1), got {dropout}")
    if rank and not targets.strip():
        raise ValueError("lora_targets is empty: use 'all-linear' or module names such as 'q_proj,v_proj'")


def lora_kwargs(rank: int, alpha: float, dropout: float, targets: str, seed: int) -> dict[str, Any] | None:
    """Keyword arguments of :func:`codegym.adapters.add_lora` from a config's LoRA fields, or None when
    ``rank`` is 0 (no LoRA); an ``alpha`` of 0 means ``2 * rank``."""
    if not rank:
        return None
    return {"rank": rank, "alpha": alpha or None, "dropout": dropout, "targets": targets, "seed": seed}
