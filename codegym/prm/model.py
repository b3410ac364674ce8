"""``ProcessRewardModel``: a Hugging Face backbone (``AutoModel``) + a scalar head ``score``.

The PRM reads a program tokenised by the rule of :mod:`codegym.tokenization` and outputs one
scalar per token; a line's score is the output at the line's last token. The PPO critic has
the same architecture (backbone + ``score`` head), so initialising the critic from the PRM
("value initialisation") is a plain weight load::

    critic = ProcessRewardModel.from_pretrained(prm_dir)   # backbone + score head, as trained

Checkpoint layout (``save_pretrained(DIR)``): a standard transformers **token-classification**
checkpoint with one label, so any transformers user loads the PRM, head included, with a
stock Auto class::

    from transformers import AutoModelForTokenClassification
    model = AutoModelForTokenClassification.from_pretrained(DIR)   # e.g. GPT2ForTokenClassification
    raw = model(input_ids).logits[..., 0]   # [B, T]: the PRM's head output at every token

``raw`` is the score itself for an ``mse`` PRM and the logit of P(line correct) for a ``bce``
one (score = 2·sigmoid(raw) − 1); ``prm_config.json`` says which. Files::

    DIR/config.json, DIR/model.safetensors   backbone + head (``architectures``:
                                              ``<Model>ForTokenClassification``, ``num_labels`` 1)
    DIR/tokenizer.json, ...                   its tokenizer
    DIR/prm_config.json                       format, objective, hidden size, vocabulary size,
                                              the head's module name and a fingerprint of the
                                              tokenizer's vocabulary
    DIR/README.md                             a model card (written by the trainers)

A third layout (``version`` 3) keeps the backbone elsewhere: ``prm_config.json`` names a
``backbone`` directory (relative to DIR or absolute: a causal LM, a PRM, or a peft adapter
directory), DIR holds the head in ``score_head.safetensors`` and, when the backbone was trained
with LoRA, the adapter in peft's format (``adapter_config.json``, ``adapter_model.safetensors``,
see :mod:`codegym.adapters`). A LoRA-trained PRM or critic is saved this way (megabytes instead
of a copy of the backbone), and so is a PPO critic that shares the policy's backbone
(``backbone: "../policy"``).

``AutoModel.from_pretrained(DIR)`` still gives the bare backbone. Checkpoints in the first
layout (``version`` 1: a bare ``AutoModel`` backbone plus the head in
``score_head.safetensors``) still load; ``save_pretrained`` rewrites them in the new layout.
A backbone type that transformers has no token-classification class for is saved in that
first layout.

``from_pretrained`` refuses a checkpoint whose tokenizer or head does not match the backbone
(another tokenizer copied in, a head of another hidden size, a plain LM directory) with a
``ValueError`` that says what is wrong.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from codegym.adapters import (
    adapters_disabled,
    has_lora,
    is_adapter_dir,
    load_adapter,
    merge_adapter,
    save_adapter,
)
from codegym.lm import (
    check_model_dir,
    fast_activation_kwargs,
    forward_cached,
    load_tokenizer,
    loading,
    quiet_hf,
)
from codegym.memory import checkpointed
from codegym.precision import DTypeLike, check_device, resolve_dtype

PRM_CONFIG_NAME = "prm_config.json"
#: The head of a version-1 checkpoint (read for compatibility; no longer written).
HEAD_WEIGHTS_NAME = "score_head.safetensors"
PRM_FORMAT = "codegym-prm"
#: Current checkpoint layout: a token-classification model with one label.
PRM_VERSION = 2
#: Layout with the backbone in another directory (and maybe a LoRA adapter here).
EXTERNAL_VERSION = 3
#: ``id2label`` of the saved token-classification config.
LABEL_NAME = "line_score"
Objective = Literal["mse", "bce"]
OBJECTIVES = ("mse", "bce")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of the tokenizer's vocabulary (token -> id), to detect a swapped tokenizer."""
    vocab = tokenizer.get_vocab()
    blob = json.dumps(sorted(vocab.items(), key=lambda kv: kv[1]), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class ProcessRewardModel(nn.Module):
    """Backbone + scalar ``score`` head, one output per token.

    Args:
        backbone: A transformer returning ``last_hidden_state`` (``AutoModel``).
        tokenizer: Its tokenizer (saved alongside).
        objective: ``"mse"`` (regression to labels in [-1, 1]; the score is the raw output) or
            ``"bce"`` (the output is a logit of P(line correct); the score is
            ``2 * sigmoid(logit) - 1``, on the same [-1, 1] scale as the labels).
        seed: Seed of the head's init (a private generator).

    The ``score`` head is created in the backbone's dtype (a bf16 backbone gets a bf16 head),
    and :meth:`forward` casts the hidden states to the head's dtype explicitly, so a head
    kept in fp32 on a bf16 backbone (e.g. by :class:`codegym.precision.MixedPrecision`) works
    too.
    """

    def __init__(
        self, backbone: nn.Module, tokenizer: Any, objective: Objective = "mse", seed: int = 0
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.objective: Objective = objective
        #: Directory the backbone was loaded from (the base a LoRA adapter is saved against).
        self.source: Path | None = None
        hidden = int(backbone.config.hidden_size)
        dtype = next(backbone.parameters()).dtype
        self.score = nn.Linear(hidden, 1, dtype=dtype)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            self.score.weight.copy_(torch.randn(1, hidden, generator=gen) * (0.5 / hidden**0.5))
            self.score.bias.zero_()

    # ------------------------------------------------------------------ build
    @classmethod
    def from_base(
        cls,
        base: str | Path,
        objective: Objective = "mse",
        seed: int = 0,
        device: str | torch.device = "cpu",
        dtype: DTypeLike | None = "fp32",
        device_flag: str = "--device",
    ) -> ProcessRewardModel:
        """A PRM with the backbone of a causal-LM checkpoint (e.g. the SFT policy) and a new head.

        Args:
            base: A causal-LM (or PRM) checkpoint directory.
            objective: ``"mse"`` or ``"bce"`` (see the class).
            seed: Seed of the new head.
            device: Where the PRM goes (checked before loading).
            dtype: Precision of backbone and head: ``"fp32"`` (default), ``"bf16"``,
                ``"fp16"`` or ``"auto"`` (the checkpoint's).
            device_flag: The option that set ``device``, named in device errors.
        """
        from transformers import AutoModel

        dev = check_device(device, flag=device_flag)
        torch_dtype = resolve_dtype(dtype)
        path = check_model_dir(base, "base model")
        if (path / PRM_CONFIG_NAME).is_file():
            prm = cls.from_pretrained(path, device=dev, dtype=dtype)
            if prm.objective != objective:
                raise ValueError(
                    f"base {str(path)!r} is a PRM trained with objective {prm.objective!r}; "
                    f"pass --objective {prm.objective} or start from a language model"
                )
            return prm
        if is_adapter_dir(path) and not (path / "config.json").is_file():  # a LoRA causal LM
            backbone, tok = _load_backbone(path, dtype)
        else:
            tok = load_tokenizer(path)
            with loading(path, "base model"):
                backbone = AutoModel.from_pretrained(str(path), dtype=torch_dtype, **fast_activation_kwargs(path))
        _check_vocab(backbone, tok, path)
        prm = cls(backbone, tok, objective=objective, seed=seed).to(dev)
        prm.source = path
        return prm

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, Any]:
        """Raw head outputs for every token.

        Args:
            input_ids: [B, T] token ids.
            attention_mask: [B, S + T] (S = cached length) 1 for real tokens.
            position_ids: [B, T] positions (default: the backbone's).
            cache: A KV cache from a previous call (continues that sequence).
            use_cache: Return the updated cache.

        Returns:
            ``(raw [B, T], cache or None)``; ``raw`` is a score (mse) or a logit (bce).
        """
        hidden, new_cache = self.features(input_ids, attention_mask, position_ids, cache, use_cache)
        raw = self.score(hidden.to(self.score.weight.dtype)).squeeze(-1)  # [B, T]
        return raw, new_cache

    def features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, Any]:
        """The backbone's final hidden states ``[B, T, H]`` (and the cache), as :meth:`forward`
        reads them (same arguments)."""
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        with checkpointed(self.backbone):
            if use_cache or cache is not None:
                out, new_cache = forward_cached(self.backbone, cache, **inputs)
            else:
                out, new_cache = self.backbone(**inputs, use_cache=False), None
        return out.last_hidden_state, new_cache

    def adapters_off(self, head: tuple[torch.Tensor, torch.Tensor] | None = None) -> ProcessRewardModel:
        """This PRM as it was before LoRA training, without a copy: a PRM sharing this one's
        backbone that runs it with the adapters switched off, with a frozen copy of the head
        (or ``head`` = ``(weight, bias)``, e.g. :func:`read_prm_head` of the original PRM).
        For scoring only (no gradients)."""
        return _AdaptersOffPRM(self, head)

    def to_score(self, raw: torch.Tensor) -> torch.Tensor:
        """Map head outputs to scores on the label scale [-1, 1] (identity for mse)."""
        if self.objective == "bce":
            return 2.0 * torch.sigmoid(raw) - 1.0
        return raw

    # ----------------------------------------------------------------- saving
    def to_token_classification(self) -> Any:
        """This PRM as a transformers ``<Model>ForTokenClassification`` with one label.

        The returned model *shares* this PRM's modules (backbone and ``score`` head; nothing
        is copied): its ``logits[..., 0]`` are this PRM's raw head outputs.

        Raises:
            ValueError: transformers has no token-classification class for the backbone type.
        """
        from transformers import AutoModelForTokenClassification

        cfg = copy.deepcopy(self.backbone.config)
        cfg.num_labels = 1
        cfg.id2label = {0: LABEL_NAME}
        cfg.label2id = {LABEL_NAME: 0}
        cfg.architectures = None
        try:
            with torch.device("meta"):  # the shell only: its modules are replaced below
                model = AutoModelForTokenClassification.from_config(cfg)
        except ValueError as e:
            raise ValueError(
                f"transformers has no token-classification model for backbone type "
                f"{cfg.model_type!r} ({e})"
            ) from e
        setattr(model, model.base_model_prefix, self.backbone)
        setattr(model, _head_name(model), self.score)
        return model

    def save_pretrained(self, out: str | Path) -> Path:
        """Save the PRM (token-classification checkpoint), tokenizer and ``prm_config.json``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if has_lora(self.backbone):
            if self.source is None:
                raise ValueError("this PRM's backbone has a LoRA adapter but no source directory to save it against")
            save_adapter(self.backbone, out, self.source)
            return save_prm_head(out, self.score.weight, self.score.bias, self.objective, self.tokenizer, self.source)
        try:
            model = self.to_token_classification()
        except ValueError:
            model = None
        meta: dict[str, Any] = {
            "format": PRM_FORMAT,
            "version": PRM_VERSION,
            "head": "score",
            "objective": self.objective,
            "hidden_size": int(self.score.in_features),
            "vocab_size": len(self.tokenizer),
            "tokenizer_sha256": tokenizer_fingerprint(self.tokenizer),
            "tokenisation_rule": "tok(prompt) + sum(tok(line + '\\n')); score at each line's last token",
        }
        if model is not None:
            with quiet_hf():
                model.save_pretrained(out)
            meta["head_module"] = _head_name(model)
            meta["auto_class"] = "AutoModelForTokenClassification"
            (out / HEAD_WEIGHTS_NAME).unlink(missing_ok=True)  # a stale version-1 head
        else:  # no token-classification class for this backbone: the version-1 layout
            from safetensors.torch import save_file

            with quiet_hf():
                self.backbone.save_pretrained(out)
            save_file(
                {
                    "weight": self.score.weight.detach().cpu().contiguous(),
                    "bias": self.score.bias.detach().cpu().contiguous(),
                },
                str(out / HEAD_WEIGHTS_NAME),
            )
            meta["version"] = 1
        with quiet_hf():
            self.tokenizer.save_pretrained(out)
        (out / PRM_CONFIG_NAME).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: DTypeLike | None = "fp32",
        device_flag: str = "--device",
        adapter: Literal["merge", "train"] = "merge",
    ) -> ProcessRewardModel:
        """Load a checkpoint written by :meth:`save_pretrained` (eval mode, on ``device``).

        ``dtype`` is the precision of backbone and head (``"fp32"`` default, ``"bf16"``,
        ``"fp16"``, ``"auto"`` = the checkpoint's); ``device`` is checked before loading
        (``device_flag`` names the option in the error). A LoRA adapter saved with the PRM
        (version-3 layout) is merged into the backbone (``adapter="merge"``) or kept apart and
        trainable (``"train"``: resume LoRA training).

        Both layouts load: the current token-classification checkpoint and the version-1
        layout (bare backbone + ``score_head.safetensors``). A token-classification checkpoint
        that codegym did not write (no ``prm_config.json``, e.g. the output of TRL's
        ``PRMTrainer``) goes to :meth:`from_token_classification`.

        Raises:
            ValueError: Missing files, a tokenizer that is not the one the PRM was trained
                with, or a head that does not fit the backbone.
        """
        dev = check_device(device, flag=device_flag)
        torch_dtype = resolve_dtype(dtype)
        p = check_model_dir(path, "PRM")
        cfg_path = p / PRM_CONFIG_NAME
        if not cfg_path.is_file() and _is_token_classifier(p):
            return cls.from_token_classification(p, device=dev, dtype=dtype)
        if not cfg_path.is_file():
            raise ValueError(
                f"{str(p)!r} is not a PRM checkpoint (no {PRM_CONFIG_NAME}); train one with "
                "`codegym train-prm --base MODEL_DIR --out DIR`, or use it as --base"
            )
        meta = _read_prm_config(cfg_path)
        tok = load_tokenizer(p)
        _check_tokenizer(tok, meta, p)
        source: Path | None = p
        if meta.get("version", 1) == EXTERNAL_VERSION:
            backbone, w, b, source = _load_v3(p, meta, dtype, adapter)
        else:
            with loading(p, "PRM"):
                if meta.get("version", 1) == 1:
                    backbone, w, b = _load_v1(p, torch_dtype)
                else:
                    backbone, w, b = _load_v2(p, torch_dtype)
        _check_vocab(backbone, tok, p)
        _check_head(backbone, w, b, p)
        model = cls(backbone, tok, objective=meta.get("objective", "mse"))
        with torch.no_grad():
            model.score.weight.copy_(w)
            model.score.bias.copy_(b)
        model.source = source
        model.to(dev)
        model.eval()
        return model

    @classmethod
    def from_token_classification(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: DTypeLike | None = "fp32",
        device_flag: str = "--device",
    ) -> ProcessRewardModel:
        """A PRM from any transformers token-classification checkpoint with 1 or 2 labels,
        e.g. one trained by TRL's ``PRMTrainer`` on ``codegym label --format trl`` rows.

        One label: the output is the score (``objective="mse"``). Two labels (TRL's
        false/true classes): the head becomes ``logit_true − logit_false`` and
        ``objective="bce"``, so a line's score ``2·sigmoid − 1`` is P(true) − P(false). The
        score is read at each line's last token, where TRL puts a step's label when its
        ``step_separator`` is ``"\\n"``.

        Raises:
            ValueError: Not a token-classification checkpoint, another number of labels, or
                a tokenizer that does not fit the model.
        """
        from transformers import AutoConfig, AutoModelForTokenClassification

        dev = check_device(device, flag=device_flag)
        torch_dtype = resolve_dtype(dtype)
        p = check_model_dir(path, "PRM")
        if not _is_token_classifier(p):
            raise ValueError(f"{str(p)!r} is not a token-classification checkpoint (config.json architectures)")
        n = int(getattr(AutoConfig.from_pretrained(str(p)), "num_labels", 0))
        if n not in (1, 2):
            raise ValueError(
                f"{str(p)!r} has {n} labels; a PRM needs 1 (a score) or 2 (TRL's false/true)"
            )
        tok = load_tokenizer(p)
        with loading(p, "PRM"):
            tc = AutoModelForTokenClassification.from_pretrained(
                str(p), dtype=torch_dtype, **fast_activation_kwargs(p)
            )
        head = getattr(tc, _head_name(tc))
        w = head.weight.detach()
        b = head.bias.detach() if head.bias is not None else torch.zeros(n)
        backbone = tc.base_model
        _check_vocab(backbone, tok, p)
        model = cls(backbone, tok, objective="mse" if n == 1 else "bce")
        with torch.no_grad():
            model.score.weight.copy_(w if n == 1 else (w[1] - w[0])[None, :])
            model.score.bias.copy_(b if n == 1 else (b[1] - b[0])[None])
        model.to(dev)
        model.eval()
        return model


class _AdaptersOffPRM(ProcessRewardModel):
    """See :meth:`ProcessRewardModel.adapters_off`."""

    def __init__(self, prm: ProcessRewardModel, head: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        nn.Module.__init__(self)
        self.backbone = prm.backbone
        self.tokenizer = prm.tokenizer
        self.objective = prm.objective
        self.source = prm.source
        self.score = copy.deepcopy(prm.score).requires_grad_(False)
        if head is not None:
            with torch.no_grad():
                self.score.weight.copy_(head[0])
                self.score.bias.copy_(head[1])

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
        with torch.no_grad(), adapters_disabled(self.backbone):
            return super().forward(*args, **kwargs)


def save_prm_head(
    out: str | Path, weight: torch.Tensor, bias: torch.Tensor, objective: str, tokenizer: Any, backbone: str | Path
) -> Path:
    """Write a version-3 PRM: this head, the tokenizer, and ``backbone`` named as the directory
    the backbone loads from (kept relative when given relative, e.g. ``"../policy"``: the PRM
    directory and its backbone then move together)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"weight": weight.detach().float().cpu().reshape(1, -1).contiguous(),
               "bias": bias.detach().float().cpu().reshape(1).contiguous()}, str(out / HEAD_WEIGHTS_NAME))  # fmt: skip
    with quiet_hf():
        tokenizer.save_pretrained(out)
    meta = {
        "format": PRM_FORMAT, "version": EXTERNAL_VERSION, "head": "score", "objective": objective,
        "hidden_size": int(weight.numel()), "vocab_size": len(tokenizer),
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
        "backbone": str(backbone) if not Path(backbone).is_absolute() else str(Path(backbone).resolve()),
        "tokenisation_rule": "tok(prompt) + sum(tok(line + '\\n')); score at each line's last token",
    }  # fmt: skip
    (out / PRM_CONFIG_NAME).write_text(json.dumps(meta, indent=2))
    return out


def read_prm_head(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(weight [1, H], bias [1], objective)`` of a PRM checkpoint's ``score`` head, read from
    its files without loading the backbone."""
    from safetensors import safe_open

    p = check_model_dir(path, "PRM")
    cfg_path = p / PRM_CONFIG_NAME
    if not cfg_path.is_file():
        raise ValueError(f"{str(p)!r} is not a codegym PRM checkpoint (no {PRM_CONFIG_NAME})")
    meta = _read_prm_config(cfg_path)
    if meta.get("version", 1) != PRM_VERSION:
        files, names = [p / HEAD_WEIGHTS_NAME], ("weight", "bias")
    else:
        head = meta.get("head_module", "score")
        names = (f"{head}.weight", f"{head}.bias")
        index = p / "model.safetensors.index.json"
        shards = json.loads(index.read_text())["weight_map"] if index.is_file() else {}
        files = [p / shards.get(names[0], "model.safetensors")]
    with safe_open(str(files[0]), framework="pt") as f:
        keys = set(f.keys())
        if names[0] not in keys or names[1] not in keys:
            raise ValueError(f"PRM {str(p)!r}: no head weights {names} in {files[0].name}")
        return f.get_tensor(names[0]).float(), f.get_tensor(names[1]).float(), meta.get("objective", "mse")


def _load_backbone(path: Path, dtype: DTypeLike | None) -> tuple[nn.Module, Any]:
    """``(backbone, tokenizer)`` from a causal LM, a PRM or a LoRA adapter directory (merged)."""
    from transformers import AutoModel

    if (path / PRM_CONFIG_NAME).is_file():
        prm = ProcessRewardModel.from_pretrained(path, dtype=dtype)
        return prm.backbone, prm.tokenizer
    if is_adapter_dir(path) and not (path / "config.json").is_file():
        from codegym.lm import load_causal_lm

        lm, tok = load_causal_lm(path, dtype=dtype)
        return lm.base_model, tok
    tok = load_tokenizer(path)
    with loading(path, "backbone"):
        backbone = AutoModel.from_pretrained(str(path), dtype=resolve_dtype(dtype), **fast_activation_kwargs(path))
    return backbone, tok


def _load_v3(
    p: Path, meta: dict[str, Any], dtype: DTypeLike | None, adapter: str
) -> tuple[nn.Module, torch.Tensor | None, torch.Tensor | None, Path]:
    """Version-3 layout: the backbone from the directory ``meta["backbone"]`` names, this
    directory's LoRA adapter (if any) merged or kept trainable, the head here."""
    from safetensors.torch import load_file

    name = Path(meta["backbone"])
    base = name if name.is_absolute() else (p / name)
    if not base.is_dir():
        raise ValueError(
            f"PRM {str(p)!r} reads its backbone from {str(base)!r}, which does not exist; keep the "
            f"PRM next to that directory or edit 'backbone' in {p / PRM_CONFIG_NAME}"
        )
    backbone, _ = _load_backbone(check_model_dir(base, "PRM backbone"), dtype)
    if is_adapter_dir(p):
        with loading(p, "PRM adapter"):
            backbone = load_adapter(backbone, p) if adapter == "train" else merge_adapter(backbone, p)
    head_path = p / HEAD_WEIGHTS_NAME
    if not head_path.is_file():
        raise ValueError(f"PRM {str(p)!r} has no head weights ({HEAD_WEIGHTS_NAME})")
    head = load_file(str(head_path))
    return backbone, head.get("weight"), head.get("bias"), base.resolve()


def _is_token_classifier(p: Path) -> bool:
    try:
        arch = json.loads((p / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return False
    return any(str(a).endswith("ForTokenClassification") for a in arch)


def _head_name(model: nn.Module) -> str:
    """Attribute name of a token-classification model's head (``classifier``, ``score``, ...):
    its only direct child that is a ``Linear`` with ``num_labels`` outputs."""
    n = int(model.config.num_labels)
    names = [
        name for name, child in model.named_children()
        if isinstance(child, nn.Linear) and child.out_features == n
    ]  # fmt: skip
    if len(names) != 1:
        raise ValueError(
            f"cannot tell the head of {type(model).__name__} (linear children with {n} outputs: "
            f"{names})"
        )
    return names[0]


def _load_v1(p: Path, dtype: Any) -> tuple[nn.Module, torch.Tensor | None, torch.Tensor | None]:
    """Version-1 layout: a bare ``AutoModel`` backbone and ``score_head.safetensors``."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    head_path = p / HEAD_WEIGHTS_NAME
    if not head_path.is_file():
        raise ValueError(f"PRM {str(p)!r} has no head weights ({HEAD_WEIGHTS_NAME})")
    backbone = AutoModel.from_pretrained(str(p), dtype=dtype, **fast_activation_kwargs(p))
    head = load_file(str(head_path))
    return backbone, head.get("weight"), head.get("bias")


def _load_v2(p: Path, dtype: Any) -> tuple[nn.Module, torch.Tensor | None, torch.Tensor | None]:
    """Current layout: ``AutoModelForTokenClassification`` with one label."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    cfg = AutoConfig.from_pretrained(str(p))
    if int(getattr(cfg, "num_labels", 0)) != 1:
        raise ValueError(
            f"PRM {str(p)!r}: config.json has num_labels={getattr(cfg, 'num_labels', None)}, "
            "expected 1 (the scalar score head); the directory holds another model"
        )
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            str(p), dtype=dtype, **fast_activation_kwargs(p)
        )
    except (RuntimeError, OSError, ValueError) as e:
        raise ValueError(
            f"PRM {str(p)!r}: cannot load the token-classification checkpoint ({e}); the "
            "score head and backbone do not belong together or a weights file is damaged"
        ) from e
    head = getattr(model, _head_name(model))
    backbone = model.base_model
    return backbone, head.weight.detach(), head.bias.detach() if head.bias is not None else None


def _read_prm_config(cfg_path: Path) -> dict[str, Any]:
    """``prm_config.json``, checked: a known format, version and objective."""
    try:
        meta = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: corrupt JSON ({e})") from e
    if meta.get("format") != PRM_FORMAT or meta.get("head") != "score":
        raise ValueError(f"{cfg_path}: unknown PRM format {meta.get('format')!r}")
    version = meta.get("version", 1)
    if version not in (1, PRM_VERSION, EXTERNAL_VERSION):
        raise ValueError(
            f"{cfg_path}: PRM checkpoint version {version!r} is newer than this codegym "
            f"reads (1, {PRM_VERSION} or {EXTERNAL_VERSION}); upgrade codegym"
        )
    if version == EXTERNAL_VERSION and not meta.get("backbone"):
        raise ValueError(f"{cfg_path}: a version-{EXTERNAL_VERSION} PRM must name its backbone directory")
    objective = meta.get("objective", "mse")
    if objective not in OBJECTIVES:
        raise ValueError(f"{cfg_path}: unknown objective {objective!r}")
    return meta


def _check_tokenizer(tok: Any, meta: dict[str, Any], p: Path) -> None:
    """The directory's tokenizer is the one the PRM was trained with."""
    if len(tok) != meta.get("vocab_size") or tokenizer_fingerprint(tok) != meta.get(
        "tokenizer_sha256"
    ):
        raise ValueError(
            f"PRM {str(p)!r}: the tokenizer in the directory ({len(tok)} tokens) is not the "
            f"one the PRM was trained with ({meta.get('vocab_size')} tokens, fingerprint "
            f"{str(meta.get('tokenizer_sha256'))[:12]}); restore the original tokenizer files"
        )


def _check_head(backbone: Any, w: Any, b: Any, p: Path) -> None:
    """The score head's weight is [1, hidden] and its bias [1] for this backbone."""
    hidden = int(backbone.config.hidden_size)
    if w is None or b is None or tuple(w.shape) != (1, hidden) or tuple(b.shape) != (1,):
        got = None if w is None else tuple(w.shape)
        raise ValueError(
            f"PRM {str(p)!r}: score head has weight shape {got} but the backbone's hidden "
            f"size is {hidden} (expected (1, {hidden})): head and backbone do not belong together"
        )


def _check_vocab(backbone: nn.Module, tok: Any, path: Path) -> None:
    n_emb = backbone.get_input_embeddings().num_embeddings
    if n_emb < len(tok):
        raise ValueError(
            f"{str(path)!r}: tokenizer has {len(tok)} tokens but the backbone's embedding has "
            f"{n_emb}: tokenizer and model do not belong together"
        )
