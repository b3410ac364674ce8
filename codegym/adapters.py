"""LoRA adapters (``peft``) on codegym's models: add, switch off, save and load them.

A LoRA adapter trains a few low-rank matrices beside every linear layer of a frozen base
model: for a 7B policy that is ~40 M trained parameters instead of 7 B, so AdamW's state and
the gradients shrink 170-fold, and the base weights can be stored in bf16. With the adapter
switched off the model *is* the base, so PPO's reference policy costs no copy at all
(:func:`adapters_disabled`).

The adapters are injected into the model in place (``peft.inject_adapter_in_model``): the
model keeps its own class and forward signature (a ``Qwen2ForCausalLM`` stays one), so the
samplers, KV caches and PRM code that call it need no change. Directories are written in
peft's own format, so ``peft.PeftModel.from_pretrained(base, DIR)`` loads them too::

    DIR/adapter_config.json        peft's LoraConfig; base_model_name_or_path = the base dir
    DIR/adapter_model.safetensors  the adapter weights (peft's key names)

Every codegym command that takes a model directory takes such an adapter directory as well:
:func:`codegym.lm.load_causal_lm` loads the base named in ``adapter_config.json`` (itself a
checkpoint or another adapter directory) and merges the adapter into it
(:func:`load_merged`).

``peft`` comes with the ``lora`` extra (``pip install 'codegym[lora]'``); :func:`require_peft`
says so when it is missing.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: Key prefix of peft's saved adapter weights (``PeftModel`` -> ``LoraModel`` -> the model).
_PEFT_PREFIX = "base_model.model."


def require_peft() -> Any:
    """The ``peft`` module, or a ``ValueError`` naming the extra that installs it."""
    try:
        import peft
    except ImportError:
        raise ValueError(
            "LoRA needs the peft package, which is not installed: pip install 'codegym[lora]' "
            "(or pip install peft), or train without LoRA (lora_rank=0)"
        ) from None
    return peft


def is_adapter_dir(path: str | Path) -> bool:
    """Whether ``path`` is a peft adapter directory (it holds ``adapter_config.json``)."""
    return (Path(path) / ADAPTER_CONFIG).is_file()


def read_adapter_config(path: str | Path) -> dict[str, Any]:
    """``adapter_config.json`` of an adapter directory, checked to be JSON."""
    p = Path(path) / ADAPTER_CONFIG
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read the adapter config ({exc}); restore it or save the adapter again") from None


def adapter_base(path: str | Path) -> Path:
    """The base model directory of an adapter directory (``base_model_name_or_path``; a
    relative path is read relative to the adapter directory, then to the working directory).

    Raises:
        ValueError: The config names no base, or the base directory does not exist.
    """
    p = Path(path)
    name = read_adapter_config(p).get("base_model_name_or_path")
    if not name:
        raise ValueError(
            f"adapter {str(p)!r} names no base model (base_model_name_or_path in {ADAPTER_CONFIG}); "
            "set it to the directory of the model the adapter was trained on"
        )
    for candidate in (Path(name), p / name):
        if candidate.is_dir():
            return candidate.resolve()
    raise ValueError(
        f"adapter {str(p)!r} was trained on {name!r}, which is not a local directory; put the base "
        f"model there or edit base_model_name_or_path in {p / ADAPTER_CONFIG} (nothing is downloaded)"
    )


def add_lora(
    model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0, targets: str = "all-linear",
    seed: int = 0,
) -> nn.Module:
    """Inject rank-``rank`` LoRA adapters into ``model`` in place and freeze everything else.

    Args:
        model: A transformers model (causal LM or bare backbone).
        rank: LoRA rank r (>= 1).
        alpha: LoRA scaling numerator (``None``: ``2 * rank``; the update is scaled by alpha / r).
        dropout: Dropout on the adapter's input.
        targets: peft's ``target_modules``: ``"all-linear"`` (every linear layer but the output
            head) or comma-separated module names (``"q_proj,v_proj"``).
        seed: Seed of the A matrices' init (a private generator: the global RNG is untouched,
            and the same seed gives the same adapter on any device).

    Returns:
        ``model`` (same object, same class), with only the adapter weights trainable; the
        adapter's B matrices start at zero, so the model computes what the base computes.
    """
    peft = require_peft()
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    target: str | list[str] = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    config = peft.LoraConfig(r=int(rank), lora_alpha=float(alpha if alpha else 2 * rank), lora_dropout=float(dropout),
                             target_modules=target, fan_in_fan_out=_uses_conv1d(model))  # fmt: skip
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    try:  # peft draws its own init from the global RNG: fork it (the init is redrawn below)
        with warnings.catch_warnings(), torch.random.fork_rng(devices=devices):
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            peft.inject_adapter_in_model(config, model)
    except ValueError as exc:
        raise ValueError(f"LoRA targets {targets!r} match no layer of {type(model).__name__} ({exc})") from None
    if not has_lora(model):
        raise ValueError(f"LoRA targets {targets!r} match no layer of {type(model).__name__}")
    _adapters_fp32(model)
    _init_lora(model, seed)
    return model


def _adapters_fp32(model: nn.Module) -> None:
    """Keep adapter weights in fp32 whatever the base's dtype (they are trained)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_" in name and param.dtype != torch.float32:
                param.data = param.data.float()


def _init_lora(model: nn.Module, seed: int) -> None:
    """Draw every A matrix as peft does (Kaiming-uniform, bound 1/sqrt(fan_in)) from a private
    CPU generator, and zero every B matrix."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if ".lora_A." in name:
                bound = 1.0 / param.shape[1] ** 0.5
                param.copy_(torch.empty(param.shape).uniform_(-bound, bound, generator=gen))
            elif ".lora_B." in name:
                param.zero_()


def _uses_conv1d(model: nn.Module) -> bool:
    """GPT-2's attention and MLP are ``Conv1D`` layers (weights stored transposed)."""
    return any(type(m).__name__ == "Conv1D" for m in model.modules())


def lora_layers(model: nn.Module) -> list[nn.Module]:
    """The model's peft adapter layers."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return []
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def has_lora(model: nn.Module) -> bool:
    """Whether LoRA adapters are injected into ``model``."""
    return bool(lora_layers(model))


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` as its base inside the block (every adapter switched off), e.g. PPO's
    reference policy from a LoRA policy; the adapters are switched back on after it."""
    layers = lora_layers(model)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def lora_config(model: nn.Module) -> Any:
    """The ``LoraConfig`` injected into ``model`` (targets resolved to module names)."""
    config = getattr(model, "peft_config", None)
    if not config:
        raise ValueError(f"{type(model).__name__} has no LoRA adapter (call add_lora first)")
    return next(iter(config.values()))


def save_adapter(model: nn.Module, out: str | Path, base: str | Path) -> Path:
    """Write the adapter of ``model`` to ``out`` in peft's format, naming ``base`` (stored as
    an absolute path) as the model it applies to."""
    peft = require_peft()
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = lora_config(model)
    config.base_model_name_or_path = str(Path(base).resolve())
    config.save_pretrained(str(out))
    state = peft.get_peft_model_state_dict(model, save_embedding_layers=False)
    save_file({_PEFT_PREFIX + k: v.detach().cpu().contiguous() for k, v in state.items()}, str(out / ADAPTER_WEIGHTS))
    return out


def _adapter_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    weights = path / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ValueError(f"adapter {str(path)!r} has no {ADAPTER_WEIGHTS}; save the adapter again")
    return {k.removeprefix(_PEFT_PREFIX): v for k, v in load_file(str(weights)).items()}


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Inject the adapter saved in ``path`` into ``model`` (its base) and load its weights,
    kept apart from the base and trainable (resume a LoRA run).

    Raises:
        ValueError: The adapter's weights do not fit the model.
    """
    peft = require_peft()
    p = Path(path)
    config = peft.LoraConfig.from_pretrained(str(p))
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with warnings.catch_warnings(), torch.random.fork_rng(devices=devices):
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        peft.inject_adapter_in_model(config, model)
    _adapters_fp32(model)  # the saved weights are fp32 masters: load them without rounding
    result = peft.set_peft_model_state_dict(model, _adapter_weights(p))
    if getattr(result, "unexpected_keys", None):
        raise ValueError(
            f"adapter {str(p)!r} does not fit {type(model).__name__}: weights for unknown layers "
            f"{result.unexpected_keys[:3]}; it was trained on another base model"
        )
    return model


def merge_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """``model`` with the adapter in ``path`` merged into its weights (a plain model again)."""
    peft = require_peft()
    return peft.PeftModel.from_pretrained(model, str(path)).merge_and_unload()


__all__ = [
    "ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "adapter_base", "adapters_disabled", "add_lora", "has_lora",
    "is_adapter_dir", "load_adapter", "lora_config", "lora_layers", "merge_adapter", "read_adapter_config",
    "require_peft", "save_adapter",
]  # fmt: skip
