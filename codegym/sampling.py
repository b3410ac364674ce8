"""Batched line-by-line sampling from any causal LM, with the KV cache kept across lines.

:class:`LineSampler` holds ``B`` programs (slots) in one shared KV cache. Each call to
:meth:`LineSampler.next_lines` generates one line for every active slot, in lockstep: a slot
whose line has ended feeds masked padding until the others finish. Drawn ids are cut into
lines by :class:`codegym.tokenization.LineSplitter`: a line ends on any token that holds a
newline, whatever else the token holds: what follows the newline (the next line's
indentation, with StarCoder-style tokenizers) starts the next line, and a token holding two
newlines (``"\n\n"``, with Qwen2/Llama-3-style tokenizers) also ends a blank line, which the
next call returns without drawing. The program ends on any EOS id (the tokenizer's and the
generation config's: instruct models have two) and on any other special token, which never
enters a line.

Token ids follow the tokenisation rule of :mod:`codegym.tokenization`: when the ids of a line
differ from the rule's (a token that merged the newline with more text, a line cut at
``max_line_tokens``), the drawn positions are masked out and the rule's ids are appended
instead, so the cache always equals a full encoding of the program.

With ``reencode=False`` (what RL uses) every line is kept *as drawn*, whatever its
tokenisation: PPO must train on the ids the policy sampled, or probability leaks into
tokenisations no gradient ever sees (see docs/architecture.md, "The tokenisation rule"). The
pieces then decode to exactly the lines the env receives. A line cut at ``max_line_tokens``
gets a forced newline in the ``newline_last`` layout (:attr:`SlotState.line_forced` counts
such ids; they are not actions; in ``newline_first`` no newline is needed). The one line that
is re-encoded in this mode is one whose text the model wrote right after a line end that
lacked its newline (``newline_first``: the context's end, a cut line); it is not exact. Each
slot's :class:`SlotState` holds each line's ids as they are in the cache (``line_ids``),
whether they are the drawn ones (``line_exact``), and the ids drawn between the last line and
EOS (``tail_ids``: the program's final newline, ``newline_first``).

The cache itself is a :class:`codegym.kvcache.SlotKVCache` (shared with the vector env's
batched PRM scorer): an explicit 2-D attention mask and per-slot position ids, holes where
ids were masked out, and a rebuild from the valid ids when holes make up most of it. Logits
are computed for one position per slot and forward (``logits_to_keep``), never for every
position of a fed prompt.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch

from codegym.constants import SUBMIT
from codegym.kvcache import SlotKVCache
from codegym.lm import eos_token_ids, forward_last, max_positions
from codegym.tokenization import (
    LineSplitter,
    SplitLine,
    encode_context,
    encode_lines,
    join_pieces,
    line_rules,
)


class _Line(NamedTuple):
    """A finished line as the cache holds it (queued until :meth:`LineSampler.next_lines`
    returns it)."""

    text: str
    ids: list[int]
    exact: bool
    forced: int


@dataclass
class SlotState:
    """One program of a :class:`LineSampler` batch: what was sampled for it and what the
    KV cache holds for it.

    Attributes:
        lines: The lines returned so far (no newline).
        finished: The program has ended (EOS, or no room for another line).
        pending_submit: An EOS was drawn mid-line: the next call reports SUBMIT.
        line_exact: Per line: the cached ids are the ones the model drew (with the rule,
            only when the draw was exactly the rule's ids). Only such lines are on-policy
            actions for RL.
        line_ids: Per line: the ids the cache holds for the line (drawn or re-encoded; empty
            for a blank line whose newline sat in the previous line's last token).
        line_forced: Per line: how many trailing ids of ``line_ids`` were forced, not drawn
            (the newline after a line cut at ``max_line_tokens``, with ``reencode=False``).
        eos_exact: The EOS that ended the program follows the cached ids as drawn (False
            when drawn mid-line and the rule re-encoded the line).
        tail_ids: Ids drawn after the last line and before the EOS (the program's final
            newline in the ``newline_first`` layout), as drawn.
        end_id: The id that ended the program (an EOS id or another special token); None
            while it runs or when the sampler closed it for lack of room.
        splitter: Cuts the slot's drawn ids into lines.
        queue: Lines finished by the last drawn token but not returned yet (blank lines).
    """

    lines: list[str] = field(default_factory=list)
    finished: bool = False
    pending_submit: bool = False
    line_exact: list[bool] = field(default_factory=list)
    line_ids: list[list[int]] = field(default_factory=list)
    line_forced: list[int] = field(default_factory=list)
    eos_exact: bool = False
    tail_ids: list[int] = field(default_factory=list)
    end_id: int | None = None
    splitter: LineSplitter | None = field(default=None, repr=False)
    queue: list[_Line] = field(default_factory=list, repr=False)

    def record(self, line: _Line) -> str:
        """Append a finished line to the slot's records; returns its text."""
        self.lines.append(line.text)
        self.line_ids.append(list(line.ids))
        self.line_exact.append(line.exact)
        self.line_forced.append(line.forced)
        return line.text


@dataclass
class _DrawnLine:
    """The tokens drawn for one slot's line in :meth:`LineSampler.next_lines`."""

    count: int = 0  # ids drawn and fed (an ending special token excluded)
    end: Literal["nl", "eos", "max"] | None = None  # why the line ended
    end_id: int | None = None  # the id that ended the program ("eos")
    done: list[SplitLine] = field(default_factory=list)  # lines the last token finished ("nl")


def _per_slot(name: str, doc: str) -> Any:
    """A read-only property: field ``name`` of every :class:`SlotState`, in slot order (see
    the field's description there)."""
    get = operator.attrgetter(name)
    return property(lambda self: [get(s) for s in self.slots], doc=f"{doc} (:attr:`SlotState.{name}`)")


class LineSampler:
    """Samples programs line by line for a batch of contexts.

    Args:
        model: A causal LM (``AutoModelForCausalLM``), in eval mode.
        tokenizer: Its tokenizer (needs an EOS token; the pad token defaults to EOS). Its
            :func:`codegym.tokenization.line_rules` are checked here (a tokenizer whose
            lines cannot be kept exact is refused with a ``ValueError``).
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
        #: How the tokenizer's ids map to lines (computed once per tokenizer, cached on it).
        self.rules = line_rules(tokenizer)
        #: Every id that ends a program: the EOS ids (tokenizer and generation config) and
        #: every other special token.
        self.end_ids = frozenset(eos_token_ids(tokenizer, model)) | self.rules.special_ids
        self.batch_size = 0
        self._clear(0)

    # ------------------------------------------------------------------ state
    def _clear(self, batch: int) -> None:
        self.batch_size = batch
        #: The shared KV cache of the batch (mask, per-slot positions, holes, rebuilds).
        self.kv = SlotKVCache(
            self._forward, batch, pad_id=self.pad_id,
            max_positions=self.max_positions, device=self.device, growing=self.growing_cache,
        )  # fmt: skip
        self.last_logits: torch.Tensor | None = None  # (B, V)
        #: One record per slot: what was sampled and what the cache holds for it.
        self.slots: list[SlotState] = [self._new_slot() for _ in range(batch)]

    def _new_slot(self, **fields: Any) -> SlotState:
        return SlotState(splitter=LineSplitter(self.tokenizer, self.rules), **fields)

    def _forward(self, cache: Any, **inputs: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The logits at each slot's last fed id ``[B, V]`` (ids are left-aligned)."""
        n = inputs["input_ids"].shape[1]
        last = (inputs["attention_mask"][:, -n:].sum(dim=1) - 1).clamp(min=0)  # (B,)
        return forward_last(self.model, cache, last, **inputs)

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
    tail_ids = _per_slot("tail_ids", "Per slot: ids drawn between the last line and the EOS.")
    end_id = _per_slot("end_id", "Per slot: the id that ended the program.")

    def start(self, contexts: Sequence[str]) -> None:
        """Start ``len(contexts)`` new programs (drops any previous state)."""
        self._clear(len(contexts))
        if contexts:
            self._append([encode_context(self.tokenizer, c) for c in contexts])

    def set_slot(self, slot: int, context: str, lines: Sequence[str] = (), keep_flags: bool = False) -> None:
        """Replace slot ``slot`` by a program of ``context`` + ``lines`` (history masked out).

        With ``keep_flags`` the slot keeps its finished / pending-submit state and the lines
        it has not returned yet (used when a caller edits the line just sampled, e.g. to fit
        an env's charset); they are re-encoded by the rule too.
        """
        self._check_slot(slot)
        old = self.slots[slot]
        self.kv.clear_slot(slot)
        queued = [q.text for q in old.queue] if keep_flags else []
        pieces = encode_lines(self.tokenizer, [*lines, *queued])
        ids = join_pieces(encode_context(self.tokenizer, context), pieces).input_ids
        self.slots[slot] = self._new_slot(
            lines=list(lines),
            line_exact=[False] * len(lines),
            line_ids=pieces[: len(lines)],
            line_forced=[0] * len(lines),
            finished=old.finished if keep_flags else False,
            pending_submit=old.pending_submit if keep_flags else False,
            queue=[_Line(t, p, False, 0) for t, p in zip(queued, pieces[len(lines) :])],
        )
        new: list[list[int]] = [[] for _ in range(self.batch_size)]
        new[slot] = ids
        self._append(new)

    def select_slots(self, index: Sequence[int]) -> None:
        """Make slot ``i`` a copy of slot ``index[i]`` (its cache rows, logits and record):
        the batch becomes ``len(index)`` slots. A beam search uses it to continue the kept
        beams and to fan one program out into several.

        Raises:
            ValueError: ``index`` is empty or names a slot outside ``[0, batch_size)``.
        """
        rows = [int(i) for i in index]
        self.kv.select(rows)  # checks the index
        if self.last_logits is not None:
            self.last_logits = self.last_logits.index_select(0, torch.tensor(rows, device=self.last_logits.device))  # (B', V)
        self.slots = [copy.deepcopy(self.slots[i]) for i in rows]
        self.batch_size = len(rows)

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.batch_size:
            raise ValueError(f"slot must be in [0, {self.batch_size}), got {slot}")

    def _append(self, new_ids: list[list[int]], rebuild: bool = True) -> None:
        """Append per-slot id lists (ragged; empty lists feed nothing) to the cache."""
        self._take_logits(new_ids, self.kv.append(new_ids))
        if rebuild:
            self._maybe_rebuild()

    def _take_logits(self, new_ids: list[list[int]], logits: torch.Tensor | None) -> None:
        """Keep each fed slot's logits at its last new id (``logits`` [B, V]) in
        :attr:`last_logits`."""
        if logits is None:
            return
        if self.last_logits is None:
            self.last_logits = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)  # (B, V)
        for b, x in enumerate(new_ids):
            if x:
                self.last_logits[b] = logits[b].float()

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
            slot = self.slots[b]
            if not act[b] or slot.finished:
                continue
            if slot.queue:  # a blank line ended by the token that ended the last line
                result[b] = slot.record(slot.queue.pop(0))
            elif self._must_submit(b):
                slot.finished = True
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
        """Slot ``b`` ends without sampling: an EOS was drawn mid-line at the last call, or no
        room is left for a line."""
        return self.slots[b].pending_submit or int(self.next_pos[b]) + 2 > self.max_positions

    def _draw_lines(self, running: list[int]) -> dict[int, _DrawnLine]:
        """Sample tokens for the ``running`` slots in lockstep until each line ends (a token
        holding a newline, an ending id, the token cap or the position limit), feeding each
        drawn token (and a masked pad for slots already done) to the cache."""
        assert self.last_logits is not None
        drawn = {b: _DrawnLine() for b in running}
        live = list(running)
        while live:
            tokens = self._sample(self.last_logits[live])  # [len(live)]
            feed: list[list[int]] = [[] for _ in range(self.batch_size)]
            for b, t in zip(live, tokens.tolist()):
                d = drawn[b]
                if t in self.end_ids:
                    d.end, d.end_id = "eos", t
                    continue
                d.count += 1
                feed[b] = [t]
                d.done = self.slots[b].splitter.push(t)  # type: ignore[union-attr]
                if d.done:
                    d.end = "nl"
                elif d.count >= self.max_line_tokens or int(self.next_pos[b]) + 2 >= self.max_positions:
                    d.end = "max"
            if any(feed):
                self._append_step(feed)
            live = [b for b in live if drawn[b].end is None]
        return drawn

    def _end_line(self, b: int, d: _DrawnLine) -> tuple[str, list[int]]:
        """Record what was drawn for slot ``b``: returns what :meth:`next_lines` reports for
        it (the first line finished, or SUBMIT for an EOS with no line open) and the ids to
        append to the cache (a forced newline, or lines re-encoded by the rule; often none).
        Further finished lines are queued for the next calls."""
        slot = self.slots[b]
        splitter = slot.splitter
        assert splitter is not None
        forced: list[int] = []
        if d.end == "eos":
            slot.end_id = d.end_id
            line, tail = splitter.close()
            if line is None:
                slot.finished, slot.eos_exact, slot.tail_ids = True, True, tail
                return SUBMIT, []
            slot.pending_submit, done = True, [line]
        elif d.end == "max" and not self.reencode and self.rules.layout == "newline_last":
            forced = [self.rules.newline_id]  # ends the cut line; not an action
            done = splitter.push(forced[0], drawn=False, end_line=True)
        elif d.end == "max":
            line, tail = splitter.close()
            done = [line if line is not None else SplitLine("", tail, [True] * len(tail))]
        else:
            done = d.done
        settled, fix, redone = self._settle(b, done, forced)
        if d.end == "eos":
            slot.eos_exact = not redone  # the EOS follows the line's ids as drawn
        slot.queue.extend(settled[1:])
        return slot.record(settled[0]), fix

    def _settle(self, b: int, done: list[SplitLine], forced: list[int]) -> tuple[list[_Line], list[int], bool]:
        """The lines just finished in slot ``b`` as the cache will hold them, the ids to
        append, and whether any line was re-encoded. Lines are kept as drawn where they may
        be (with the rule: only ids equal to the rule's; as drawn: every line but a glued
        one), else re-encoded from the first line that may not on (its drawn ids and the open
        line's are taken back; the open line's text is re-fed by
        :meth:`LineSplitter.reopen`)."""
        texts = [line.text.rstrip("\r") if self.reencode else line.text for line in done]
        canonical = encode_lines(self.tokenizer, texts) if self.reencode or any(x.glued for x in done) else []
        first = None
        for i, line in enumerate(done):
            keep = not line.glued and (not self.reencode or (texts[i] == line.text and line.ids == canonical[i]))
            if not keep:
                first = i
                break
        if first is None:
            out = [_Line(t, x.ids, all(x.drawn[: len(x.ids) - x.forced_end]), int(x.forced_end))
                   for t, x in zip(texts, done)]  # fmt: skip
            return out, forced, False
        splitter = self.slots[b].splitter
        assert splitter is not None
        in_cache = sum(len(x.ids) for x in done[first:]) - len(forced) + len(splitter.ids)
        self.kv.take_back(b, in_cache)
        kept = [_Line(t, x.ids, all(x.drawn), 0) for t, x in zip(texts[:first], done[:first])]
        redone = [_Line(t, c, False, 0) for t, c in zip(texts[first:], canonical[first:])]
        fix = [i for c in canonical[first:] for i in c] + splitter.reopen()
        return kept + redone, fix, True

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
