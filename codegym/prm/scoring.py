"""Scoring programs with a PRM: batched full scoring and an incremental (KV-cached) scorer.

Both follow the tokenisation rule of :mod:`codegym.tokenization` (context ids, then
``tok(line + "\\n")`` per line; a line's score is read at its last token), so the score of
line ``m`` depends only on the context and lines ``1..m`` and the incremental scorer equals
full re-encoding up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from codegym.lm import max_positions
from codegym.prm.model import ProcessRewardModel
from codegym.tokenization import encode_context, encode_lines, encode_program, task_context

if TYPE_CHECKING:
    from codegym.tasks.base import Task


def _max_positions(prm: ProcessRewardModel) -> int:
    return max_positions(prm.backbone.config)


@torch.no_grad()
def score_programs(
    prm: ProcessRewardModel,
    contexts: Sequence[str],
    programs: Sequence[Sequence[str]],
    batch_size: int = 16,
) -> list[np.ndarray]:
    """Score every line of every program by full (re-)encoding, in right-padded batches.

    Args:
        prm: The PRM.
        contexts: Per program, the context text (:func:`codegym.tokenization.task_context`).
        programs: Per program, its lines (no newlines).
        batch_size: Programs per forward pass.

    Returns:
        Per program, a float array of its line scores (label scale, see
        :meth:`ProcessRewardModel.to_score`).
    """
    if len(contexts) != len(programs):
        raise ValueError(f"got {len(contexts)} contexts for {len(programs)} programs")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(prm.parameters()).device
    limit = _max_positions(prm)
    encoded = [encode_program(prm.tokenizer, c, p) for c, p in zip(contexts, programs)]
    for i, e in enumerate(encoded):
        if len(e.input_ids) > limit:
            raise ValueError(
                f"program {i} has {len(e.input_ids)} tokens, more than the PRM's {limit} positions"
            )
    pad = prm.tokenizer.pad_token_id if prm.tokenizer.pad_token_id is not None else 0
    results: list[np.ndarray] = []
    for lo in range(0, len(encoded), batch_size):
        chunk = encoded[lo : lo + batch_size]
        width = max(len(e.input_ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for b, e in enumerate(chunk):
            ids[b, : len(e.input_ids)] = torch.tensor(e.input_ids)
            mask[b, : len(e.input_ids)] = 1
        raw, _ = prm(ids.to(device), attention_mask=mask.to(device))  # [b, T]
        scores = prm.to_score(raw.float()).cpu()
        for b, e in enumerate(chunk):
            results.append(scores[b, e.line_ends].numpy().astype(np.float64))
    return results


class IncrementalScorer:
    """A :class:`codegym.envs.scoring.LineScorer` backed by a PRM, with a KV cache per episode.

    :meth:`reset` encodes the task's context once; each :meth:`score` feeds only the new
    line's tokens through the backbone (O(new line), not O(prefix)) and returns the score at
    its last token. :meth:`append` extends the cache without scoring (the env calls it for
    comment and blank lines, which are neutral). Several scorers may share one model.

    Args:
        prm: The PRM (put in eval mode).
        empty_score: Φ of the empty program returned by :meth:`reset` (the PRM is never
            trained at the context's end, so it is a constant, 0.0 by default).
    """

    def __init__(self, prm: ProcessRewardModel, empty_score: float = 0.0) -> None:
        self.prm = prm.eval()
        self.empty_score = float(empty_score)
        self.device = next(prm.parameters()).device
        self.max_positions = _max_positions(prm)
        self._cache: Any = None
        self._length = 0

    def reset(self, task: Task) -> float:
        """Start an episode for ``task``; returns Φ of the empty program."""
        return self.reset_context(task_context(task))

    @torch.no_grad()
    def reset_context(self, context: str) -> float:
        """Start an episode from a raw context string."""
        ids = encode_context(self.prm.tokenizer, context)
        self._cache = None
        self._length = 0
        self._feed(ids)
        return self.empty_score

    def _feed(self, ids: list[int]) -> torch.Tensor:
        if self._length + len(ids) > self.max_positions:
            raise ValueError(
                f"the program reached {self._length + len(ids)} tokens, more than the PRM's "
                f"{self.max_positions} positions; lower max_lines or use a PRM with more positions"
            )
        x = torch.tensor([ids], dtype=torch.long, device=self.device)  # [1, n]
        if self._cache is None:
            from transformers import DynamicCache

            self._cache = DynamicCache()
        raw, self._cache = self.prm(x, cache=self._cache, use_cache=True)  # raw [1, n]
        self._length += len(ids)
        return raw[0, -1]

    @torch.no_grad()
    def score(self, line: str) -> float:
        """Append ``line`` and return the PRM score at its last token."""
        if self._cache is None:
            raise ValueError("call reset(task) before score(line)")
        raw = self._feed(encode_lines(self.prm.tokenizer, [line])[0])
        return float(self.prm.to_score(raw.float()))

    @torch.no_grad()
    def append(self, line: str) -> None:
        """Append ``line`` without scoring it (neutral lines)."""
        if self._cache is None:
            raise ValueError("call reset(task) before append(line)")
        self._feed(encode_lines(self.prm.tokenizer, [line])[0])


class FullRescoringScorer:
    """The baseline :class:`~codegym.envs.scoring.LineScorer`: re-encodes the whole prefix
    at every step (O(prefix) per line). Same scores as :class:`IncrementalScorer`."""

    def __init__(self, prm: ProcessRewardModel, empty_score: float = 0.0) -> None:
        self.prm = prm.eval()
        self.empty_score = float(empty_score)
        self._context = ""
        self._lines: list[str] = []

    def reset(self, task: Task) -> float:
        """Start an episode for ``task``."""
        self._context, self._lines = task_context(task), []
        return self.empty_score

    def score(self, line: str) -> float:
        """Append ``line`` and score the whole program again."""
        self._lines.append(line)
        return float(score_programs(self.prm, [self._context], [self._lines])[0][-1])

    def append(self, line: str) -> None:
        """Append ``line`` without scoring it."""
        self._lines.append(line)


def load_line_scorer(path: str | Path, device: str = "cpu") -> IncrementalScorer:
    """The env's entry point: an incremental scorer for the PRM checkpoint at ``path``."""
    return IncrementalScorer(ProcessRewardModel.from_pretrained(path, device=device))


def load_line_scorers(path: str | Path, n: int, device: str = "cpu") -> list[IncrementalScorer]:
    """``n`` incremental scorers sharing one PRM (one per env of a batch)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    prm = ProcessRewardModel.from_pretrained(path, device=device)
    return [IncrementalScorer(prm) for _ in range(n)]
