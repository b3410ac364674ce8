"""SuiteConfig: validation that names the field, what a suite supports, nesting in the configs
that draw tasks (flags, partial overrides), and configs written before it existed."""

from __future__ import annotations

import json

import pytest

from codegym.tasks import SuiteConfig, load_suite
from codegym.tasks.registry import suite_class


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "humaneval", "max_lines": 3}, "suite 'humaneval' has no horizon knob: drop min_lines/max_lines"),
    ({"name": "jsonl:x.jsonl", "min_lines": 2}, "no horizon knob"),
    ({"name": "humaneval", "seed": 1}, "suite 'humaneval' is fixed and has no seed"),
    ({"min_lines": 5, "max_lines": 4}, "min_lines=5 > max_lines=4"),
    ({"min_lines": 0}, "suite min_lines must be >= 1, got 0"),
    ({"max_lines": "six"}, "suite max_lines must be an integer or None"),
    ({"name": "nosuch"}, "unknown suite 'nosuch'"),
    ({"split": ""}, "suite split must be a split name"),
])  # fmt: skip
def test_bad_settings_name_the_field_and_the_fix(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SuiteConfig(**kwargs)


def test_a_suite_says_which_knobs_it_has() -> None:
    assert suite_class("pipelines").supports_horizon and suite_class("pipelines").supports_seed
    for spec in ("humaneval", "jsonl:tasks.jsonl", "hf:mbpp"):
        assert not suite_class(spec).supports_horizon and not suite_class(spec).supports_seed
    assert SuiteConfig().has_horizon and not SuiteConfig(name="humaneval").has_horizon


def test_load_builds_the_suite_with_its_knobs() -> None:
    suite = load_suite(SuiteConfig(min_lines=2, max_lines=3, seed=5))
    assert (suite.min_steps, suite.max_steps, suite.seed) == (2, 3, 5)
    assert all(2 <= t.horizon <= 3 for t in suite.take(6, "train"))
    default = SuiteConfig().load()
    assert (default.min_steps, default.max_steps, default.seed) == (1, 12, 0)
    with pytest.raises(ValueError, match="takes no constructor arguments"):
        load_suite(SuiteConfig(), min_steps=2)


def test_pick_split_prefers_the_given_then_the_jobs_default() -> None:
    suite = SuiteConfig().load()
    assert SuiteConfig().pick_split(suite) == "test"
    assert SuiteConfig().pick_split(suite, "train") == "train"
    assert SuiteConfig(split="validation").pick_split(suite, "train") == "validation"
    with pytest.raises(ValueError, match="no split 'dev'"):
        SuiteConfig(split="dev").pick_split(suite)


def test_describe() -> None:
    assert SuiteConfig(min_lines=2, max_lines=4, seed=0).describe() == "pipelines (2-4 lines, seed 0)"
    assert SuiteConfig(max_lines=4).describe() == "pipelines (at most 4 lines)"
    assert SuiteConfig(name="humaneval").describe() == "humaneval"


def test_nested_dicts_set_fields_over_the_default_suite_and_a_new_name_starts_afresh() -> None:
    from agents.ppo.config import PPOConfig

    default = PPOConfig().suite
    assert (default.split, default.min_lines, default.max_lines, default.seed) == ("train", 2, 4, 0)
    assert PPOConfig.from_dict({"suite": {"max_lines": 6}}).suite == SuiteConfig(split="train", min_lines=2, max_lines=6, seed=0)
    assert PPOConfig(suite={"max_lines": 6}).suite.min_lines == 2  # the constructor too
    assert PPOConfig.from_dict({"suite": {"name": "humaneval"}}).suite == SuiteConfig(name="humaneval")
    assert PPOConfig(suite="humaneval").suite == SuiteConfig(name="humaneval")  # a bare spec
    assert PPOConfig.from_dict(PPOConfig().to_dict()) == PPOConfig()


def test_configs_written_before_suite_config_load_with_a_note(tmp_path, capsys) -> None:
    from agents.ppo.config import PPOConfig
    from agents.sft import SFTConfig
    from codegym.commands.eval import EvalConfig
    from codegym.labeling import LabelRunConfig

    old = {**PPOConfig().to_dict(), "seed": 3}
    del old["suite"]
    old.update(suite="pipelines", split="validation", min_steps=1, max_steps=3, suite_seed=7)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    cfg = PPOConfig.load(path)
    assert cfg.suite == SuiteConfig(split="validation", min_lines=1, max_lines=3, seed=7) and cfg.seed == 3
    assert "note: PPOConfig: flat suite fields are deprecated" in capsys.readouterr().err
    # the flat knobs of an old config for a fixed suite were ignored then: dropped now
    sft = SFTConfig.from_dict({"out": "x", "suite": "humaneval", "min_steps": 1, "max_steps": 12, "suite_seed": 0})
    assert sft.suite == SuiteConfig(name="humaneval")
    # an old default SFT record is today's default, so an old run resumes
    flat = {**SFTConfig(out="x").to_dict(), "suite": "pipelines", "min_steps": 1, "max_steps": 12, "suite_seed": 0}
    assert SFTConfig.upgrade(flat, note=False) == SFTConfig(out="x").to_dict()
    assert EvalConfig.from_dict({"suite": "pipelines", "max_steps": 3}).suite == SuiteConfig(max_lines=3)
    label = LabelRunConfig.from_dict({"suite": "pipelines", "split": "train", "suite_kwargs": {"min_steps": 2, "seed": 1}})
    assert label.suite == SuiteConfig(split="train", min_lines=2, seed=1)
    with pytest.raises(ValueError, match="suite_kwargs \\['ops'\\] have no SuiteConfig field"):
        LabelRunConfig.from_dict({"suite_kwargs": {"ops": "full"}})


def test_suite_flags_of_every_command_that_draws_tasks(capsys) -> None:
    from codegym.cli import build_parser
    from codegym.config import config_data

    for command, required in (("eval", []), ("sft", ["--out", "o"]), ("label", ["--out", "o"]),
                              ("train", ["--policy", "p", "--out", "o"]), ("reproduce", ["--out", "o"])):  # fmt: skip
        args = build_parser(only=command).parse_args([command, *required, "--suite", "pipelines", "--max-task-lines",
                                                      "5", "--min-task-lines", "2", "--suite-seed", "4"])  # fmt: skip
        assert config_data(args)["suite"] == {"name": "pipelines", "max_lines": 5, "min_lines": 2, "seed": 4}, command
    # reproduce's stages choose their own splits: no --split there
    with pytest.raises(SystemExit):
        build_parser(only="reproduce").parse_args(["reproduce", "--out", "o", "--split", "test"])
    capsys.readouterr()
    # an old flat --set still works (with a note), and so does an old config file
    args = build_parser(only="train").parse_args(["train", "--policy", "p", "--out", "o", "--set", "min_steps=3"])
    assert config_data(args)["suite"]["min_lines"] == 3
    assert "flat suite fields are deprecated" in capsys.readouterr().err
