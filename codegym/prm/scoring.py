"""Scoring programs with a PRM: batched full scoring, an incremental (KV-cached) scorer for
one program, and a batched incremental scorer for the programs of a vector env.

Both follow the tokenisation rule of :mod:`codegym.tokenization` (context ids, then one
piece per line, its newline at the end, or at the start for tokenizers that merge a newline
with the next line's indentation; a line's score is read at the last token of its piece), so
the score of line ``m`` depends only on the context and lines ``1..m`` and the incremental
scorer equals full re-encoding up to float rounding, for every tokenizer family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from codegym.kvcache import SlotKVCache
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


class BatchedPRMScorer:
    """A :class:`codegym.envs.scoring.BatchedLineScorer` backed by a PRM: the lines of every
    slot in **one** forward per call, over one KV cache shared by the slots.

    The cache is a :class:`codegym.kvcache.SlotKVCache` (2-D attention mask, per-slot
    position ids, holes, rebuilds), so each slot's scores equal an :class:`IncrementalScorer`
    running that slot's program alone, up to float rounding. :meth:`reset` only records the
    slot's context ids; they are fed, with the slot's history masked out, in the same forward
    as its first line (a program that is submitted empty costs no forward).

    Args:
        prm: The PRM (put in eval mode).
        num_slots: Programs scored side by side.
        empty_score: Φ of the empty program returned by :meth:`reset` (as
            :class:`IncrementalScorer`).
        growing_cache: Keep the cache in doubling buffers (:func:`codegym.kvcache.growing_cache`).
    """

    def __init__(self, prm: ProcessRewardModel, num_slots: int, empty_score: float = 0.0, growing_cache: bool = True) -> None:
        if not isinstance(num_slots, int) or num_slots < 1:
            raise ValueError(f"num_slots must be an int >= 1, got {num_slots!r}")
        self.prm = prm.eval()
        self.num_slots = num_slots
        self.empty_score = float(empty_score)
        tok = prm.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.kv = SlotKVCache(
            self._forward, num_slots, pad_id=int(pad), max_positions=_max_positions(prm),
            device=next(prm.parameters()).device, growing=growing_cache,
            overflow_hint="; lower max_lines or use a PRM with more positions",
        )  # fmt: skip
        self._pending: list[list[int] | None] = [None] * num_slots  # context ids not yet fed
        self._started = [False] * num_slots

    def _forward(self, cache: Any, **inputs: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The PRM's raw outputs ``[B, n]`` continuing from ``cache``."""
        ids = inputs.pop("input_ids")
        return self.prm(ids, cache=cache, use_cache=True, **inputs)

    def reset(self, tasks: Mapping[int, Task]) -> dict[int, float]:
        """Start a program of ``tasks[b]`` in each slot ``b`` given."""
        return {b: self.reset_context(b, task_context(task)) for b, task in tasks.items()}

    def reset_context(self, slot: int, context: str) -> float:
        """Start a program in ``slot`` from a raw context string; returns Φ of the empty program."""
        if not 0 <= slot < self.num_slots:
            raise ValueError(f"slot must be in [0, {self.num_slots}), got {slot}")
        self._pending[slot] = encode_context(self.prm.tokenizer, context)
        self._started[slot] = True
        return self.empty_score

    def select_slots(self, index: Sequence[int]) -> None:
        """Make slot ``i`` a copy of slot ``index[i]`` (cache rows and pending context): the
        scorer then holds ``len(index)`` slots (a beam search's reorder)."""
        rows = [int(i) for i in index]
        self.kv.select(rows)  # checks the index
        self._pending = [None if (ids := self._pending[i]) is None else list(ids) for i in rows]
        self._started = [self._started[i] for i in rows]
        self.num_slots = len(rows)

    def overflows(self, lines: Sequence[str | None]) -> list[bool]:
        """Per slot: appending ``lines[b]`` would exceed the PRM's positions (``score_lines``
        would refuse the whole call)."""
        if len(lines) != self.num_slots:
            raise ValueError(f"lines needs {self.num_slots} entries, got {len(lines)}")
        feeds, restart = self._feeds(lines)
        limit = self.kv.max_positions
        return [bool(f) and (0 if b in restart else int(self.kv.next_pos[b])) + len(f) > limit
                for b, f in enumerate(feeds)]  # fmt: skip

    @torch.no_grad()
    def score_lines(self, lines: Sequence[str | None], scored: Sequence[bool] | None = None) -> list[float | None]:
        """Append ``lines[b]`` to slot ``b`` (``None``: nothing) in one forward; the score at
        each line's last token where ``scored[b]`` (default: every line), else ``None``.

        Raises:
            ValueError: Wrong lengths, a slot never reset, or a program longer than the PRM's
                positions (nothing is fed then).
        """
        scored = [True] * self.num_slots if scored is None else list(scored)
        if len(lines) != self.num_slots or len(scored) != self.num_slots:
            raise ValueError(f"lines and scored need {self.num_slots} entries, got {len(lines)} and {len(scored)}")
        feeds, restart = self._feeds(lines)
        self.kv.check_room(feeds, fresh=restart)
        for b in restart:
            self.kv.clear_slot(b)
            self._pending[b] = None
        raw = self.kv.append(feeds)  # (B, n)
        out: list[float | None] = [None] * self.num_slots
        if raw is not None:
            scores = self.prm.to_score(raw.float())  # (B, n)
            for b, feed in enumerate(feeds):
                if feed and lines[b] is not None and scored[b]:
                    out[b] = float(scores[b, len(feed) - 1])
        if self.kv.needs_rebuild():
            self.kv.rebuild()
        return out

    def _feeds(self, lines: Sequence[str | None]) -> tuple[list[list[int]], list[int]]:
        """Per slot, the ids to feed (pending context + the line's ids), and the slots that
        start a new program with them."""
        written = [b for b, line in enumerate(lines) if line is not None]
        for b in written:
            if not self._started[b]:
                raise ValueError(f"slot {b}: call reset() before scoring its lines")
        pieces = encode_lines(self.prm.tokenizer, [lines[b] for b in written])
        feeds: list[list[int]] = [[] for _ in range(self.num_slots)]
        restart: list[int] = []
        for b, piece in zip(written, pieces):
            pending = self._pending[b]
            if pending is not None:
                restart.append(b)
            feeds[b] = (pending or []) + piece
        return feeds, restart


def load_line_scorer(path: str | Path, device: str = "cpu") -> IncrementalScorer:
    """The env's entry point: an incremental scorer for the PRM checkpoint at ``path``."""
    return IncrementalScorer(ProcessRewardModel.from_pretrained(path, device=device))


def load_line_scorers(path: str | Path, n: int, device: str = "cpu") -> list[IncrementalScorer]:
    """``n`` incremental scorers sharing one PRM (one per env of a batch)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    prm = ProcessRewardModel.from_pretrained(path, device=device)
    return [IncrementalScorer(prm) for _ in range(n)]
