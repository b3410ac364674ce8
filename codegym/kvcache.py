"""One KV cache for a batch of token sequences (slots) of a causal transformer.

:class:`SlotKVCache` is the cache machinery that :class:`codegym.sampling.LineSampler` (one
program per slot, sampled line by line) and :class:`codegym.prm.BatchedPRMScorer` (the
vector env's PRM: one program per env, scored line by line) share. Every
:meth:`SlotKVCache.append` feeds a ragged list of new ids per slot as **one** ``[B, n]``
forward pass:

* each slot's ids are left-aligned and padded to ``n``; the pads are masked out of an
  explicit 2-D attention mask ``[B, S + n]`` that covers the whole cache, so a slot never
  attends to another slot's tokens nor to its own pads;
* every slot has its own position ids (``next_pos`` counts its valid tokens), so a slot's
  tokens sit at the positions a fresh encoding of the slot alone gives them;
* a slot is restarted (:meth:`SlotKVCache.clear_slot`) by masking its history out, and ids
  can be taken back (:meth:`SlotKVCache.drop_last`) by masking their columns: both leave
  *holes*, masked columns that still cost attention;
* when holes make up most of the cache (:meth:`SlotKVCache.needs_rebuild`), the cache is
  rebuilt (:meth:`SlotKVCache.rebuild`) by re-feeding every slot's valid ids.

So the cache always holds, per slot, exactly the ids of ``valid_ids[b]`` at positions
``0..len - 1``: the model's output for a slot equals that of the slot's ids encoded alone,
up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import torch

#: ``forward(cache, input_ids=..., attention_mask=..., position_ids=...) -> (output, cache)``:
#: one forward of the model continuing from ``cache`` (``output`` is whatever the owner reads:
#: an LM's output object, a PRM's raw scores).
Forward = Callable[..., tuple[Any, Any]]


def growing_cache() -> Any:
    """A ``DynamicCache`` whose layers append in amortised O(new tokens) (buffers that double)
    instead of re-concatenating the whole cache at every decoding step."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self._length = 0
                self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None
            end = self._length + key_states.shape[-2]
            buffers = self._buffers
            if buffers is None or end > buffers[0].shape[-2] or buffers[0].shape[:-2] != key_states.shape[:-2]:
                cap = max(64, 2 * end)
                new = tuple(x.new_empty((*x.shape[:-2], cap, x.shape[-1])) for x in (key_states, value_states))
                if self._length:
                    new[0][..., : self._length, :] = self.keys
                    new[1][..., : self._length, :] = self.values
                buffers = self._buffers = (new[0], new[1])
            buffers[0][..., self._length : end, :] = key_states
            buffers[1][..., self._length : end, :] = value_states
            self._length = end
            self.keys, self.values = buffers[0][..., :end, :], buffers[1][..., :end, :]
            return self.keys, self.values

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            super().reorder_cache(beam_idx)
            if self.is_initialized:
                self._buffers = None  # the next update copies the reordered rows into new buffers

    cache = DynamicCache()
    if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer and not cache.layers:
        cache.layer_class_to_replicate = GrowingLayer  # layers are made on first use
    return cache


class SlotKVCache:
    """The shared KV cache of ``batch_size`` slots (see the module docstring).

    Args:
        forward: Runs the model on new ids continuing from a cache (:data:`Forward`).
        batch_size: Slots ``B``.
        pad_id: Id fed (masked out) where a slot has fewer new ids than the longest.
        max_positions: Longest sequence a slot may hold (the model's positions).
        device: Torch device of the ids and masks.
        growing: Keep the cache in buffers that double when full (:func:`growing_cache`)
            instead of Hugging Face's concatenating ``DynamicCache``; same values.
        overflow_hint: Appended to the ``ValueError`` raised when a slot would exceed
            ``max_positions`` (what the caller can do about it).

    Attributes:
        cache: The model's KV cache (all slots, ``S`` columns).
        mask: ``[B, S]`` long, 1 where a cached column is one of the slot's valid ids.
        next_pos: ``[B]`` long, the position of each slot's next id (its valid ids so far).
        valid_ids: Per slot, the ids the cache holds for it, unmasked, in order.
    """

    def __init__(
        self,
        forward: Forward,
        batch_size: int,
        *,
        pad_id: int,
        max_positions: int,
        device: torch.device | str = "cpu",
        growing: bool = True,
        overflow_hint: str = "",
    ) -> None:
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        self.forward = forward
        self.batch_size = int(batch_size)
        self.pad_id = int(pad_id)
        self.max_positions = int(max_positions)
        self.device = torch.device(device)
        self.growing = bool(growing)
        self.overflow_hint = overflow_hint
        self.clear()

    def clear(self) -> None:
        """Drop every slot's ids: an empty cache."""
        from transformers import DynamicCache

        batch = self.batch_size
        self.cache: Any = growing_cache() if self.growing else DynamicCache()
        self.mask = torch.zeros(batch, 0, dtype=torch.long, device=self.device)  # (B, S)
        self.next_pos = torch.zeros(batch, dtype=torch.long, device=self.device)  # (B,)
        self.valid_ids: list[list[int]] = [[] for _ in range(batch)]

    @property
    def width(self) -> int:
        """Columns ``S`` of the cache (valid ids and holes)."""
        return int(self.mask.shape[1])

    def check_room(self, new_ids: Sequence[Sequence[int]], fresh: Collection[int] = ()) -> None:
        """Raise ``ValueError`` when appending ``new_ids`` would overflow a slot's positions
        (the slots in ``fresh`` are about to be cleared: they start at position 0)."""
        if len(new_ids) != self.batch_size:
            raise ValueError(f"got new ids for {len(new_ids)} slots, the cache has {self.batch_size}")
        for b, x in enumerate(new_ids):
            end = (0 if b in fresh else int(self.next_pos[b])) + len(x)
            if x and end > self.max_positions:
                raise ValueError(
                    f"slot {b}: {end} tokens exceed the model's {self.max_positions} "
                    f"positions{self.overflow_hint}"
                )

    @torch.no_grad()
    def append(self, new_ids: Sequence[Sequence[int]]) -> Any:
        """Feed per-slot id lists (ragged; an empty list feeds only masked pads) in one forward.

        Returns:
            The model's output for the ``[B, n]`` fed ids (``n`` = the longest list; slot
            ``b``'s last new id is at index ``len(new_ids[b]) - 1``), or ``None`` when no
            slot had an id to feed (no forward ran).

        Raises:
            ValueError: A slot would exceed ``max_positions`` (nothing is fed).
        """
        n = max((len(x) for x in new_ids), default=0)
        if n == 0:
            return None
        self.check_room(new_ids)
        batch = len(new_ids)
        ids = torch.full((batch, n), self.pad_id, dtype=torch.long)  # (B, n)
        new_mask = torch.zeros(batch, n, dtype=torch.long)  # (B, n)
        for b, x in enumerate(new_ids):
            if x:
                ids[b, : len(x)] = torch.tensor(list(x), dtype=torch.long)
                new_mask[b, : len(x)] = 1
                self.valid_ids[b].extend(x)
        ids, new_mask = ids.to(self.device), new_mask.to(self.device)
        pos = self.next_pos[:, None] + torch.cumsum(new_mask, dim=1) - 1  # (B, n)
        pos = pos.clamp(min=0)
        full_mask = torch.cat([self.mask, new_mask], dim=1)  # (B, S + n)
        out, self.cache = self.forward(self.cache, input_ids=ids, attention_mask=full_mask, position_ids=pos)
        self.mask = full_mask
        self.next_pos = self.next_pos + new_mask.sum(dim=1)
        return out

    def clear_slot(self, slot: int) -> None:
        """Restart slot ``slot``: its history is masked out (holes); its next id is position 0."""
        self.mask[slot] = 0
        self.next_pos[slot] = 0
        self.valid_ids[slot] = []

    def drop_last(self, slot: int, cols: Sequence[int]) -> None:
        """Take back slot ``slot``'s last ``len(cols)`` valid ids, fed at columns ``cols``."""
        for c in cols:
            self.mask[slot, c] = 0
        self.next_pos[slot] -= len(cols)
        del self.valid_ids[slot][len(self.valid_ids[slot]) - len(cols) :]

    def select(self, index: Sequence[int]) -> None:
        """Make slot ``i`` a copy of slot ``index[i]``: the batch becomes ``len(index)`` slots
        (a slot may be repeated or left out), as a beam search reorders its beams.

        Raises:
            ValueError: ``index`` is empty or names a slot outside ``[0, batch_size)``.
        """
        rows = [int(i) for i in index]
        if not rows or min(rows) < 0 or max(rows) >= self.batch_size:
            raise ValueError(f"index must name slots in [0, {self.batch_size}), got {list(index)[:8]}")
        idx = torch.tensor(rows, dtype=torch.long, device=self.device)  # (B',)
        self.cache.reorder_cache(idx)  # every layer's (B, H, S, D) keys and values -> (B', ...)
        self.mask = self.mask.index_select(0, idx)  # (B', S)
        self.next_pos = self.next_pos.index_select(0, idx)  # (B',)
        self.valid_ids = [list(self.valid_ids[i]) for i in rows]
        self.batch_size = len(rows)

    def take_back(self, slot: int, n: int) -> None:
        """Take back slot ``slot``'s last ``n`` valid ids, wherever their columns are (a
        rebuild may have moved them)."""
        if n <= 0:
            return
        cols = torch.nonzero(self.mask[slot]).flatten()[-n:].tolist()
        if len(cols) != n:
            raise ValueError(f"slot {slot} holds {len(cols)} valid ids, cannot take back {n}")
        self.drop_last(slot, cols)

    def needs_rebuild(self) -> bool:
        """Whether holes make up most of the cache (columns > 2 × the longest slot + 128)."""
        longest = max((len(x) for x in self.valid_ids), default=0)
        return self.width > 2 * longest + 128

    def rebuild(self) -> tuple[list[list[int]], Any]:
        """Re-encode every slot's valid ids into a fresh cache (no holes left).

        Returns:
            The re-fed ids per slot and the forward's output (as :meth:`append`).
        """
        valid = self.valid_ids
        self.clear()
        return valid, self.append(valid)


__all__ = ["Forward", "SlotKVCache", "growing_cache"]
