"""``codegym.plugins``: what codegym finds in ``agents`` comes from the installed metadata."""

from __future__ import annotations

import pytest

from codegym.plugins import COMMANDS, TRAINERS, load, registered


def test_agents_registers_its_commands_and_the_sft_trainer() -> None:
    assert {"sft", "train", "reproduce"} <= set(registered(COMMANDS))
    for name in ("sft", "train", "reproduce"):
        module = load(COMMANDS, name)
        assert module.NAME == name and callable(module.add_parser) and callable(module.run)
    sft = load(TRAINERS, "sft")
    for attr in ("SFTConfig", "train_sft"):
        assert callable(getattr(sft, attr)), attr


def test_an_unknown_name_says_what_is_installed() -> None:
    with pytest.raises(ValueError, match=r"no 'codegym.trainers' entry point named 'nope'.*installed: .*sft"):
        load(TRAINERS, "nope")


def test_a_command_whose_entry_point_is_missing_says_how_to_install_it(monkeypatch, capsys) -> None:
    import codegym.cli as cli
    import codegym.plugins as plugins

    real = plugins.registered
    monkeypatch.setattr(plugins, "registered",
                        lambda group: {k: v for k, v in real(group).items() if k != "sft"})
    assert cli.main(["sft", "--out", "x"]) == 2
    assert "pip install -e ." in capsys.readouterr().err
