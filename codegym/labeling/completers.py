"""Completers: samplers that continue a partial program.

* :class:`ReferenceCompleter` -- replays the task's reference solution from the prefix's
  position, corrupting lines with a seeded generator (fast; for tests and dry runs).
* :class:`HFCompleter` -- any Hugging Face causal LM policy directory (the default in
  ``codegym label``), loaded lazily, sampling with the tokenisation rule of
  :mod:`codegym.tokenization`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codegym.tasks.base import Task


class ReferenceCompleter:
    """Continues a prefix with the reference solution, corrupting each line with probability
    ``rate``.

    The continuation of a prefix of ``m`` lines is ``solution_lines[m:]`` (positional). A
    corrupted line is dropped, repeated, or replaced by another line of the solution -- the
    step-tracking mistakes small policies make. With ``rate=0`` a correct prefix always
    completes to a passing program. Used as the response sampler too (prefix ``[]``).

    Args:
        rate: Per-line corruption probability in ``[0, 1]``.
    """

    def __init__(self, rate: float = 0.15):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"corruption rate must be in [0, 1], got {rate}")
        self.rate = float(rate)

    def __repr__(self) -> str:
        return f"ReferenceCompleter(rate={self.rate})"

    def _corrupt(self, ref: list[str], tail: list[str], rng: np.random.Generator) -> list[str]:
        out: list[str] = []
        for line in tail:
            if rng.random() >= self.rate:
                out.append(line)
                continue
            op = int(rng.integers(3))
            if op == 0:  # drop
                continue
            if op == 1:  # repeat
                out.extend([line, line])
            else:  # replace by another line of the solution
                out.append(ref[int(rng.integers(len(ref)))])
        return out

    def complete(
        self, task: Task, prefix: Sequence[str], n: int, rng: np.random.Generator
    ) -> list[list[str]]:
        """``n`` corrupted continuations of ``prefix`` (see the class docstring)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        ref = task.solution_lines
        tail = ref[len(prefix) :]
        return [self._corrupt(ref, tail, rng) for _ in range(n)]


class HFCompleter:
    """Samples completions from a Hugging Face causal LM policy directory.

    The model and tokenizer are loaded on first use. Ids follow the tokenisation rule of
    :mod:`codegym.tokenization` (the context, read through the chat template for an instruct
    model, then the prefix's lines); all ``n`` samples of a call share the prefix, so they run
    as one batch without padding, with the KV cache. Drawn ids are cut into lines as
    :class:`codegym.sampling.LineSampler` cuts them (:class:`codegym.tokenization.LineSplitter`:
    any token holding a newline ends a line, carried indentation and blank lines kept). A
    sample ends at any EOS id or other special token (the submit action), after ``max_lines``
    lines in total, or after ``max_new_tokens`` tokens. Sampling uses a ``torch.Generator``
    seeded from the caller's ``rng`` (no global RNG state).

    Args:
        policy: Checkpoint directory (``save_pretrained`` of a causal LM and its tokenizer).
        temperature: Softmax temperature (> 0).
        top_p: Nucleus sampling mass in ``(0, 1]`` (1: the full distribution).
        max_new_tokens: Token budget per completion.
        max_lines: Longest program (prefix + completion) in lines.
        device: Torch device (checked at once: a CUDA request on a machine without CUDA is
            refused naming that cause).
        threads: ``torch.set_num_threads`` value at load time (``None``: leave as is).
        chat_template: Read tasks through the tokenizer's chat template when it has one.
        dtype: Precision the model's weights are loaded in: ``"fp32"``, ``"bf16"`` or
            ``"fp16"`` (``"auto"``: the checkpoint's own).
    """

    def __init__(
        self,
        policy: str | Path,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        max_lines: int = 64,
        device: str = "cpu",
        threads: int | None = None,
        chat_template: bool = True,
        dtype: str = "fp32",
    ):
        from codegym.lm import check_model_dir
        from codegym.precision import check_device, resolve_dtype

        check_device(device)
        resolve_dtype(dtype)
        self.policy = check_model_dir(policy, "policy")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_new_tokens < 1 or max_lines < 1:
            raise ValueError("max_new_tokens and max_lines must be >= 1")
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_new_tokens = int(max_new_tokens)
        self.max_lines = int(max_lines)
        self.device = device
        self.threads = threads
        self.chat_template = bool(chat_template)
        self.dtype = dtype
        self._model: Any = None
        self._tok: Any = None
        self._end_ids: frozenset[int] = frozenset()

    def __repr__(self) -> str:
        return f"HFCompleter({str(self.policy)!r}, temperature={self.temperature})"

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        from codegym.lm import eos_token_ids, load_causal_lm
        from codegym.tokenization import line_rules

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar inside the rich progress
        self._model, self._tok = load_causal_lm(self.policy, self.device, dtype=self.dtype)
        # a sample ends at every EOS id (tokenizer and generation config) and special token
        self._end_ids = frozenset(eos_token_ids(self._tok, self._model)) | line_rules(self._tok).special_ids

    def complete(
        self, task: Task, prefix: Sequence[str], n: int, rng: np.random.Generator
    ) -> list[list[str]]:
        """Sample ``n`` completions of ``prefix`` (lines after it, EOS excluded)."""
        import torch

        from codegym.lm import max_positions
        from codegym.tokenization import encode_program, policy_context

        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n == 0:
            return []
        self._load()
        context = policy_context(self._tok, task.prompt, task.code_prefix, chat=self.chat_template)
        ids = encode_program(self._tok, context, list(prefix)).input_ids
        limit = max_positions(self._model.config, default=10**9)
        budget = min(self.max_new_tokens, limit - len(ids))
        lines_left = self.max_lines - len(prefix)
        if budget <= 0 or lines_left <= 0:
            return [[] for _ in range(n)]
        gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(0, 2**63 - 1)))
        drawn = _Completions(n, self._tok, self._end_ids, lines_left)
        self._sample(ids, drawn, budget, gen)
        return drawn.finish()

    def _sample(self, ids: list[int], drawn: _Completions, budget: int, gen: Any) -> None:
        """Draw up to ``budget`` tokens for every completion of ``drawn`` in one batch (a KV
        cache kept across steps), until all have ended."""
        import torch

        from codegym.lm import forward_last

        n = len(drawn.lines)
        input_ids = torch.tensor([ids] * n, dtype=torch.long, device=self.device)  # [n, T]
        past: Any = None
        seen = 0  # positions already in the cache
        with torch.no_grad():
            for _ in range(budget):
                seen += input_ids.shape[1]
                mask = torch.ones(n, seen, dtype=torch.long, device=self.device)  # [n, S]
                last = torch.full((n,), input_ids.shape[1] - 1, dtype=torch.long, device=self.device)  # [n]
                logits, past = forward_last(self._model, past, last, input_ids=input_ids, attention_mask=mask)
                nxt = self._draw(logits, gen)  # [n]
                if drawn.add(nxt.tolist()):
                    break
                input_ids = nxt.unsqueeze(1).to(self.device)  # [n, 1]

    def _draw(self, last_logits: Any, gen: Any) -> Any:
        """One token per row of ``last_logits`` [n, V] (temperature, then top-p) -> [n]."""
        import torch

        logits = last_logits.float().cpu() / self.temperature  # [n, V]
        probs = torch.softmax(logits, dim=-1)  # [n, V]
        if self.top_p < 1.0:
            sorted_p, idx = probs.sort(dim=-1, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < self.top_p  # keeps the top token
            probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p * keep)
        return torch.multinomial(probs, 1, generator=gen).squeeze(1)  # [n]


class _Completions:
    """The lines of ``n`` completions being sampled; each ends at an end id (not kept) or
    after ``lines`` lines."""

    def __init__(self, n: int, tokenizer: Any, end_ids: frozenset[int], lines: int) -> None:
        from codegym.tokenization import LineSplitter

        self.lines: list[list[str]] = [[] for _ in range(n)]
        self.done = [False] * n
        self._splitters = [LineSplitter(tokenizer) for _ in range(n)]
        self._end_ids, self._lines = end_ids, lines

    def add(self, tokens: list[int]) -> bool:
        """Append one drawn token per completion (ignored for ended ones); True when all
        have ended."""
        for i, t in enumerate(tokens):
            if self.done[i]:
                continue
            if t in self._end_ids:
                self._close(i)
                continue
            self.lines[i].extend(line.text for line in self._splitters[i].push(t))
            if len(self.lines[i]) >= self._lines:
                self.done[i] = True
        return all(self.done)

    def _close(self, i: int) -> None:
        """End completion ``i``: its open line (text without a newline) is its last line."""
        line, _ = self._splitters[i].close()
        if line is not None:
            self.lines[i].append(line.text)
        self.done[i] = True

    def finish(self) -> list[list[str]]:
        """Each completion's lines (at most ``lines``; an unfinished one's open line last),
        with ``"\r"`` read as a line break as Python reads it."""
        for i in range(len(self.lines)):
            if not self.done[i]:
                self._close(i)
        return [_split_returns(lines)[: self._lines] for lines in self.lines]


def _split_returns(lines: list[str]) -> list[str]:
    """Lines with ``"\r"`` line breaks split (a ``"\r"`` before the newline is dropped)."""
    out: list[str] = []
    for line in lines:
        out.extend(line.removesuffix("\r").split("\r"))
    return out


def make_completer(name: str, policy: str | Path | None = None, **kwargs: Any) -> Any:
    """Build a completer by name.

    Args:
        name: ``"hf"`` (a causal LM policy dir; needs ``policy``), ``"reference"`` (the
            reference solution with seeded corruption, ``rate=``), or ``"module:Class"`` (any
            class with ``complete(task, prefix, n, rng)``, built with ``policy`` when given).
        policy: Checkpoint directory for ``"hf"`` (and plugins that take one).
        **kwargs: Constructor arguments.
    """
    if name == "reference":
        return ReferenceCompleter(**kwargs)
    if name == "hf":
        if policy is None:
            raise ValueError("completer 'hf' needs --policy DIR (a save_pretrained causal LM)")
        return HFCompleter(policy, **kwargs)
    if ":" in name:
        import importlib

        mod_name, _, cls_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load completer {name!r}: {e}") from e
        obj = cls(policy, **kwargs) if policy is not None else cls(**kwargs)
        if not hasattr(obj, "complete"):
            raise ValueError(f"completer {name!r} has no complete(task, prefix, n, rng) method")
        return obj
    raise ValueError(f"unknown completer {name!r}: use 'hf', 'reference' or 'module:Class'")
