"""Every command with a config: each field is a flag or listed as not exposed, with a reason.

Renaming a config field (or adding one) without a flag fails here instead of silently
dropping the option from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from codegym.cli import build_parser, main

#: Commands that have a config, and their config classes (outer first).
EXPECTED = {
    "eval": ["EvalConfig", "SuiteConfig"],
    "sft": ["SFTConfig", "SuiteConfig"],
    "label": ["LabelRunConfig", "LabelConfig", "SuiteConfig"],
    "train-prm": ["PRMTrainConfig"],
    "train": ["PPOConfig", "SuiteConfig", "GRPOConfig"],
    "reproduce": ["ReproduceConfig", "SuiteConfig"],
    "defaults build": ["DefaultsBuildConfig"],
}


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                out[full] = sub
                out.update(_subparsers(sub, full + " "))
    return out


@pytest.fixture(scope="module")
def commands() -> dict[str, argparse.ArgumentParser]:
    return _subparsers(build_parser())


def test_the_commands_with_a_config_are_the_expected_ones(commands) -> None:
    found = {name: [cls.__name__ for cls, _, _ in p.get_default("config_specs")]
             for name, p in commands.items() if p.get_default("config_specs")}
    assert found == EXPECTED


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_every_field_is_a_flag_or_not_exposed_with_a_reason(commands, command) -> None:
    parser = commands[command]
    options = {a.dest: a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS}
    for cls, prefix, not_exposed in parser.get_default("config_specs"):
        for f in dataclasses.fields(cls):
            dest = f"{prefix}.{f.name}" if prefix else f.name
            if f.name in not_exposed:
                assert len(not_exposed[f.name]) > 10, f"{command}: {cls.__name__}.{f.name} needs a reason"
                assert dest not in options, f"{command}: {f.name} is listed as not exposed but is a flag"
                continue
            assert dest in options, f"{command}: {cls.__name__}.{f.name} is neither a flag nor not_exposed"
            assert options[dest].help, f"{command}: --{f.name} has no help (write a field docstring)"
    assert {"config_file", "config_set"} <= set(options), f"{command} lacks --config/--set"


@pytest.mark.parametrize(("command", "old", "new", "dest"), [
    ("sft", "--steps", "--sft-steps", "steps"),
    ("sft", "--min-steps", "--min-task-lines", "suite.min_lines"),
    ("train-prm", "--steps", "--train-steps", "steps"),
    ("train", "--max-steps", "--max-task-lines", "suite.max_lines"),
    ("reproduce", "--min-steps", "--min-task-lines", "suite.min_lines"),
    ("eval", "--max-steps", "--max-task-lines", "suite.max_lines"),
    ("label", "--min-steps", "--min-task-lines", "suite.min_lines"),
])  # fmt: skip
def test_renamed_flags_keep_working_with_a_note(commands, capsys, command, old, new, dest) -> None:
    parser = commands[command]
    required = {"sft": ["--out", "o"], "train-prm": ["--data", "d", "--base", "b", "--out", "o"],
                "train": ["--policy", "p", "--out", "o"], "reproduce": ["--out", "o"],
                "label": ["--out", "o"], "eval": []}[command]  # fmt: skip
    assert getattr(parser.parse_args([*required, new, "3"]), dest) == 3
    assert capsys.readouterr().err == ""
    assert getattr(parser.parse_args([*required, old, "3"]), dest) == 3
    assert f"{old} is deprecated; use {new}" in capsys.readouterr().err


def test_help_lists_every_command_without_building_their_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in ("eval", "show", "label", "sandbox", "sft", "train-prm", "train", "reproduce", "plot", "defaults"):
        assert f"\n    {name}" in text


def test_a_bad_set_key_names_the_field_and_the_valid_ones(tmp_path, capsys) -> None:
    assert main(["sft", "--out", str(tmp_path / "s"), "--set", "stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "stepz" in err and "train_tasks" in err


def test_eval_settings_come_from_a_config_file_too(tmp_path, capsys) -> None:
    path = tmp_path / "eval.json"
    path.write_text('{"episodes": 0}')
    assert main(["eval", "--config", str(path)]) == 2
    assert "--episodes must be >= 1, got 0" in capsys.readouterr().err
    assert main(["eval", "--set", "reward_mode=sideways"]) == 2
    assert "reward_mode must be one of ('delta', 'delta_open', 'score', 'paper', 'none'), got 'sideways'" in capsys.readouterr().err
