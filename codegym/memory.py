"""Memory-saving building blocks for training large causal LMs: the decoder/head split and
gradient checkpointing that leaves dropout off.

* :func:`decoder_and_head` splits a causal LM into its decoder stack (final hidden states) and
  its output projection, so log-probs can be computed from the hidden states of the
  positions that need them, a chunk at a time
  (:func:`codegym.lm.token_logprobs_chunked`), never as a ``[batch, seq, vocab]`` tensor.
* :func:`enable_checkpointing` turns on transformers' gradient (activation) checkpointing
  (non-reentrant: frozen inputs and LoRA work), and :func:`checkpointed` applies it inside a
  block. transformers only checkpoints a layer whose module is in training mode, which would
  also switch dropout on; RL trainers keep their models in eval mode (the log-probs of an
  update must be those of the rollout), so :func:`checkpointed` flags only the decoder
  layers themselves as training (their children, dropout included, stay in eval mode) for
  the duration of the block, and only while autograd records.

Checkpointed layers drop the KV cache in a recorded forward (a replayed layer would append
to it twice), so a forward that continues from a cache (PPO's shared-prompt encoding) cannot
be checkpointed: :func:`checkpointing_active` lets callers refuse that combination.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

#: Config attributes of models whose logits are not ``head(hidden)`` (a soft cap or scale).
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling")


def decoder_and_head(lm: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(decoder, head)`` of a transformers causal LM: ``decoder(...).last_hidden_state``
    followed by ``head`` gives the model's logits.

    Raises:
        ValueError: The model transforms its logits beyond the head (soft-capping, scaling),
            or has no output projection.
    """
    config = getattr(lm, "config", None)
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value not in (None, 1, 1.0):
            raise ValueError(
                f"{type(lm).__name__} applies {name}={value} to its logits: computing log-probs from "
                "hidden states would skip it; turn chunked log-probs off (logprob_chunk=0, critic='separate')"
            )
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    decoder = getattr(lm, "base_model", None)
    if head is None or decoder is None or decoder is lm:
        raise ValueError(f"{type(lm).__name__} is not a causal LM with a decoder and an output head")
    return decoder, head


def _layers(model: nn.Module) -> list[nn.Module]:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def enable_checkpointing(model: nn.Module) -> nn.Module:
    """Turn on gradient checkpointing of every decoder layer of a transformers model
    (non-reentrant); it takes effect inside :func:`checkpointed`. Returns ``model``."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise ValueError(f"{type(model).__name__} does not support gradient checkpointing")
    return model


def disable_checkpointing(model: nn.Module) -> nn.Module:
    """Turn gradient checkpointing off again. Returns ``model``."""
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
    return model


def checkpointing_active(model: nn.Module) -> bool:
    """Whether some layer of ``model`` has gradient checkpointing turned on."""
    return any(getattr(m, "gradient_checkpointing", False) for m in _layers(model))


@contextlib.contextmanager
def checkpointed(model: nn.Module) -> Iterator[None]:
    """Inside the block, recorded forwards of ``model`` checkpoint every layer that has
    checkpointing turned on (:func:`enable_checkpointing`); dropout stays as it was. A no-op
    when autograd is off or no layer has checkpointing on."""
    if not torch.is_grad_enabled():
        yield
        return
    flagged = [m for m in _layers(model) if getattr(m, "gradient_checkpointing", False) and not m.training]
    for m in flagged:
        m.training = True  # this module only: its children (attention, dropout) keep their mode
    try:
        yield
    finally:
        for m in flagged:
            m.training = False


def trainable_parameters(model: Any) -> list[nn.Parameter]:
    """The parameters of ``model`` that require gradients."""
    return [p for p in model.parameters() if p.requires_grad]


__all__ = ["checkpointed", "checkpointing_active", "decoder_and_head", "disable_checkpointing", "enable_checkpointing",
           "trainable_parameters"]
