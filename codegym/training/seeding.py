"""One seed scheme for every trainer: each random stream of a run gets its own generator.

A trainer draws from several independent streams — which tasks an iteration trains on, the
tokens the policy samples, the order of minibatches — and in data-parallel runs each process
draws its own. :func:`stream_seed` derives one seed per ``(run seed, step, process, stream)``
with NumPy's :class:`~numpy.random.SeedSequence` (a hash built for exactly this: nearby inputs
give unrelated seeds), so no stream depends on how much another one consumed and no global
RNG state is touched.
"""

from __future__ import annotations

import numpy as np
import torch

#: The named random streams of a trainer.
STREAMS: dict[str, int] = {"tasks": 0, "sampling": 1, "minibatches": 2, "init": 3}


def stream_seed(seed: int, step: int, rank: int, stream: str) -> int:
    """A 63-bit seed for ``stream`` at ``step`` of process ``rank`` in a run seeded ``seed``.

    Raises:
        ValueError: ``stream`` is not one of :data:`STREAMS`.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; use one of {sorted(STREAMS)}")
    state = np.random.SeedSequence([int(seed), int(step), int(rank), STREAMS[stream]]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def stream_rng(seed: int, step: int, rank: int, stream: str) -> np.random.Generator:
    """A NumPy generator for ``stream`` (see :func:`stream_seed`)."""
    return np.random.default_rng(stream_seed(seed, step, rank, stream))


def stream_generator(seed: int, step: int, rank: int, stream: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` for ``stream`` (see :func:`stream_seed`)."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, step, rank, stream))


__all__ = ["STREAMS", "stream_generator", "stream_rng", "stream_seed"]
