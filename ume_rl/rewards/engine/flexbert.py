"""lobster FlexBERT internals the scorer relies on: layouts, padded twins, the last-layer shortcut, dtypes.

Nothing here is specific to scoring; :class:`ume_rl.rewards.engine.ume_scoring.UmeScorer` calls these on ``ume.model``
(the ``FlexBertForMaskedLM``) and its ``.model`` (the ``FlexBertModel`` encoder).

- :func:`encoder_layout` names how a FlexBERT runs a batch: ``padded``, ``padded_fa``, ``varlen`` or
  ``unpadded_sdpa``.
- :func:`padded_twin` builds a padded SDPA encoder sharing the weight tensors of any FlexBERT encoder
  (used where the model's own layout would not be exact).
- :func:`last_layer_shortcut_applies` / :func:`hidden_at_positions` compute the final hidden state at one
  position per row without running the last layer at every position (masked scoring).
- :func:`resolve_dtype` turns ``None``/``"fp32"``/``"bf16"``/``"fp16"`` (or torch dtypes) into the
  autocast dtype, ``None`` meaning the model's own precision.
- :func:`sdpa_backends` restricts which kernels PyTorch's ``scaled_dot_product_attention`` may pick
  (``"auto"``: on CUDA every backend but cuDNN's, see below).

Why ``"auto"`` leaves cuDNN attention out on CUDA (a hypothesis that ``benchmarks/gpu_check.sh`` checks with a
profiler table): since PyTorch 2.10 (effective in 2.11, whose bundled cuDNN passes the version gate of
``check_prefer_cudnn_attention``), SDPA prefers the cuDNN backend on Hopper and Blackwell. cuDNN finalises an
execution plan per new (batch, heads, lengths) shape, reported at 55-400 ms each (flashinfer#5245,
sglang#4650, torchtune#1652). The scorer's length-bucketed batches have new shapes on every call, so that cost
would land on every fresh batch (README, "Fresh batches"). Flash attention (no
mask) and memory-efficient attention (key-padding mask, fp32) have no per-shape cost.

>>> resolve_dtype("bf16")
torch.bfloat16
>>> resolve_dtype("fp32") is None
True
"""

from __future__ import annotations

import contextlib
import copy

import torch

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
_DTYPES.update({"fp32": None, "float32": None})


def resolve_dtype(dtype) -> torch.dtype | None:
    """The autocast dtype for ``dtype`` (``None`` for float32: no autocast); ``ValueError`` if unsupported."""
    if dtype is None or dtype == torch.float32:
        return None
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise ValueError(f"dtype must be None, 'fp32', 'bf16' or 'fp16', got {dtype!r}")
        return _DTYPES[dtype.lower()]
    if dtype in (torch.bfloat16, torch.float16):
        return dtype
    raise ValueError(f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")


def encoder_layout(flex) -> str:
    """``padded`` (SDPA + key mask), ``padded_fa`` (flash-attn, pads attended), ``varlen`` (unpadded +
    flash-attn) or ``unpadded_sdpa`` (unpadded without flash-attn: mixes the rows of a forward).

    ``flex`` is a lobster ``FlexBertForMaskedLM`` (``ume.model``).
    """
    uses_fa = any(getattr(layer.attn, "use_fa2", False) for layer in flex.model.encoder.layers)
    if flex.config.padding == "padded":
        return "padded_fa" if uses_fa else "padded"
    return "varlen" if uses_fa else "unpadded_sdpa"


def padded_twin(flex_model: torch.nn.Module, config, key_mask: bool = True) -> torch.nn.Module:
    """A padded-layout SDPA ``FlexBertModel`` sharing ``flex_model``'s weight tensors (no copy), in eval mode.

    ``config`` is the FlexBERT config of ``flex_model``; ``key_mask=False`` builds a twin that passes no
    attention mask to SDPA (exact only for batches without padding).

    Used for unpadded checkpoints without flash-attn, whose SDPA path mixes the sequences of a forward.
    """
    from lobster.model.modern_bert._model import FlexBertModel

    config = copy.deepcopy(config)
    config.padding = "padded"
    config.use_fa2 = False
    config.use_sdpa_attn_mask = key_mask
    with torch.device("meta"):
        twin = FlexBertModel(config)
    twin.load_state_dict(flex_model.state_dict(), strict=True, assign=True)
    return twin.eval()


def last_layer_shortcut_applies(model: torch.nn.Module) -> bool:
    """True for a padded SDPA pre-norm FlexBERT (lobster's CPU layout), where :func:`hidden_at_positions`
    reproduces the last layer at a few positions per row."""
    from lobster.model.modern_bert._attention import FlexBertPaddedAttention
    from lobster.model.modern_bert._layers import FlexBertPaddedEncoder, FlexBertPaddedPreNormLayer

    last = model.encoder.layers[-1]
    return (
        type(model.encoder) is FlexBertPaddedEncoder
        and type(last) is FlexBertPaddedPreNormLayer
        and type(last.attn) is FlexBertPaddedAttention
        and not last.attn.use_fa2
        and last.attn.sliding_window == (-1, -1)
        and last.attn.p_dropout == 0.0
    )


def hidden_at_positions(model, input_ids, attention_mask, positions) -> torch.Tensor:
    """``model(input_ids, attention_mask)[arange(B), positions]`` without computing the last layer elsewhere.

    Every layer but the last runs as usual; the last needs keys and values at every position but queries,
    attention output and MLP only at ``positions``: one per row, shape ``(B,)``, giving ``(B, hidden)``; or
    ``K`` per row, shape ``(B, K)``, giving ``(B, K, hidden)``. Same operations as lobster's
    ``FlexBertPaddedPreNormLayer`` with ``FlexBertPaddedAttention`` (SDPA), restricted to those positions.
    """
    hidden = model.embeddings(input_ids, None)
    layers = model.encoder.layers
    for layer in layers[:-1]:
        hidden = layer(hidden, attn_mask=attention_mask)
    last = layers[-1]
    attn = last.attn
    batch, length, _ = hidden.shape
    heads, head_dim, dim = attn.num_attention_heads, attn.attn_head_size, attn.all_head_size
    one = positions.dim() == 1
    positions = positions.view(batch, -1)  # (B, K)
    queries = positions.shape[1]
    rows = torch.arange(batch, device=hidden.device)[:, None]
    normed = last.attn_norm(hidden)
    weight, bias = attn.Wqkv.weight, attn.Wqkv.bias
    q = torch.nn.functional.linear(
        normed[rows, positions], weight[:dim], None if bias is None else bias[:dim]
    )  # (B, K, dim)
    kv = torch.nn.functional.linear(normed, weight[dim:], None if bias is None else bias[dim:])
    k, v = kv.view(batch, length, 2, heads, head_dim).transpose(3, 1).unbind(dim=2)  # (B, H, L, hd)
    q = q.view(batch, queries, heads, head_dim).transpose(1, 2)  # (B, H, K, hd)
    key_mask = attention_mask[:, None, None, :length].to(torch.bool) if attn.use_sdpa_attn_mask else None
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # (B, H, K, hd)
    out = out.transpose(1, 2).reshape(batch, queries, dim)
    attn_out = hidden[rows, positions] + attn.out_drop(attn.Wo(out))
    out = attn_out + last.mlp(last.mlp_norm(attn_out))
    out = model.final_norm(out) if model.final_norm is not None else out
    return out[:, 0] if one else out


_SDPA_NAMES = ("flash", "efficient", "cudnn", "math")


def sdpa_backends(device: torch.device, backends="auto"):
    """A context manager restricting SDPA to ``backends`` on ``device`` (a no-op where nothing is restricted).

    ``backends``: ``"auto"`` (CUDA: flash, efficient, math, i.e. no cuDNN; elsewhere PyTorch's choice),
    ``None`` (PyTorch's choice everywhere), or names among ``"flash"``, ``"efficient"``, ``"cudnn"``, ``"math"``.

    >>> with sdpa_backends(torch.device("cpu")):
    ...     pass
    """
    if backends == "auto":
        backends = ("flash", "efficient", "math") if device.type == "cuda" else None
    if backends is None:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    unknown = [b for b in backends if b not in _SDPA_NAMES]
    if unknown or not backends:
        raise ValueError(f"SDPA backends must be names among {_SDPA_NAMES}, 'auto' or None, got {backends!r}")
    table = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    return sdpa_kernel([table[b] for b in backends])
