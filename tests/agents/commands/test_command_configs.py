"""``agents.commands``: the configs that ``codegym train`` and ``codegym reproduce`` build
from a preset, ``--config``, ``--set`` and the flags."""

from __future__ import annotations

import json

from agents.commands.train import build_config
from agents.ppo.config import PPOConfig
from agents.reproduce.command import config_from_args
from codegym.cli import build_parser


def test_train_flags_win_over_set_and_set_over_the_file(tmp_path) -> None:
    path = tmp_path / "ppo.json"
    path.write_text(json.dumps({"iterations": 11, "policy_lr": 3e-5, "critic_warmup_iterations": 1}))
    args = build_parser(only="train").parse_args([
        "train", "--policy", "p", "--out", "o", "--prm", "x", "--config", str(path),
        "--set", "iterations=9", "--set", "gamma=0.9", "--iterations", "7", "--adam-betas", "0.8,0.9",
        "--max-task-lines", "5", "--no-norm-adv",
    ])  # fmt: skip
    cfg = build_config(args, PPOConfig)
    assert (cfg.iterations, cfg.policy_lr, cfg.gamma, cfg.adam_betas) == (7, 3e-5, 0.9, (0.8, 0.9))
    assert (cfg.suite.max_lines, cfg.norm_adv, cfg.critic_warmup_iterations) == (5, False, 1)
    assert cfg.suite.min_lines == 2  # the other suite fields keep PPOConfig's default suite
    assert cfg.value_init == "prm"  # --prm given and no value_init set
    args = build_parser(only="train").parse_args(["train", "--policy", "p", "--out", "o"])
    assert build_config(args, PPOConfig) == PPOConfig()


def test_reproduce_preset_then_file_then_set_then_flags(tmp_path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"iterations": 5, "sft": {"steps": 7}}))
    args = build_parser(only="reproduce").parse_args([
        "reproduce", "--out", str(tmp_path / "run"), "--preset", "smoke", "--config", str(path),
        "--set", "sft.n_layer=2", "--set", "iterations=4", "--arms", "sparse,dense", "--seeds", "2",
    ])  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.preset, cfg.iterations, cfg.seeds, cfg.arms) == ("smoke", 4, 2, ("sparse", "dense"))
    # The nested overrides merge: the preset's SFT sizes stay unless overridden.
    assert cfg.sft["steps"] == 7 and cfg.sft["n_layer"] == 2 and cfg.sft["n_embd"] == 32
    quick = config_from_args(build_parser(only="reproduce").parse_args(["reproduce", "--out", "o"]))
    assert quick.preset == "quick"
