"""Label quality against an exact prefix oracle.

Monte-Carlo labels call a prefix correct when one of ``K`` sampled completions passes. A
weak completer rarely completes even a correct prefix, so its labels call correct lines
wrong. On suites with an exact answer to "can this prefix still be completed?" (``pipelines``:
:class:`codegym.envs.oracle.ReferenceCompletionScorer` completes the prefix with the
reference's remaining lines and runs the tests) the labels can be checked line by line:

* the **truth** of a code line is whether the prefix ending with it is correct: the response
  itself passes, or the oracle completes the prefix to a passing program;
* **precision** of "+1" is the share of lines labeled correct that are correct, **recall**
  the share of correct lines labeled correct (the positive class is "prefix correct");
* **first-error agreement** is the share of responses whose labeled first error (the first
  ``-1`` line, or none) is the true one;
* **executions per response** is what the labels cost in sandbox runs (the response's own run
  included).

:func:`judge_rows` compares label rows (``codegym label`` output, either format) with the
oracle; :class:`LabelQuality` sums the counts and gives the figures, per group (horizon,
completer, K, ...). ``bench/label_quality.py`` measures a grid of completers and K with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from codegym.labeling.core import is_code_line
from codegym.tasks.base import Task


class PrefixOracle(Protocol):
    """Anything that says whether a prefix can be completed to a passing program."""

    def completable(self, task: Task, lines: list[str]) -> bool:
        """Whether ``lines`` (after the task's code prefix) can still be completed."""
        ...


def true_labels(task: Task, lines: Sequence[str], passed: bool, oracle: PrefixOracle) -> list[int]:
    """The exact labels of a response: per line ``+1`` when the prefix ending with it is
    correct, ``-1`` when not, ``0`` for comment and blank lines.

    A passing response is correct at every prefix (it completes itself). Otherwise each
    prefix ending with a code line is asked of ``oracle`` (one execution each, cached by the
    oracle when it caches).
    """
    out: list[int] = []
    for i, line in enumerate(lines):
        if not is_code_line(line):
            out.append(0)
        elif passed:
            out.append(1)
        else:
            out.append(1 if oracle.completable(task, list(lines[: i + 1])) else -1)
    return out


def first_error(labels: Sequence[int]) -> int | None:
    """Index of the first ``-1`` label, or ``None``."""
    return next((i for i, lab in enumerate(labels) if lab == -1), None)


@dataclass
class LabelQuality:
    """Counts of label-vs-truth agreement over a set of responses (add them with ``+``).

    Attributes:
        responses: Responses compared.
        true_pos: Code lines labeled ``+1`` whose prefix is correct.
        false_pos: Labeled ``+1``, prefix wrong.
        false_neg: Labeled ``-1``, prefix correct.
        true_neg: Labeled ``-1``, prefix wrong.
        first_error_agree: Responses whose first ``-1`` line (or none) is the true one.
        executions: Sandbox executions the labels cost (the responses' own runs included).
        oracle_positive_responses: Responses with at least one truly correct code line.
    """

    responses: int = 0
    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    true_neg: int = 0
    first_error_agree: int = 0
    executions: float = 0.0
    oracle_positive_responses: int = 0

    def __add__(self, other: LabelQuality) -> LabelQuality:
        return LabelQuality(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def precision(self) -> float:
        """P(prefix correct | labeled +1) (NaN when nothing is labeled +1)."""
        n = self.true_pos + self.false_pos
        return self.true_pos / n if n else float("nan")

    @property
    def recall(self) -> float:
        """P(labeled +1 | prefix correct) (NaN when no prefix is correct)."""
        n = self.true_pos + self.false_neg
        return self.true_pos / n if n else float("nan")

    @property
    def accuracy(self) -> float:
        """Share of code lines whose label is the truth."""
        n = self.true_pos + self.false_pos + self.false_neg + self.true_neg
        return (self.true_pos + self.true_neg) / n if n else float("nan")

    @property
    def positive_rate(self) -> float:
        """Share of code lines whose prefix is truly correct."""
        n = self.true_pos + self.false_pos + self.false_neg + self.true_neg
        return (self.true_pos + self.false_neg) / n if n else float("nan")

    @property
    def first_error_agreement(self) -> float:
        """Share of responses whose labeled first error is the true one."""
        return self.first_error_agree / self.responses if self.responses else float("nan")

    @property
    def executions_per_response(self) -> float:
        """Mean sandbox executions per response."""
        return self.executions / self.responses if self.responses else float("nan")

    def summary(self) -> dict[str, float]:
        """The figures as a JSON-ready dict (counts included)."""
        return {
            "responses": self.responses,
            "precision": self.precision,
            "recall": self.recall,
            "accuracy": self.accuracy,
            "positive_rate": self.positive_rate,
            "first_error_agreement": self.first_error_agreement,
            "executions_per_response": self.executions_per_response,
            "true_pos": self.true_pos,
            "false_pos": self.false_pos,
            "false_neg": self.false_neg,
            "true_neg": self.true_neg,
        }


def judge_response(labels: Sequence[int], truth: Sequence[int], executions: float = 0.0) -> LabelQuality:
    """Compare one response's labels with its true labels (see :func:`true_labels`)."""
    if len(labels) != len(truth):
        raise ValueError(f"labels ({len(labels)}) and truth ({len(truth)}) must have one entry per line")
    q = LabelQuality(responses=1, executions=float(executions))
    for lab, tru in zip(labels, truth):
        if tru == 0:
            continue
        if lab == 1:
            q.true_pos += tru == 1
            q.false_pos += tru == -1
        else:
            q.false_neg += tru == 1
            q.true_neg += tru == -1
    q.first_error_agree = int(first_error(labels) == first_error(truth))
    q.oracle_positive_responses = int(1 in truth)
    return q


def judge_rows(
    rows: Iterable[dict[str, Any]],
    task_of: Callable[[dict[str, Any]], Task],
    oracle: PrefixOracle,
    group: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[Any, LabelQuality]:
    """Label quality of label rows against ``oracle``, summed per group.

    Args:
        rows: Label rows (``codegym label`` output in codegym or TRL format, or
            :meth:`codegym.labeling.LabeledResponse.to_row` dicts).
        task_of: The task a row answers (e.g. ``lambda r: tasks[r["task_id"]]``).
        oracle: Exact prefix correctness (e.g. a
            :class:`~codegym.envs.oracle.ReferenceCompletionScorer`).
        group: Key of a row's group (default: one group, ``"all"``), e.g.
            ``lambda r: r["horizon"]``.

    Returns:
        ``{group: LabelQuality}``.
    """
    from codegym.labeling.pipeline import row_lines

    out: dict[Any, LabelQuality] = {}
    for row in rows:
        lines, labels = row_lines(row)
        truth = true_labels(task_of(row), lines, bool(row["passed"]), oracle)
        key = group(row) if group is not None else "all"
        out[key] = out.get(key, LabelQuality()) + judge_response(labels, truth, row["n_executions"])
    return out


def label_responses(
    responses: Sequence[tuple[Task, Sequence[str]]], labeler: Any, seed: int = 0
) -> list[dict[str, Any]]:
    """Label fixed responses with ``labeler`` (a :class:`codegym.labeling.Labeler`): response
    ``i`` is labeled with the generator ``default_rng([seed, i])``, and its row carries
    ``response_index`` and ``horizon`` (the task's steps). Responses from one policy can so be
    labeled by several completers and settings, each row comparable with the same truth."""
    import numpy as np

    from codegym.evaluation import task_horizon

    rows = []
    for i, (task, lines) in enumerate(responses):
        res = labeler.label(task, list(lines), np.random.default_rng([seed, i]))
        rows.append(res.to_row(response_index=i, horizon=task_horizon(task)))
    return rows


__all__ = [
    "LabelQuality", "PrefixOracle", "first_error", "judge_response", "judge_rows", "label_responses",
    "true_labels",
]
