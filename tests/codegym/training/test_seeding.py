"""codegym.training.seeding: one seed per (run seed, step, process, stream)."""

from __future__ import annotations

import itertools

import pytest
import torch

from codegym.training.seeding import STREAMS, stream_generator, stream_rng, stream_seed


def test_same_inputs_same_seed_and_every_coordinate_matters() -> None:
    base = stream_seed(0, 5, 0, "sampling")
    assert base == stream_seed(0, 5, 0, "sampling") and 0 <= base < 2**63
    others = {stream_seed(1, 5, 0, "sampling"), stream_seed(0, 6, 0, "sampling"),
              stream_seed(0, 5, 1, "sampling"), stream_seed(0, 5, 0, "tasks")}  # fmt: skip
    assert base not in others and len(others) == 4


def test_seeds_are_distinct_over_a_grid() -> None:
    grid = [stream_seed(s, i, r, k) for s, i, r, k in itertools.product(range(3), range(50), range(2), STREAMS)]
    assert len(set(grid)) == len(grid)


def test_generators_reproduce_their_draws_without_global_state() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    a = torch.rand(4, generator=stream_generator(7, 1, 0, "minibatches"))
    b = torch.rand(4, generator=stream_generator(7, 1, 0, "minibatches"))
    assert torch.equal(a, b)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), before)  # the global RNG was not consumed
    assert stream_rng(7, 1, 0, "tasks").integers(1 << 30) == stream_rng(7, 1, 0, "tasks").integers(1 << 30)


def test_unknown_stream_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown random stream 'noise'.*sampling"):
        stream_seed(0, 0, 0, "noise")
