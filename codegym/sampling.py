"""Batched line-by-line sampling from any causal LM, with the KV cache kept across lines.

:class:`LineSampler` holds ``B`` programs (slots) in one shared KV cache. Each call to
:meth:`LineSampler.next_lines` generates one line for every active slot, in lockstep: a slot
whose line has ended feeds masked padding until the others finish. Token ids follow the
tokenisation rule of :mod:`codegym.tokenization`: when the tokens generated for a line differ
from ``tok(line + "\\n")`` (e.g. a token that merged the newline with more text, or a line cut
at ``max_line_tokens``), the generated positions are masked out and the canonical ids are
appended instead, so the cache always equals a full encoding of the program.

With ``reencode=False`` (what RL uses) every line is kept *as drawn*, whatever its
tokenisation: PPO must train on the ids the policy sampled, or probability leaks into
tokenisations no gradient ever sees (see docs/architecture.md, "The tokenisation rule"). A
line cut at ``max_line_tokens`` gets a forced newline (:attr:`SlotState.line_forced` counts
such ids; they are not actions); a newline token that carries more text ends the line, the
env seeing the text up to the newline. Each slot's :class:`SlotState` holds each line's ids
as they are in the cache (``line_ids``) and whether they are the drawn ones (``line_exact``;
always, in this mode); :attr:`LineSampler.slots` holds one record per slot.

The cache itself is a :class:`codegym.kvcache.SlotKVCache` (shared with the vector env's
batched PRM scorer): an explicit 2-D attention mask and per-slot position ids, holes where
ids were masked out, and a rebuild from the valid ids when holes make up most of it.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import torch

from codegym.constants import SUBMIT
from codegym.kvcache import SlotKVCache
from codegym.lm import forward_cached, max_positions
from codegym.tokenization import encode_context, encode_lines, join_pieces


@dataclass
class SlotState:
    """One program of a :class:`LineSampler` batch: what was sampled for it and what the
    KV cache holds for it.

    Attributes:
        lines: The lines sampled so far (no newline).
        finished: The program has ended (EOS, or no room for another line).
        pending_submit: An EOS was drawn mid-line: the next call reports SUBMIT.
        line_exact: Per line: the cached ids are the ones the model drew (always with
            ``reencode=False``; with the rule, only when the draw was exactly
            ``tok(line + "\\n")``). Only such lines are on-policy actions for RL.
        line_ids: Per line: the ids the cache holds for the line (drawn or re-encoded).
        line_forced: Per line: how many trailing ids of ``line_ids`` were forced, not drawn
            (the newline after a line cut at ``max_line_tokens``, with ``reencode=False``).
        eos_exact: The EOS that ended the program follows the cached ids as drawn (False
            when drawn mid-line and the rule inserted a newline the model never sampled).
    """

    lines: list[str] = field(default_factory=list)
    finished: bool = False
    pending_submit: bool = False
    line_exact: list[bool] = field(default_factory=list)
    line_ids: list[list[int]] = field(default_factory=list)
    line_forced: list[int] = field(default_factory=list)
    eos_exact: bool = False


@dataclass
class _DrawnLine:
    """The tokens drawn for one slot's line in :meth:`LineSampler.next_lines`."""

    ids: list[int] = field(default_factory=list)  # drawn ids (EOS excluded)
    cols: list[int] = field(default_factory=list)  # cache columns they were fed at
    end: Literal["nl", "eos", "max"] | None = None  # why the line ended


def _per_slot(name: str, doc: str) -> Any:
    """A read-only property: field ``name`` of every :class:`SlotState`, in slot order (see
    the field's description there)."""
    get = operator.attrgetter(name)
    return property(lambda self: [get(s) for s in self.slots], doc=f"{doc} (:attr:`SlotState.{name}`)")


class LineSampler:
    """Samples programs line by line for a batch of contexts.

    Args:
        model: A causal LM (``AutoModelForCausalLM``), in eval mode.
        tokenizer: Its tokenizer (needs an EOS token; the pad token defaults to EOS).
        temperature: Softmax temperature (> 0) when not greedy.
        top_p: Nucleus sampling mass in (0, 1].
        greedy: Take the argmax token (temperature/top-p ignored).
        max_line_tokens: A line is cut after this many tokens.
        generator: The torch generator for sampling (pass one for reproducible draws).
        reencode: Re-encode every line by the rule (True, the default: the cache equals
            ``encode_program``), or keep every line as drawn (False, for RL).
        growing_cache: Keep the KV cache in buffers that double when full (True, the
            default) instead of concatenating the whole cache at every decoding step; the
            samples are the same.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        greedy: bool = False,
        max_line_tokens: int = 64,
        generator: torch.Generator | None = None,
        reencode: bool = True,
        growing_cache: bool = True,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_line_tokens < 1:
            raise ValueError(f"max_line_tokens must be >= 1, got {max_line_tokens}")
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token; it cannot end a program")
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.greedy = bool(greedy)
        self.max_line_tokens = int(max_line_tokens)
        self.generator = generator
        self.reencode = bool(reencode)
        self.growing_cache = bool(growing_cache)
        self.device = next(model.parameters()).device
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        self.max_positions = max_positions(model.config)
        vocab = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else len(tokenizer)
        nl = torch.zeros(vocab, dtype=torch.bool)
        for i in range(min(vocab, len(tokenizer))):
            if "\n" in tokenizer.decode([i]):
                nl[i] = True
        self._newline = nl
        self._newline_ids = encode_lines(tokenizer, [""])[0]  # tok("\n")
        self.batch_size = 0
        self._clear(0)

    # ------------------------------------------------------------------ state
    def _clear(self, batch: int) -> None:
        self.batch_size = batch
        #: The shared KV cache of the batch (mask, per-slot positions, holes, rebuilds).
        self.kv = SlotKVCache(
            partial(forward_cached, self.model), batch, pad_id=self.pad_id,
            max_positions=self.max_positions, device=self.device, growing=self.growing_cache,
        )  # fmt: skip
        self.last_logits: torch.Tensor | None = None  # (B, V)
        #: One record per slot: what was sampled and what the cache holds for it.
        self.slots: list[SlotState] = [SlotState() for _ in range(batch)]

    @property
    def cache(self) -> Any:
        """The model's KV cache (all slots)."""
        return self.kv.cache

    @property
    def mask(self) -> torch.Tensor:
        """``[B, S]``: 1 where a cached column is one of the slot's valid ids."""
        return self.kv.mask

    @property
    def next_pos(self) -> torch.Tensor:
        """``[B]``: the position of each slot's next id."""
        return self.kv.next_pos

    @property
    def valid_ids(self) -> list[list[int]]:
        """Per slot: the ids the cache holds, unmasked, in order (context and lines)."""
        return self.kv.valid_ids

    # Per-slot views of the slot records (read-only: each entry is the record's own value).
    lines = _per_slot("lines", "Per slot: the lines sampled so far.")
    finished = _per_slot("finished", "Per slot: the program has ended.")
    line_exact = _per_slot("line_exact", "Per slot and line: the cached ids are the drawn ones.")
    line_ids = _per_slot("line_ids", "Per slot and line: the ids the cache holds for the line.")
    line_forced = _per_slot("line_forced", "Per slot and line: trailing ids that were forced.")
    eos_exact = _per_slot("eos_exact", "Per slot: the ending EOS follows the ids as drawn.")

    def start(self, contexts: Sequence[str]) -> None:
        """Start ``len(contexts)`` new programs (drops any previous state)."""
        self._clear(len(contexts))
        if contexts:
            self._append([encode_context(self.tokenizer, c) for c in contexts])

    def set_slot(self, slot: int, context: str, lines: Sequence[str] = (), keep_flags: bool = False) -> None:
        """Replace slot ``slot`` by a program of ``context`` + ``lines`` (history masked out).

        With ``keep_flags`` the slot keeps its finished / pending-submit state (used when a
        caller edits the line just sampled, e.g. to fit an env's charset).
        """
        self._check_slot(slot)
        old = self.slots[slot]
        self.kv.clear_slot(slot)
        pieces = encode_lines(self.tokenizer, lines)
        ids = join_pieces(encode_context(self.tokenizer, context), pieces).input_ids
        self.slots[slot] = SlotState(
            lines=list(lines),
            line_exact=[False] * len(lines),
            line_ids=pieces,
            line_forced=[0] * len(lines),
            finished=old.finished if keep_flags else False,
            pending_submit=old.pending_submit if keep_flags else False,
        )
        new: list[list[int]] = [[] for _ in range(self.batch_size)]
        new[slot] = ids
        self._append(new)

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.batch_size:
            raise ValueError(f"slot must be in [0, {self.batch_size}), got {slot}")

    def _append(self, new_ids: list[list[int]], rebuild: bool = True) -> None:
        """Append per-slot id lists (ragged; empty lists feed nothing) to the cache."""
        self._take_logits(new_ids, self.kv.append(new_ids))
        if rebuild:
            self._maybe_rebuild()

    def _take_logits(self, new_ids: list[list[int]], out: Any) -> None:
        """Keep each fed slot's logits at its last new id in :attr:`last_logits`."""
        if out is None:
            return
        logits = out.logits  # (B, n, V)
        last = logits[:, -1, :].float().clone()  # (B, V)
        if self.last_logits is None:
            self.last_logits = torch.zeros_like(last)
        for b, x in enumerate(new_ids):
            if x:
                self.last_logits[b] = logits[b, len(x) - 1].float()

    def _maybe_rebuild(self) -> None:
        """Re-encode the valid ids when holes make up most of the cache (the slot records,
        lines and per-line ids included, stay as they are)."""
        if not self.kv.needs_rebuild():
            return
        self.last_logits = None
        self._take_logits(*self.kv.rebuild())

    # --------------------------------------------------------------- sampling
    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        """Next token per row of ``logits`` [B, V] -> [B]."""
        if self.greedy:
            return logits.argmax(dim=-1)
        logits = logits / self.temperature
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            sorted_p, idx = probs.sort(dim=-1, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < self.top_p  # always keeps the top token
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)

    def next_lines(self, active: Sequence[bool] | None = None) -> list[str | None]:
        """Generate one line for every active, unfinished slot.

        Returns:
            Per slot: the line (no newline), :data:`codegym.SUBMIT` when the model ended the
            program (EOS) or ran out of positions, or ``None`` for inactive/finished slots.
        """
        B = self.batch_size
        act = [bool(a) for a in (active if active is not None else [True] * B)]
        if len(act) != B:
            raise ValueError(f"active has {len(act)} entries for {B} slots")
        result: list[str | None] = [None] * B
        running = []
        for b in range(B):
            if not act[b] or self.slots[b].finished:
                continue
            if self._must_submit(b):
                self.slots[b].finished = True
                result[b] = SUBMIT
            else:
                running.append(b)
        if not running:
            return result
        drawn = self._draw_lines(running)
        fixes: list[list[int]] = [[] for _ in range(B)]
        for b in running:
            result[b], fixes[b] = self._end_line(b, drawn[b])
        if any(fixes):
            self._append(fixes)
        else:
            self._maybe_rebuild()
        return result

    def _must_submit(self, b: int) -> bool:
        """Slot ``b`` ends without sampling: an EOS was drawn mid-line at the last call
        (``eos_exact`` stays False), or no room is left for a line."""
        return self.slots[b].pending_submit or int(self.next_pos[b]) + 2 > self.max_positions

    def _draw_lines(self, running: list[int]) -> dict[int, _DrawnLine]:
        """Sample tokens for the ``running`` slots in lockstep until each line ends (a newline
        token, EOS, the token cap or the position limit), feeding each drawn token (and a
        masked pad for slots already done) to the cache."""
        assert self.last_logits is not None
        drawn = {b: _DrawnLine() for b in running}
        live = list(running)
        while live:
            tokens = self._sample(self.last_logits[live])  # [len(live)]
            feed: list[list[int]] = [[] for _ in range(self.batch_size)]
            for b, t in zip(live, tokens.tolist()):
                d = drawn[b]
                if t == self.eos_id:
                    d.end = "eos"
                    continue
                d.ids.append(t)
                feed[b] = [t]
                if self._newline[t]:
                    d.end = "nl"
                elif len(d.ids) >= self.max_line_tokens or int(self.next_pos[b]) + 2 >= self.max_positions:
                    d.end = "max"
            if any(feed):
                start_col = self.mask.shape[1]
                self._append_step(feed)
                for b, f in enumerate(feed):
                    if f:
                        drawn[b].cols.append(start_col)
            live = [b for b in live if drawn[b].end is None]
        return drawn

    def _end_line(self, b: int, d: _DrawnLine) -> tuple[str, list[int]]:
        """Record the line drawn for slot ``b``: returns what :meth:`next_lines` reports for
        it (the line, or SUBMIT for an EOS before any token) and the ids to append to the
        cache (a forced newline, or the line re-encoded by the rule; often none)."""
        slot = self.slots[b]
        if d.end == "eos" and not d.ids:
            slot.finished = True
            slot.eos_exact = True
            return SUBMIT, []
        line = self.tokenizer.decode(d.ids, skip_special_tokens=False).split("\n", 1)[0].rstrip("\r")
        if d.end == "eos":
            slot.pending_submit = True
        fix = self._keep_as_drawn(slot, d) if not self.reencode else self._apply_rule(b, line, d)
        slot.lines.append(line)
        return line, fix

    def _keep_as_drawn(self, slot: SlotState, d: _DrawnLine) -> list[int]:
        """RL mode: every drawn token stands; a cut line gets a forced newline (not drawn),
        which is returned for the cache."""
        forced = self._newline_ids if d.end == "max" else []
        slot.line_exact.append(True)
        slot.line_ids.append(list(d.ids) + forced)
        slot.line_forced.append(len(forced))
        if d.end == "eos":
            slot.eos_exact = True  # drawn right after the line's drawn tokens
        return list(forced)

    def _apply_rule(self, b: int, line: str, d: _DrawnLine) -> list[int]:
        """The tokenisation rule: keep the drawn ids when they are ``tok(line + "\\n")``,
        else mask them out of the cache and return the canonical ids to append."""
        slot = self.slots[b]
        canonical = encode_lines(self.tokenizer, [line])[0]
        keep = canonical == d.ids and d.end == "nl"
        slot.line_exact.append(keep)
        slot.line_ids.append(list(d.ids) if keep else canonical)
        slot.line_forced.append(0)
        if keep:
            return []
        self.kv.drop_last(b, d.cols)
        return canonical

    def _append_step(self, feed: list[list[int]]) -> None:
        """Feed one token per slot (empty = masked pad) and update ``last_logits``."""
        self._append(feed, rebuild=False)

    def sample_programs(self, contexts: Sequence[str], max_lines: int) -> list[list[str]]:
        """Sample complete programs (lists of lines) for ``contexts``.

        Each program ends at EOS or after ``max_lines`` lines.
        """
        self.start(contexts)
        for _ in range(max_lines):
            self.next_lines()
            if all(self.finished):
                break
        return [list(lines) for lines in self.lines]
