"""The trainer skeleton once, on a toy trainer (a 4-weight regression): resume after a real
process is killed mid-run, refusal with the differences, overwrite, smoke caps, progress off,
callbacks, evaluations, Ctrl-C, old settings records, and the shared learning-rate schedule.
SFT, PRM and PPO run the same skeleton (their own tests cover their steps)."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from codegym.training.checkpoint import Checkpointer
from codegym.training.trainer import warmup_decay_lr

#: The toy trainer, written to a file so that a child process can run it too.
TOY = '''
from dataclasses import dataclass, field
import json, time
from pathlib import Path
import numpy as np
import torch
from codegym.config import Config
from codegym.tasks import SuiteConfig
from codegym.tasks.registry import nest_suite_fields
from codegym.training.trainer import Trainer


@dataclass
class ToyConfig(Config):
    out: str = "toy"
    steps: int = 10
    lr: float = 0.1
    seed: int = 0
    suite: SuiteConfig = field(default_factory=lambda: SuiteConfig(min_lines=1, max_lines=12, seed=0))
    checkpoint_every: int = 2
    log_every: int = 1
    eval_every: int = 0
    report_to: str = "none"
    sleep: float = 0.0

    @classmethod
    def upgrade(cls, data, note=True):
        return nest_suite_fields(cls, data, note=note)


class ToyTrainer(Trainer):
    what = "toy run"
    resumable = ("steps", "sleep")
    smoke_caps = {"steps": 3, "suite.max_lines": 3}
    apart = False

    def __init__(self, config, **kw):
        super().__init__(config, config.out, **kw)
        self.eval_rows_apart = self.apart

    def setup(self, checkpoint):
        self.w = torch.nn.Parameter(torch.zeros(4))
        self.opt = torch.optim.SGD([self.w], lr=self.config.lr)
        self.rng = np.random.default_rng(self.config.seed)

    def train_step(self):
        x = torch.tensor(self.rng.normal(size=4), dtype=torch.float32)
        loss = ((self.w - x) ** 2).sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.step += 1
        time.sleep(self.config.sleep)
        return {"step": self.step, "loss": loss.item()}

    def evaluate(self):
        return {"val/norm": float(self.w.detach().norm())}

    def save_state(self, path):
        torch.save({"w": self.w.detach().clone(), "opt": self.opt.state_dict(),
                    "rng": self.rng.bit_generator.state, "step": self.step}, path / "state.pt")

    def load_state(self, path):
        state = torch.load(path / "state.pt", weights_only=False)
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.opt.load_state_dict(state["opt"])
        self.rng.bit_generator.state = state["rng"]
        self.step = state["step"]

    def save_final(self):
        (self.out / "final.json").write_text(json.dumps({"w": self.w.tolist(), "step": self.step}))

    def card(self):
        return dict(title="toy", summary="A toy.", pipeline_tag="text-generation", usage="pass",
                    training={"steps": self.step})


def run(config, **kw):
    with ToyTrainer(config, **kw) as trainer:
        rows = trainer.learn()
    return trainer, rows
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy_trainer.py"
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_trainer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_trainer"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["toy_trainer"]


@pytest.fixture(autouse=True)
def _no_smoke(monkeypatch):
    monkeypatch.delenv("CODEGYM_SMOKE", raising=False)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _final(out: Path) -> list[float]:
    return json.loads((out / "final.json").read_text())["w"]


def test_killed_process_resumes_from_its_last_checkpoint_like_a_run_that_never_stopped(toy, tmp_path) -> None:
    out = tmp_path / "run"
    code = (f"import sys; sys.path.insert(0, {str(Path(toy.__file__).parent)!r}); import toy_trainer as t; "
            f"t.run(t.ToyConfig(out={str(out)!r}, steps=100000, checkpoint_every=5, sleep=0.01))")
    proc = subprocess.Popen([sys.executable, "-c", code])
    ckpt = Checkpointer(out, "checkpoint")
    deadline = time.monotonic() + 120
    while (ckpt.step_of(ckpt.path) or 0) < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = ckpt.step_of(ckpt.latest())
    assert killed_at is not None and killed_at >= 10 and killed_at % 5 == 0
    logged = len(_rows(out))
    assert logged >= killed_at  # rows after the checkpoint were written before the kill ...
    stop = killed_at + 7
    trainer, rows = toy.run(toy.ToyConfig(out=str(out), steps=stop, checkpoint_every=5), progress=False)
    assert [r["step"] for r in rows] == list(range(killed_at + 1, stop + 1))
    assert [r["step"] for r in _rows(out)] == list(range(1, stop + 1))  # ... and dropped on resume
    toy.run(toy.ToyConfig(out=str(tmp_path / "straight"), steps=stop, checkpoint_every=5), progress=False)
    assert _final(out) == _final(tmp_path / "straight")
    assert [r["loss"] for r in _rows(out)] == [r["loss"] for r in _rows(tmp_path / "straight")]
    assert ckpt.step_of(ckpt.latest()) == stop  # the last step is always checkpointed


def test_other_settings_are_refused_listing_the_differences(toy, tmp_path) -> None:
    out = tmp_path / "run"
    toy.run(toy.ToyConfig(out=str(out), steps=4), progress=False)
    with pytest.raises(ValueError) as err:
        toy.ToyTrainer(toy.ToyConfig(out=str(out), steps=4, lr=0.2, seed=1), progress=False)
    message = str(err.value)
    for needle in ("toy run with other settings", "lr: was 0.1, now 0.2", "seed: was 0, now 1",
                   "--overwrite (overwrite=True)", "another --out"):
        assert needle in message, message
    # a resumable setting (the step budget) may change: the run continues
    trainer, rows = toy.run(toy.ToyConfig(out=str(out), steps=6), progress=False)
    assert [r["step"] for r in rows] == [5, 6]


def test_overwrite_starts_over_but_never_deletes_a_foreign_directory(toy, tmp_path) -> None:
    out = tmp_path / "run"
    toy.run(toy.ToyConfig(out=str(out), steps=4), progress=False)
    trainer, rows = toy.run(toy.ToyConfig(out=str(out), steps=3, lr=0.2), overwrite=True, progress=False)
    assert [r["step"] for r in _rows(out)] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text())["lr"] == 0.2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(ValueError, match="does not look like a codegym run directory"):
        toy.ToyTrainer(toy.ToyConfig(out=str(foreign)), overwrite=True, progress=False)
    assert (foreign / "thesis.tex").is_file()


def test_smoke_caps_lower_budgets_once_and_say_so(toy, tmp_path, monkeypatch, capsys) -> None:
    from codegym.tasks import SuiteConfig

    monkeypatch.setenv("CODEGYM_SMOKE", "1")
    trainer, rows = toy.run(toy.ToyConfig(out=str(tmp_path / "a"), steps=50), progress=False)
    assert len(rows) == 3 and trainer.config.steps == 3 and trainer.config.suite.max_lines == 3
    err = capsys.readouterr().err
    assert "CODEGYM_SMOKE is set" in err and "steps 50 -> 3" in err and "max_lines 12 -> 3" in err
    # a suite without a horizon knob keeps its (unset) knob
    cfg = toy.ToyConfig(out=str(tmp_path / "b"), steps=5, suite=SuiteConfig(name="humaneval"))
    trainer = toy.ToyTrainer(cfg, progress=False)
    trainer.close()
    assert trainer.config.suite.max_lines is None and trainer.config.steps == 3


def test_progress_off_prints_nothing_and_on_shows_the_bar(toy, tmp_path, capsys) -> None:
    toy.run(toy.ToyConfig(out=str(tmp_path / "quiet"), steps=3), progress=False)
    assert capsys.readouterr().out == ""
    toy.run(toy.ToyConfig(out=str(tmp_path / "shown"), steps=3), progress=True)
    assert "ToyTrainer" in capsys.readouterr().out
    toy.run(toy.ToyConfig(out=str(tmp_path / "shown"), steps=4), progress=True)
    assert "resuming the toy run" in capsys.readouterr().out


def test_callback_stops_early_and_the_stop_step_is_checkpointed(toy, tmp_path) -> None:
    out = tmp_path / "run"
    seen = []
    with toy.ToyTrainer(toy.ToyConfig(out=str(out), steps=10, checkpoint_every=4), progress=False) as trainer:
        rows = trainer.learn(callbacks=[lambda row: seen.append(row["step"]) or row["step"] < 3])
    assert seen == [1, 2, 3] and len(rows) == 3
    assert Checkpointer(out).step_of(out / "checkpoint") == 3
    assert json.loads((out / "final.json").read_text())["step"] == 3
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and "# toy" in card


def test_evaluations_merge_into_the_row_or_get_rows_of_their_own(toy, tmp_path) -> None:
    toy.run(toy.ToyConfig(out=str(tmp_path / "merged"), steps=4, log_every=3, eval_every=2), progress=False)
    rows = _rows(tmp_path / "merged")
    assert [(r["step"], "val/norm" in r) for r in rows] == [(2, True), (3, False), (4, True)]
    toy.ToyTrainer.apart = True
    try:
        toy.run(toy.ToyConfig(out=str(tmp_path / "apart"), steps=4, log_every=3, eval_every=2), progress=False)
    finally:
        toy.ToyTrainer.apart = False
    rows = _rows(tmp_path / "apart")
    assert [(r["step"], "loss" in r, "val/norm" in r) for r in rows] == [
        (2, False, True), (3, True, False), (4, True, False), (4, False, True)]


def test_ctrl_c_says_which_checkpoint_is_saved(toy, tmp_path, capsys) -> None:
    def interrupt(row):
        if row["step"] == 3:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with toy.ToyTrainer(toy.ToyConfig(out=str(out), steps=10, checkpoint_every=2), progress=False) as trainer:
        with pytest.raises(KeyboardInterrupt):
            trainer.learn(callbacks=[interrupt])
    err = " ".join(capsys.readouterr().err.split())
    assert "stopped at step 3" in err and "the checkpoint of step 2 is saved in" in err
    trainer, rows = toy.run(toy.ToyConfig(out=str(out), steps=4, checkpoint_every=2), progress=False)
    assert [r["step"] for r in rows] == [3, 4]


def test_a_record_written_before_suite_config_resumes(toy, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    toy.run(toy.ToyConfig(out=str(out), steps=2), progress=False)
    record = json.loads((out / "config.json").read_text())
    suite = record.pop("suite")
    record.update(suite=suite["name"], min_steps=suite["min_lines"], max_steps=suite["max_lines"],
                  suite_seed=suite["seed"])  # the flat fields of older versions
    (out / "config.json").write_text(json.dumps(record))
    trainer, rows = toy.run(toy.ToyConfig(out=str(out), steps=3), progress=False)
    assert [r["step"] for r in rows] == [3]
    assert "min_steps" not in json.loads((out / "config.json").read_text())  # rewritten in today's form
    record.update(max_steps=6)
    (out / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="suite: was"):
        toy.ToyTrainer(toy.ToyConfig(out=str(out), steps=3), progress=False)


def test_learning_rate_schedules_of_sft_and_prm() -> None:
    import math

    # linear (SFT): warm-up, constant, linear decay to 10 % over the last decay_steps
    assert warmup_decay_lr(0, 1e-3, 1000, 100, "linear", decay_steps=200) == pytest.approx(1e-5)
    assert warmup_decay_lr(500, 1e-3, 1000, 100, "linear", decay_steps=200) == 1e-3
    assert warmup_decay_lr(999, 1e-3, 1000, 100, "linear", decay_steps=200) == pytest.approx(1e-4)
    assert warmup_decay_lr(9, 1e-3, 10, 0, "linear", decay_steps=250) == pytest.approx(1e-4)
    assert warmup_decay_lr(9, 1e-3, 10, 0, "linear", decay_steps=0) == 1e-3
    # cosine (PRM): half a cosine from the peak after warm-up to 10 % at the last step
    assert warmup_decay_lr(20, 1e-3, 600, 20, "cosine") == pytest.approx(1e-3)
    assert warmup_decay_lr(310, 1e-3, 600, 20, "cosine") == pytest.approx(1e-3 * (0.1 + 0.45 * (1 + math.cos(math.pi / 2))))
    assert warmup_decay_lr(600, 1e-3, 600, 20, "cosine") == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="shape"):
        warmup_decay_lr(50, 1e-3, 600, 20, "step")


def test_trainer_state_lives_in_the_checkpoint(toy, tmp_path) -> None:
    out = tmp_path / "run"
    toy.run(toy.ToyConfig(out=str(out), steps=3, checkpoint_every=2), progress=False)
    state = torch.load(out / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 3 and Checkpointer(out).step_of(out / "checkpoint") == 3
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "checkpoint", "config.json", "final.json", "metrics.jsonl"]
