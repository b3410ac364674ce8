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


def test_every_mode_is_a_ppo_config() -> None:
    knobs = {name: memory.trainer_config(mode, memory.SMALL_BATCH) for name, mode in memory.MODES.items()}
    today, lora = knobs["today"], knobs["lora-shared"]
    assert (today.dtype, today.lora_rank, today.critic, today.gradient_checkpointing, today.logprob_chunk) == (
        "fp32", 0, "separate", False, 0)  # PPOConfig's defaults: today's trainer
    assert knobs["bf16-master"].dtype == "bf16" and knobs["bf16-master"].critic == "separate"
    assert knobs["full-shared"].critic == "shared" and knobs["full-shared"].lora_rank == 0
    assert (lora.dtype, lora.lora_rank, lora.critic, lora.gradient_checkpointing, lora.logprob_chunk) == (
        "bf16", memory.SMALL_BATCH.lora_rank, "shared", True, memory.SMALL_BATCH.chunk)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_the_real_trainer_holds_far_less_in_the_lean_mode(tmp_path) -> None:
    pytest.importorskip("peft", reason="the lora extra (peft) is not installed")
    shape = memory.prepare_trainer_inputs(tmp_path, replace(memory.TRAINER_SHAPE, hidden=512, layers=4,
                                                            intermediate=1408, heads=8, kv_heads=2))  # fmt: skip
    batch = replace(memory.SMALL_BATCH, rollout=8, minibatch=4, new=16, prompt=160)
    peak = {}
    for name in ("today", "lora-shared"):
        got = memory.measure(memory.MODES[name], batch, "trainer", tmp_path, shape)
        want = memory.formula(shape, batch, memory.MODES[name])
        peak[name] = got["peak"]
        # the formula's model states and activations, plus the env's, sandbox's and imports' ~0.1-0.3 GB
        assert want["peak"] < got["peak"] < want["peak"] + 0.4e9, (name, got, want["peak"])
    assert peak["lora-shared"] < 0.6 * peak["today"], peak


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
