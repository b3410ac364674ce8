"""``bench/memory.py``: the formula's accounting, and a CPU measurement that agrees with it."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import memory  # noqa: E402

#: A model small enough for a test, with a vocabulary large enough that logits matter.
TEST_SHAPE = replace(memory.SMALL, hidden=128, layers=2, intermediate=352, vocab=8192)
TEST_BATCH = replace(memory.SMALL_BATCH, rollout=8, minibatch=4, prompt=32, new=16, chunk=32)


def test_bytes_per_parameter_of_each_mode() -> None:
    shape, batch = memory.SHAPES["1.5B"], memory.Batch()
    got = {name: memory.formula(shape, batch, mode) for name, mode in memory.MODES.items()}
    # today: fp32 policy 16 + reference 4 + critic 16 + PRM 4; bf16: frozen copies at 2
    assert got["today"]["bytes_per_param"] == pytest.approx(40.0)
    assert got["bf16-master"]["bytes_per_param"] == pytest.approx(36.0)
    assert got["full-shared"]["bytes_per_param"] == pytest.approx(20.0)
    lora = got["lora-shared"]
    assert 4.0 < lora["bytes_per_param"] < 4.5 and lora["reference"] == 0 and lora["critic"] == 0
    assert got["today"]["params"] == 1_543_714_304  # Qwen2-1.5B, counted on a meta-device model


def test_chunking_and_checkpointing_shrink_their_terms() -> None:
    shape, batch = memory.SHAPES["7B"], memory.Batch()
    full = memory.formula(shape, batch, memory.MODES["bf16-master"])
    lean = memory.formula(shape, batch, replace(memory.MODES["bf16-master"], chunked=True, checkpointing=True))
    assert lean["logits_score"] * 30 < full["logits_score"]  # 1024 positions instead of 128 x 288
    assert lean["activations"] * 5 < full["activations"]
    # the scoring logits grow with the batch, chunked ones do not
    bigger = replace(batch, rollout=256)
    mode, chunked = memory.MODES["bf16-master"], replace(memory.MODES["bf16-master"], chunked=True)
    assert memory.formula(shape, bigger, mode)["logits_score"] == pytest.approx(2 * full["logits_score"])
    assert memory.formula(shape, bigger, chunked)["logits_score"] == memory.formula(shape, batch, chunked)["logits_score"]


def test_goals_by_the_formula() -> None:
    batch = memory.Batch()
    assert memory.formula(memory.SHAPES["7B"], batch, memory.MODES["lora-shared"])["peak"] <= 80e9
    assert memory.formula(memory.SHAPES["1.5B"], batch, memory.MODES["full-shared"])["peak"] <= 80e9
    assert memory.formula(memory.SHAPES["1.5B"], batch, memory.MODES["today"])["peak"] > 80e9


def test_the_trainer_engine_says_what_is_missing(tmp_path) -> None:
    with pytest.raises(NotImplementedError, match="not implemented in agents.ppo yet.*LoRA.*--engine raw"):
        memory.measure(memory.MODES["lora-shared"], TEST_BATCH, "trainer", tmp_path)


def test_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        memory.parse_args(["--modes", "today,fsdp"])
    with pytest.raises(SystemExit):
        memory.parse_args(["--shapes", "70B"])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
@pytest.mark.parametrize("mode", ["today", "lora-shared"])
def test_a_cpu_measurement_agrees_with_the_formula(mode, tmp_path) -> None:
    if mode == "lora-shared":
        pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    got = memory.measure(memory.MODES[mode], TEST_BATCH, "raw", tmp_path, TEST_SHAPE)
    want = memory.formula(TEST_SHAPE, TEST_BATCH, memory.MODES[mode])
    ph = got["phases"]
    assert ph["weights"] == pytest.approx(want["weights"], rel=0.15, abs=3e6)
    assert ph["optimizer"] - ph["weights"] == pytest.approx(want["optimizer"], rel=0.15, abs=3e6)
    if mode == "today":  # the full-vocabulary scoring logits dominate, and are predicted
        assert ph["scoring"] == pytest.approx(want["scoring"], rel=0.25)
        assert got["peak"] == pytest.approx(want["peak"], rel=0.25)
