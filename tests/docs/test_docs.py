"""README.md, docs/*.md and examples/*.py run in the suite exactly as a user copies them.

Every fenced ``python``/``bash``/``sh`` block of README.md and docs/ runs as written:

* a Python block whose first line is a comment naming a file (``# mypkg/agent.py``) is
  written to that file (later blocks of the same document use it); any other Python block
  runs as a script;
* bash blocks run with the virtual environment's ``bin`` first on ``PATH`` (as after
  ``source .venv/bin/activate``);
* every document runs in its own scratch directory, with ``CODEGYM_SMOKE=1`` so that long
  jobs (SFT, labeling, PPO) stop after a few steps (:mod:`codegym.training.smoke`), except README's
  fresh-machine block (set-up + the main job), which runs in the repository root at full size
  and must print the table documented below it.

Blocks that cannot run here are marked visibly in the Markdown source with an HTML comment
on the line before the fence, ``<!-- not-run: REASON -->`` (and the README's test command,
between its ``test-command`` markers, which is this very suite). :data:`MAX_SKIPPED` bounds
that list. Every ``examples/*.py`` runs with ``python examples/NAME.py`` from the repository
root, also with ``CODEGYM_SMOKE=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py")
RUNNABLE = {"python", "bash", "sh"}
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")
FILE_HEADER = re.compile(r"^#\s*([\w./-]+\.py)\s*$")
#: At most this many runnable-language blocks may be marked not-run (keep the list short).
MAX_SKIPPED = 3
#: README sections whose Python block a dedicated test runs as written (and checks its output):
#: not run twice.
TESTED_ELSEWHERE = {"Train from Python": "tests/test_readme_python.py",
                    "Stable-Baselines3": "tests/test_readme_python.py"}
BLOCK_TIMEOUT = 600


@dataclass
class Block:
    doc: Path
    line: int
    lang: str
    code: str
    skip: str | None
    fresh_machine: bool = False
    output: str | None = None  # the text block right after it (README's main job table)
    section: str = ""

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"

    @property
    def file_target(self) -> str | None:
        first = self.code.splitlines()[0] if self.code.strip() else ""
        m = FILE_HEADER.match(first.strip()) if self.lang == "python" else None
        return m.group(1) if m else None


def parse_blocks(path: Path) -> list[Block]:
    """Fenced blocks of a Markdown file with their not-run marks."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    in_test_command = False
    section = ""
    i = 0
    while i < len(lines):
        text = lines[i]
        if text.startswith("## "):
            section = text[3:].strip()
        if text.strip() == "<!-- test-command:start -->":
            in_test_command = True
        elif text.strip() == "<!-- test-command:end -->":
            in_test_command = False
        m = re.match(r"^(\s*)```(\w*)\s*$", text)
        if not m:
            i += 1
            continue
        lang, start = m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        code = "\n".join(lines[start + 1 : j]) + "\n"
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mark = NOT_RUN.match(prev)
        skip = mark.group(1) if mark else ("the README's test command: this very suite" if in_test_command else None)
        block = Block(path, start + 1, lang, code, skip, section=section)
        elsewhere = TESTED_ELSEWHERE.get(section) if path.name == "README.md" and lang == "python" else None
        if elsewhere and not block.skip:
            block.skip = f"run as written by {elsewhere}"
        block.fresh_machine = path.name == "README.md" and ".ci/setup.sh" in code and not in_test_command
        if blocks and lang == "text" and blocks[-1].fresh_machine and blocks[-1].output is None:
            blocks[-1].output = code
        blocks.append(block)
        i = j + 1
    return blocks


ALL_BLOCKS = [b for doc in DOCUMENTS for b in parse_blocks(doc)]
RUN_BLOCKS = [b for b in ALL_BLOCKS if b.lang in RUNNABLE]


def _env(smoke: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    if smoke:
        env["CODEGYM_SMOKE"] = "1"
    else:
        env.pop("CODEGYM_SMOKE", None)
    env["COLUMNS"] = "120"
    return env


def _run(cmd: list[str], cwd: Path, smoke: bool) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(smoke), capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"exit {proc.returncode}: {' '.join(cmd)[:200]}\n--- stdout ---\n{proc.stdout[-4000:]}"
                    f"\n--- stderr ---\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """One scratch directory per document, with the document's file blocks written in it."""
    dirs = {}
    for doc in DOCUMENTS:
        d = tmp_path_factory.mktemp(doc.stem.lower())
        for b in parse_blocks(doc):
            if b.file_target and not b.skip:
                target = d / b.file_target
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(b.code, encoding="utf-8")
        dirs[doc] = d
    return dirs


def test_the_harness_finds_the_blocks_and_few_are_skipped():
    readme = [b for b in RUN_BLOCKS if b.doc.name == "README.md"]
    assert sum(b.fresh_machine for b in readme) == 1, "README needs exactly one main-job block"
    assert any(b.skip and "test command" in b.skip for b in readme)
    skipped = [b.id for b in RUN_BLOCKS if b.skip and "test command" not in b.skip and "run as written by" not in b.skip]
    assert len(skipped) <= MAX_SKIPPED, f"too many not-run blocks: {skipped}"
    for section, test in TESTED_ELSEWHERE.items():  # the dedicated test really runs that section
        assert section in (ROOT / test).read_text(), (section, test)
    assert any(b.file_target for b in readme) and len(RUN_BLOCKS) >= 6
    assert EXAMPLES, "no examples/*.py found"


@pytest.mark.parametrize("block", [b for b in RUN_BLOCKS if not b.fresh_machine], ids=lambda b: b.id)
def test_doc_block_runs_as_written(block: Block, workdirs) -> None:
    if block.skip:
        pytest.skip(f"marked not-run in {block.doc.name}: {block.skip}")
    cwd = workdirs[block.doc]
    if block.file_target:  # written by the fixture; it must at least compile
        compile(block.code, block.file_target, "exec")
        return
    if block.lang == "python":
        script = cwd / f"_block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        _run([sys.executable, str(script)], cwd, smoke=True)
    else:
        _run(["bash", "-euo", "pipefail", "-c", block.code], cwd, smoke=True)


def _table_rows(text: str) -> dict[str, list[float]]:
    """``group -> [tasks, episodes, passed, pass@1, mean return, mean lines]`` from a printed
    results table (rich box characters or plain ``|``)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line) if c.strip()]
        if len(cells) >= 7 and re.fullmatch(r"all|\d+-\d+|\d+\+", cells[0]):
            try:
                rows[cells[0]] = [float(c.split()[0]) for c in cells[1:7]]
            except ValueError:
                continue
    return rows


@pytest.mark.slow
def test_readme_main_job_prints_the_documented_table() -> None:
    """README's fresh-machine command, exactly as written, in the repository root (its set-up
    step is a quick check when .venv exists), prints the documented results table."""
    (block,) = [b for b in RUN_BLOCKS if b.fresh_machine]
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the main-job command uses the repository's .venv; run the suite from it "
                    "(README's test command)")
    assert block.output, "README must show the main job's table in a ```text block after it"
    documented = _table_rows(block.output)
    assert "all" in documented and len(documented) >= 5
    proc = _run(["bash", "-euo", "pipefail", "-c", block.code], ROOT, smoke=False)
    printed = _table_rows(proc.stdout)
    assert set(printed) == set(documented), proc.stdout[-3000:]
    for group, want in documented.items():
        got = printed[group]
        assert got[:2] == want[:2], (group, got, want)  # tasks, episodes
        # greedy decoding on another CPU can flip a near-tie: allow one task per group
        assert abs(got[2] - want[2]) <= 1, (group, got, want)
        assert got[3] == pytest.approx(want[3], abs=max(0.006, 1.01 / want[0])), (group, got, want)
        assert got[4] == pytest.approx(want[4], abs=0.05), (group, got, want)
        assert got[5] == pytest.approx(want[5], abs=0.25), (group, got, want)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path) -> None:
    own = ROOT / "tests" / "examples" / f"test_{example.stem}.py"
    if own.is_file():
        pytest.skip(f"run with its smoke budget by {own.relative_to(ROOT)}")
    _run([sys.executable, str(example.relative_to(ROOT))], ROOT, smoke=True)
