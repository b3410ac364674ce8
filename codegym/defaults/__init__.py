"""The embedded defaults: a small policy and a small PRM shipped inside the package.

``codegym eval --model default``, ``gym.make("CodePRM-v0")`` (its default ``prm="auto"`` on
``pipelines``) and ``--policy default`` / ``--prm default`` / ``--base default`` in the CLI
load these files; nothing is trained or downloaded on first use.

Layout (package data, a few MB)::

    codegym/defaults/policy/      a 2 x 128 GPT-2 + BPE tokenizer (``save_pretrained``): the
                                  ``codegym sft`` defaults, seed 0
    codegym/defaults/prm/         a PRM on that backbone (``codegym.prm`` checkpoint), trained
                                  by ``codegym train-prm`` on binary-search labels of the
                                  policy's own responses (``codegym label``)
    codegym/defaults/prm_heldout.jsonl  held-out labelled responses (validation split) on which
                                  the PRM's documented AUC is measured
    codegym/defaults/manifest.json      how they were built (config, versions, seconds), what
                                  they measure (pass@1 by horizon, PRM AUC) and a SHA-256 per file

Rebuild them with one seeded command (see :mod:`codegym.defaults.build`)::

    codegym defaults build            # SFT -> label -> train-prm -> measure -> export

Both were trained on the ``pipelines`` suite only: on other suites no default PRM applies
(``prm="auto"`` gives no dense reward there; pass ``prm=DIR`` to use your own).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Directory of the shipped files.
DEFAULTS_DIR = Path(__file__).resolve().parent
MANIFEST_NAME = "manifest.json"
POLICY_NAME = "policy"
PRM_NAME = "prm"
HELDOUT_NAME = "prm_heldout.jsonl"
#: Suites the embedded PRM was trained for (``prm="auto"`` attaches it only there).
PRM_SUITES: tuple[str, ...] = ("pipelines",)
#: The value of a ``--model``/``--policy``/``--base``/``--prm`` flag that names an embedded file.
DEFAULT_TOKEN = "default"


def _require(path: Path, what: str) -> Path:
    if not (path / "config.json").is_file():
        raise ValueError(
            f"the embedded default {what} is missing ({path} has no config.json): the package "
            "was installed without its data files; reinstall codegym, or rebuild them with "
            "`codegym defaults build`"
        )
    return path


def policy_dir() -> Path:
    """The embedded default policy (a ``save_pretrained`` causal LM + tokenizer)."""
    return _require(DEFAULTS_DIR / POLICY_NAME, "policy")


def prm_dir() -> Path:
    """The embedded default PRM (a :class:`codegym.prm.ProcessRewardModel` checkpoint)."""
    return _require(DEFAULTS_DIR / PRM_NAME, "PRM")


def heldout_path() -> Path:
    """Held-out labelled responses on which the PRM's documented metrics were measured."""
    return DEFAULTS_DIR / HELDOUT_NAME


def manifest() -> dict[str, Any]:
    """The build manifest (``manifest.json``): config, measured figures, file hashes."""
    path = DEFAULTS_DIR / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"{path} is missing: rebuild the defaults with `codegym defaults build`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt JSON ({exc.msg}); reinstall codegym") from None


def resolve_model(value: str | None, what: str = "policy") -> str | None:
    """``"default"`` -> the embedded policy (``what="policy"``) or PRM (``what="prm"``) dir.

    Any other value is returned unchanged (a checkpoint directory, or ``None``).
    """
    if value != DEFAULT_TOKEN:
        return value
    if what == "prm":
        return str(prm_dir())
    if what == "policy":
        return str(policy_dir())
    raise ValueError(f"what must be 'policy' or 'prm', got {what!r}")


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hash(path: str | Path) -> str:
    """SHA-256 over a checkpoint directory's files (names and contents, sorted), short form.

    Identifies a model in eval provenance: the same files give the same hash wherever
    they are. Sub-directories (e.g. a training ``checkpoint/``) are skipped.
    """
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(root.iterdir()) if root.is_dir() else [root]:
        if p.is_file():
            h.update(p.name.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()[:16]


def verify() -> dict[str, str]:
    """Check every shipped file against the SHA-256 in the manifest.

    Returns:
        ``{relative path: sha256}`` of the verified files.

    Raises:
        ValueError: A file is missing or differs from the one the manifest describes.
    """
    files = manifest().get("files", {})
    if not files:
        raise ValueError(f"{DEFAULTS_DIR / MANIFEST_NAME} lists no files")
    out = {}
    for rel, meta in sorted(files.items()):
        path = DEFAULTS_DIR / rel
        if not path.is_file():
            raise ValueError(f"embedded default file {path} is missing; reinstall codegym")
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise ValueError(
                f"embedded default file {path} differs from the manifest (sha256 {digest[:12]} "
                f"vs {meta['sha256'][:12]}): rebuild with `codegym defaults build` or reinstall"
            )
        out[rel] = digest
    return out


__all__ = [
    "DEFAULTS_DIR",
    "DEFAULT_TOKEN",
    "PRM_SUITES",
    "heldout_path",
    "manifest",
    "policy_dir",
    "prm_dir",
    "resolve_model",
    "sha256_file",
    "tree_hash",
    "verify",
]
