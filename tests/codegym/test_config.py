"""``codegym.config``: the config base class and the CLI <-> config plumbing."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from codegym.config import (
    Config,
    add_config_args,
    add_deprecated,
    config_from_args,
    field_docs,
    merge,
)


@dataclass(frozen=True)
class Inner(Config):
    """A nested config.

    Attributes:
        k: Completions per prefix,
            continued on a second line.
        mode: Search mode.
    """

    k: int = 8
    mode: Literal["binary", "linear"] = "binary"

    def validate(self) -> Inner:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        return self


@dataclass
class Outer(Config):
    """An outer config."""

    out: str
    """Output directory."""
    steps: int = 10
    """Optimiser steps (10 %% of nothing)."""
    lr: float = 1e-3
    """Learning rate."""
    betas: tuple[float, float] = (0.9, 0.95)
    """Adam betas."""
    progress: bool = True
    """Show a bar."""
    inner: Inner = field(default_factory=Inner)
    """The nested settings."""
    extra: dict = field(default_factory=dict)
    """Free-form facts."""

    def validate(self) -> Outer:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}: pass --steps 1 or more")
        return self


def test_validate_runs_on_construction_and_from_dict_names_unknown_keys() -> None:
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        Outer(out="x", steps=0)
    with pytest.raises(ValueError, match=r"unknown Outer fields \['stepz'\]; valid fields: .*'steps'"):
        Outer.from_dict({"out": "x", "stepz": 3})
    with pytest.raises(ValueError, match="k must be >= 1"):
        Outer.from_dict({"out": "x", "inner": {"k": 0}})


def test_from_dict_coerces_lists_strings_and_nested_dicts(tmp_path) -> None:
    cfg = Outer.from_dict({"out": "x", "betas": "0.8, 0.9", "inner": {"k": 2}})
    assert cfg.betas == (0.8, 0.9) and cfg.inner == Inner(k=2)
    path = tmp_path / "c.json"
    cfg.save(path)
    data = json.loads(path.read_text())
    assert data["betas"] == [0.8, 0.9] and data["inner"] == {"k": 2, "mode": "binary"}
    assert Outer.load(path) == cfg
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read Outer"):
        Outer.load(path)


def test_field_docs_reads_attribute_docstrings_and_attributes_sections() -> None:
    assert field_docs(Outer)["steps"].startswith("Optimiser steps")
    assert field_docs(Inner) == {"k": "Completions per prefix, continued on a second line.",
                                 "mode": "Search mode."}


def test_merge_nests_dotted_keys_and_keeps_the_rest() -> None:
    data = {"inner": {"k": 1, "mode": "linear"}}
    merge(data, "inner.k", 3)
    merge(data, "inner", {"mode": "binary"})
    assert data == {"inner": {"k": 3, "mode": "binary"}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_config_args(p, Outer, not_exposed={"inner": "nested", "extra": "free-form"},
                    flags={"steps": "--train-steps"}, deprecated={"--steps": "steps"})
    add_config_args(p, Inner, not_exposed={}, prefix="inner")
    add_deprecated(p, "--linear", "--mode linear", "inner.mode", const="linear")
    return p


def test_flags_config_file_and_set_in_order(tmp_path, capsys) -> None:
    p = _parser()
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"out": "file", "steps": 5, "lr": 0.5, "inner": {"k": 4}}))
    args = p.parse_args(["--out", "flag", "--config", str(cfg_file), "--set", "steps=6",
                         "--set", "inner.mode=linear", "--train-steps", "7", "--no-progress"])
    cfg = config_from_args(args, Outer)
    assert (cfg.out, cfg.steps, cfg.lr, cfg.progress) == ("flag", 7, 0.5, False)
    assert cfg.inner == Inner(k=4, mode="linear")
    assert capsys.readouterr().err == ""
    # Absent flags leave the defaults; the old names still work, with a note on stderr.
    args = p.parse_args(["--out", "o", "--steps", "3", "--linear", "--k", "2"])
    cfg = config_from_args(args, Outer)
    assert (cfg.steps, cfg.lr, cfg.inner) == (3, 1e-3, Inner(k=2, mode="linear"))
    err = capsys.readouterr().err
    assert "--steps is deprecated; use --train-steps" in err and "--linear is deprecated" in err


def test_flags_have_the_field_docstring_as_help_and_required_fields_are_required() -> None:
    p = _parser()
    helps = {a.dest: a.help for a in p._actions if a.help != argparse.SUPPRESS}
    assert helps["steps"].startswith("Optimiser steps") and helps["inner.k"].startswith("Completions")
    with pytest.raises(SystemExit):
        p.parse_args([])  # --out is required: Outer.out has no default
    with pytest.raises(SystemExit):
        p.parse_args(["--out", "o", "--mode", "sideways"])  # Literal -> choices


def test_a_field_that_is_neither_a_flag_nor_listed_is_refused() -> None:
    with pytest.raises(TypeError, match="inner"):
        add_config_args(argparse.ArgumentParser(), Outer, not_exposed={"extra": "free-form"})
    with pytest.raises(TypeError, match="no fields"):
        add_config_args(argparse.ArgumentParser(), Outer, not_exposed={"inner": "", "extra": "", "nope": ""})


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ((-1, 0.0, 0.0, "all-linear"), "lora_rank must be >= 0"),
        ((4, -2.0, 0.0, "all-linear"), "lora_alpha must be >= 0"),
        ((4, 0.0, 1.0, "all-linear"), r"lora_dropout must be in \[0, 1\)"),
        ((4, 0.0, 0.1, "  "), "lora_targets is empty"),
    ],
)
def test_lora_fields_name_the_field_and_the_fix(fields: tuple, match: str) -> None:
    from codegym.config import check_lora_fields

    with pytest.raises(ValueError, match=match):
        check_lora_fields(*fields)
    check_lora_fields(0, 0.0, 0.0, "")  # no LoRA: the targets are not used


def test_lora_kwargs_map_the_fields_to_add_lora() -> None:
    from codegym.config import lora_kwargs

    assert lora_kwargs(0, 16.0, 0.1, "all-linear", 3) is None
    assert lora_kwargs(8, 0.0, 0.1, "q_proj,v_proj", 3) == {
        "rank": 8, "alpha": None, "dropout": 0.1, "targets": "q_proj,v_proj", "seed": 3}
