"""Packing the scorer's work rows into batches: length bucketing, host index arrays, one device copy.

A *work row* is one encoder input: a whole sequence (unmasked scoring) or a copy of it with one residue
masked (masked scoring), given as (sequence index, masked position or -1).

- :func:`plan_batches` buckets rows by length under a padded-token budget;
- :func:`batch_arrays` builds the host-side integer arrays of one batch (padded ids once per sequence,
  which row reads which sequence, which positions are scored, packing for the varlen layout);
- :func:`to_device` moves those arrays to the device (on CUDA one pinned, non-blocking copy).

>>> plan_batches([5, 3, 3, 9], token_budget=10)
[[1, 2], [0], [3]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

HOST_ONLY = ("owner", "max_seqlen", "min_len")
"""Keys of :func:`batch_arrays` that stay on the host (not passed to :func:`to_device`)."""


def plan_batches(
    lengths: Sequence[int], token_budget: int, max_padding: float = 0.25, same_length: bool = False
) -> list[list[int]]:
    """Bucket rows (given their token lengths) into batches of at most ``token_budget`` padded tokens.

    Rows are taken in ascending length (stable), so each batch is padded to its last row. A row joins the
    current batch only if the batch then stays within the budget and at most ``max_padding`` of its padded
    area is padding (length bucketing: a 20-token SMILES is not padded to a 200-token DNA). A row longer
    than the budget gets a batch of its own. ``same_length`` never mixes lengths (no padding at all).

    >>> plan_batches([5, 3, 3, 9], token_budget=10)
    [[1, 2], [0], [3]]
    >>> plan_batches([20, 200, 22], token_budget=1000)
    [[0, 2], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in order:
        length = lengths[i]
        area = (len(current) + 1) * length
        joins = (
            area <= token_budget
            and area - (real + length) <= max_padding * area
            and not (same_length and current and lengths[current[-1]] != length)
        )
        if current and not joins:
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += length
    if current:
        batches.append(current)
    return batches


def batch_arrays(
    token_ids,
    seqs: np.ndarray,
    positions: np.ndarray,
    layout: str,
    pad_token_id: int,
    masked: bool,
    specials: tuple[int, int] = (1, 1),
) -> dict[str, np.ndarray]:
    """Host-side index arrays of one batch; the device expands them into masked copies.

    ``seqs`` / ``positions`` are the batch's work rows (sequence index, masked position); ``masked``
    scores the masked position of each row, otherwise every residue of every row. ``specials`` counts the
    special tokens before and after the residues of every sequence (CLS … EOS: ``(1, 1)``).
    """
    unique, row_local = np.unique(seqs, return_inverse=True)
    lengths = np.array([len(token_ids[i]) for i in unique])
    width = int(lengths.max())
    base = np.full((len(unique), width), pad_token_id, dtype=np.int64)
    for j, i in enumerate(unique):
        base[j, : lengths[j]] = token_ids[i]
    row_len = lengths[row_local]
    if masked:
        sel_row = np.arange(len(seqs))
        sel_pos = positions
    else:
        first, last = specials
        sel_row = np.repeat(np.arange(len(seqs)), row_len - first - last)
        sel_pos = np.concatenate([np.arange(first, length - last) for length in row_len])
    arrays = {
        "base": base,
        "row_local": row_local.astype(np.int64),
        "row_pos": positions.astype(np.int64),
        "sel_row": sel_row.astype(np.int64),
        "sel_pos": sel_pos.astype(np.int64),
        "targets": base[row_local[sel_row], sel_pos],
        "owner": seqs[sel_row],
        "max_seqlen": int(row_len.max()),
        "min_len": int(row_len.min()),
    }
    if layout == "varlen":
        starts = np.concatenate([[0], np.cumsum(row_len)])
        arrays["cu_seqlens"] = starts
        arrays["flat_index"] = np.concatenate([r * width + np.arange(n) for r, n in enumerate(row_len)])
        arrays["position_ids"] = np.concatenate([np.arange(n) for n in row_len])
        arrays["sel_flat"] = starts[:-1][sel_row] + sel_pos
    else:
        arrays["attention_mask"] = (np.arange(width)[None, :] < row_len[:, None]).astype(np.int64)
    return arrays


def to_device(arrays: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Integer host arrays as tensors on ``device``: on CUDA one pinned buffer and one non-blocking copy."""
    if device.type == "cpu":
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in arrays.items()}
    flat = np.concatenate([np.asarray(v, dtype=np.int64).ravel() for v in arrays.values()])
    buffer = torch.from_numpy(flat).pin_memory().to(device, non_blocking=True)
    out, offset = {}, 0
    for key, value in arrays.items():
        out[key] = buffer[offset : offset + value.size].view(value.shape)
        offset += value.size
    return out
