"""GRPOTrainer end to end on a tiny random policy: metrics, files, resume, the oracle's process
advantages, and ``codegym train --agent grpo`` / ``codegym eval --agent grpo``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agents.grpo.config import GRPOConfig
from codegym.cli import main
from codegym.tasks import SuiteConfig

TINY = dict(
    num_prompts=2, samples_per_prompt=2, max_new_tokens=24, max_line_tokens=12, max_lines=4,
    suite=SuiteConfig(split="train", min_lines=1, max_lines=2, seed=0), num_minibatches=2,
    sandbox_workers=1, torch_threads=1,
)  # fmt: skip


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {n: p.detach() for n, p in AutoModelForCausalLM.from_pretrained(path).named_parameters()}


def test_config_validation_names_the_field() -> None:
    for bad, match in ((dict(advantage="dense"), "advantage"), (dict(samples_per_prompt=1), "group size"),
                       (dict(baseline="median"), "baseline"), (dict(loss_aggregation="mean"), "loss_aggregation"),
                       (dict(num_prompts=3, samples_per_prompt=2, num_minibatches=4), "num_minibatches"),
                       (dict(process_coef=-1.0), "process_coef")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            GRPOConfig(**bad)
    with pytest.raises(ValueError, match="unknown GRPOConfig fields"):
        GRPOConfig.from_dict({"gae_lambda": 0.9})
    cfg = GRPOConfig(advantage="outcome+process", process_source="oracle")
    assert (cfg.batch_size, cfg.uses_prm, cfg.env_reward_mode) == (128, False, "delta")
    assert GRPOConfig.from_dict(cfg.to_dict()) == cfg


def test_prm_needed_for_prm_process_advantages(tiny_policy_dir: Path, tmp_path: Path) -> None:
    from agents.grpo.trainer import GRPOTrainer

    with pytest.raises(ValueError, match="needs a PRM"):
        GRPOTrainer(GRPOConfig(advantage="process", **TINY), tiny_policy_dir, tmp_path / "a")
    with pytest.raises(ValueError, match="one process"):
        GRPOTrainer(GRPOConfig(**TINY), tiny_policy_dir, tmp_path / "b", accelerator=object())


def test_prm_process_run_logs_checkpoints_and_resumes(tiny_policy_dir: Path, tiny_prm_dir: Path, tmp_path: Path) -> None:
    """Two iterations of outcome+process (PRM) in one go, and the same run stopped after one
    iteration and resumed: the same rollouts, rows and final weights."""
    from agents.grpo.trainer import GRPOTrainer

    cfg = GRPOConfig(iterations=2, advantage="outcome+process", seed=3, **TINY)
    trainer = GRPOTrainer(cfg, tiny_policy_dir, tmp_path / "full", prm_dir=tiny_prm_dir, progress=False)
    try:
        rows = trainer.train()
    finally:
        trainer.close()
    run = tmp_path / "full"
    assert [r["iteration"] for r in _rows(run / "metrics.jsonl")] == [1, 2] == [r["iteration"] for r in rows]
    for key in ("losses/policy", "losses/kl", "losses/entropy", "losses/approx_kl", "charts/pass_rate",
                "charts/kl", "charts/lines", "charts/tokens", "charts/prefix_accuracy", "charts/invalid_rate",
                "charts/flat_groups", "charts/advantage_abs", "charts/dense_reward", "time/rollout"):  # fmt: skip
        assert key in rows[1], key
    # the PRM scored the lines and the process part gave a signal although nothing passed
    assert rows[0]["charts/scored_lines"] > 0 and rows[0]["charts/advantage_abs"] > 0
    assert rows[1]["losses/kl"] > 0  # the policy moved away from the reference after one update
    for sub in ("checkpoint/policy", "policy", "reference"):
        assert (run / sub / "config.json").is_file(), sub
    assert not (run / "critic").exists()
    card = (run / "README.md").read_text()
    assert "advantage: outcome+process" in card and "charts/flat_groups" in card
    assert (run / "policy" / "README.md").is_file()
    # stop after one iteration, resume to two
    half = tmp_path / "half"
    first = GRPOTrainer(cfg, tiny_policy_dir, half, prm_dir=tiny_prm_dir, progress=False)
    try:
        first.train(iterations=1)
    finally:
        first.close()
    second = GRPOTrainer(cfg, tiny_policy_dir, half, prm_dir=tiny_prm_dir, progress=False)
    try:
        assert second.iteration == 1
        resumed = second.train()
    finally:
        second.close()
    assert [r["iteration"] for r in resumed] == [2]
    got = _rows(half / "metrics.jsonl")
    for a, b in zip(got, _rows(run / "metrics.jsonl")):
        for key in ("charts/tokens", "charts/lines", "charts/pass_rate", "charts/advantage_abs"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), (a["iteration"], key)
    full_w, half_w = _weights(run / "policy"), _weights(half / "policy")
    for name, tensor in full_w.items():
        torch.testing.assert_close(half_w[name], tensor, atol=1e-6, rtol=0)
    # other settings are refused
    with pytest.raises(ValueError, match="advantage"):
        GRPOTrainer(GRPOConfig(iterations=2, seed=3, **TINY), tiny_policy_dir, half, progress=False)


def test_outcome_without_a_pass_leaves_the_policy_process_moves_it(tiny_policy_dir: Path, tmp_path: Path) -> None:
    """A random policy never passes: every group is flat, so outcome advantages are 0 and the
    policy (still equal to the reference, so the KL gradient is 0 too) does not move; the
    oracle's process advantages move it."""
    from agents.grpo.trainer import GRPOTrainer

    start = _weights(tiny_policy_dir)
    for advantage in ("outcome", "process"):
        cfg = GRPOConfig(iterations=1, advantage=advantage, process_source="oracle", num_minibatches=1,
                         **{k: v for k, v in TINY.items() if k != "num_minibatches"})  # fmt: skip
        out = tmp_path / advantage
        trainer = GRPOTrainer(cfg, tiny_policy_dir, out, progress=False)
        try:
            (row,) = trainer.train()
        finally:
            trainer.close()
        assert row["charts/pass_rate"] == 0.0 and row["charts/flat_groups"] == 1.0
        after = _weights(out / "policy")
        moved = max(float((after[n] - p).abs().max()) for n, p in start.items())
        if advantage == "outcome":
            assert row["charts/advantage_abs"] == 0.0 and moved == 0.0
        else:
            assert row["charts/scored_lines"] > 0  # the oracle scores every code line
            assert row["charts/advantage_abs"] > 0 and moved > 0


def test_train_and_eval_commands(tiny_policy_dir: Path, tiny_prm_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--agent", "grpo", "--policy", str(tiny_policy_dir), "--prm", str(tiny_prm_dir),
            "--advantage", "outcome+process", "--process-reward", "score", "--no-scale-by-std",
            "--baseline", "leave-one-out", "--loss-aggregation", "constant", "--kl-penalty", "reward",
            "--iterations", "1", "--out", str(out), "--min-task-lines", "1", "--max-task-lines", "2",
            "--num-prompts", "2", "--samples-per-prompt", "2", "--no-progress"]  # fmt: skip
    for kv in ("max_new_tokens=24", "max_line_tokens=12", "max_lines=4", "num_minibatches=1",
               "sandbox_workers=1", "torch_threads=1"):  # fmt: skip
        argv += ["--set", kv]
    assert main(argv) == 0
    assert "codegym train --agent grpo" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["advantage"], config["process_reward"], config["baseline"], config["scale_by_std"],
            config["loss_aggregation"], config["kl_penalty"], config["num_prompts"]) == (
        "outcome+process", "score", "leave-one-out", False, "constant", "reward", 2)  # fmt: skip
    assert "value_init" not in config
    # a PPO-only flag is refused for grpo, a GRPO-only flag for ppo
    bad = ["train", "--agent", "grpo", "--policy", str(tiny_policy_dir), "--out", str(tmp_path / "x"),
           "--gae-lambda", "0.9"]  # fmt: skip
    assert main(bad) == 2 and "gae_lambda" in capsys.readouterr().err
    bad = ["train", "--policy", str(tiny_policy_dir), "--out", str(tmp_path / "y"), "--advantage", "process"]
    assert main(bad) == 2 and "advantage" in capsys.readouterr().err
    traj = tmp_path / "eval.jsonl"
    assert main(["eval", "--agent", "grpo", "--model", str(out), "--suite", "pipelines",
                 "--min-task-lines", "1", "--max-task-lines", "2", "--episodes", "3", "--max-lines", "4",
                 "--out", str(traj)]) == 0  # fmt: skip
    assert len(traj.read_text().splitlines()) == 3
