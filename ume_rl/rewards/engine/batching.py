"""Packing the scorer's work rows into batches: length bucketing, host index arrays, one device copy.

A *work row* is one encoder input: a whole sequence (unmasked scoring), a copy of it with one residue
masked (masked scoring), or with a few spaced residues masked (spaced scoring, :func:`spaced_rows`), given as
(sequence index, first masked position or -1).

- :func:`plan_batches` buckets rows by length under a padded-token budget;
- :func:`batch_arrays` builds the host-side integer arrays of one batch (padded ids once per sequence,
  which row reads which sequence, which positions are scored, packing for the varlen layout);
- :func:`to_device` moves those arrays to the device (on CUDA one pinned, non-blocking copy);
- :class:`ShapeLadder` (optional) rounds each batch's padded length and row count up to a small fixed set,
  so that successive calls reuse the same (rows, length) shapes: on CUDA anything that is paid once per new
  shape (an attention execution plan, a new allocator block) is paid during warm-up, not on every call.
  Padding rows repeat the batch's first row and are never scored; padded positions are masked as usual.

>>> plan_batches([5, 3, 3, 9], token_budget=10)
[[1, 2], [0], [3]]
>>> ladder = ShapeLadder.for_max_length(512)
>>> ladder.widths[:8], ladder.width(17), ladder.row_count(5)
((16, 32, 48, 64, 80, 96, 112, 128), 32, 6)
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

HOST_ONLY = ("owner", "max_seqlen", "min_len", "real_rows")
"""Keys of :func:`batch_arrays` that stay on the host (not passed to :func:`to_device`)."""


def _round_up(value: float, step: int) -> int:
    return int(-(-value // step) * step)


@dataclass(frozen=True)
class ShapeLadder:
    """The padded lengths (``widths``) and row counts (``rows``) a batch is rounded up to.

    Widths: multiples of 16 up to 64, then four steps per doubling (x1.19, rounded up to a multiple of 16),
    capped by ``max_length``: 16 widths up to 512, at most ~20% padding per row beyond 64 tokens. Rows: powers
    of two and 1.5 times powers of two (1, 2, 3, 4, 6, 8, 12, ...), at most a third of a batch's rows padding.
    """

    widths: tuple[int, ...]
    rows: tuple[int, ...]

    @classmethod
    def for_max_length(cls, max_length: int, most_rows: int = 1 << 20) -> ShapeLadder:
        widths = {w for w in (16, 32, 48, 64) if w < max_length}
        k = 1
        while (w := _round_up(64 * 2 ** (k / 4), 16)) < max_length:
            widths.add(w)
            k += 1
        widths.add(int(max_length))
        rows, p = set(), 1
        while p <= most_rows:
            rows.update((p, 3 * p // 2) if p > 1 else (1,))
            p *= 2
        return cls(tuple(sorted(widths)), tuple(sorted(rows)))

    def width(self, length: int) -> int:
        """Smallest ladder width >= ``length`` (``length`` itself beyond the ladder)."""
        i = bisect.bisect_left(self.widths, length)
        return self.widths[i] if i < len(self.widths) else int(length)

    def row_count(self, n: int) -> int:
        """Smallest ladder row count >= ``n``."""
        i = bisect.bisect_left(self.rows, n)
        return self.rows[i] if i < len(self.rows) else int(n)

    def max_rows(self, width: int, token_budget: int) -> int:
        """Largest ladder row count whose ``rows * width`` fits ``token_budget`` (at least 1)."""
        i = bisect.bisect_right(self.rows, token_budget // max(width, 1))
        return self.rows[i - 1] if i else 1

    def shapes(self, token_budget: int):
        """Every (width, rows) a batch can take under ``token_budget``: what a warm-up runs."""
        for width in self.widths:
            for rows in self.rows[: self.rows.index(self.max_rows(width, token_budget)) + 1]:
                yield width, rows


def plan_batches(
    lengths: Sequence[int],
    token_budget: int,
    max_padding: float = 0.25,
    same_length: bool = False,
    ladder: ShapeLadder | None = None,
) -> list[list[int]]:
    """Bucket rows (given their token lengths) into batches of at most ``token_budget`` padded tokens.

    Rows are taken in ascending length (stable), so each batch is padded to its last row. A row joins the
    current batch only if the batch then stays within the budget and at most ``max_padding`` of its padded
    area is padding (length bucketing: a 20-token SMILES is not padded to a 200-token DNA). A row longer
    than the budget gets a batch of its own. ``same_length`` never mixes lengths (no padding at all). With a
    ``ladder``, the budget holds for the batch's shape rounded up to the ladder (``max_padding`` still compares
    the true lengths).

    >>> plan_batches([5, 3, 3, 9], token_budget=10)
    [[1, 2], [0], [3]]
    >>> plan_batches([20, 200, 22], token_budget=1000)
    [[0, 2], [1]]
    """
    # Rows of equal length are consecutive in this order; once a row joins, the next rows of its length join
    # too until the batch is full (they add no padding), so the greedy rule runs per run of equal lengths.
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    bounds = [0, *(np.flatnonzero(np.diff(sorted_len)) + 1).tolist(), len(order)] if len(order) else [0]
    batches: list[list[int]] = []
    current: list[np.ndarray] = []
    rows = real = last = 0
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        length = int(sorted_len[start])
        cap = (
            token_budget // length if ladder is None else ladder.max_rows(ladder.width(length), token_budget)
        )
        cap = max(cap, 1)  # a row longer than the budget gets a batch of its own
        k = start
        while k < end:
            area = (rows + 1) * length
            joins = (
                rows + 1 <= cap
                and area - (real + length) <= max_padding * area
                and not (same_length and rows and last != length)
            )
            if rows and not joins:
                batches.append(np.concatenate(current).tolist())
                current, rows, real = [], 0, 0
            take = min(end - k, cap - rows)
            current.append(order[k : k + take])
            rows, real, last, k = rows + take, real + take * length, length, k + take
    if current:
        batches.append(np.concatenate(current).tolist())
    return batches


def spaced_rows(n_residues: Sequence[int], per_row: int, first: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Work rows ``(sequence index, first masked position)`` masking ``per_row`` spaced residues per row.

    A sequence of ``n`` residues gets ``ceil(n / per_row)`` rows, starting at its first ``ceil(n / per_row)``
    residues (``first`` special tokens come before them); :func:`batch_arrays` adds the other positions of each
    row. ``per_row=1`` is exact masked scoring: one row per residue.

    >>> spaced_rows([5, 2], per_row=2)
    (array([0, 0, 0, 1]), array([1, 2, 3, 1]))
    """
    n = np.asarray(n_residues, dtype=np.int64)
    rows = -(-n // per_row)
    seq = np.repeat(np.arange(len(n)), rows)
    pos = first + np.arange(int(rows.sum())) - np.repeat(np.cumsum(rows) - rows, rows)
    return seq, pos


def batch_arrays(
    token_ids,
    seqs: np.ndarray,
    positions: np.ndarray,
    layout: str,
    pad_token_id: int,
    masked: bool,
    specials: tuple[int, int] = (1, 1),
    *,
    width: int | None = None,
    rows: int | None = None,
    per_row: int = 1,
) -> dict[str, np.ndarray]:
    """Host-side index arrays of one batch; the device expands them into masked copies.

    ``seqs`` / ``positions`` are the batch's work rows (sequence index, first masked position); ``masked``
    scores the masked positions of each row, otherwise every residue of every row. ``specials`` counts the
    special tokens before and after the residues of every sequence (CLS … EOS: ``(1, 1)``). ``width`` /
    ``rows`` pad the batch to that many positions / rows (padded layouts only): padding rows repeat the
    first row and are never selected for scoring.

    ``per_row`` (masked only) masks up to that many spaced positions per row: a sequence of ``n`` residues
    has ``ceil(n / per_row)`` rows (:func:`spaced_rows`) and the row starting at residue ``r`` masks residues
    ``r, r + stride, r + 2 * stride, ...`` with ``stride = ceil(n / per_row)``, so each residue is masked in
    exactly one row. ``row_pos`` is then ``(rows, per_row)`` (a row's unused slots repeat its first position)
    and ``sel_slot`` says which slot of its row each scored target is; with ``per_row=1`` ``row_pos`` is
    one position per row, as in exact masked scoring.
    """
    unique, row_local = np.unique(seqs, return_inverse=True)
    lengths = np.array([len(token_ids[i]) for i in unique])
    width = max(int(lengths.max()), width or 0)
    base = np.full((len(unique), width), pad_token_id, dtype=np.int64)
    for j, i in enumerate(unique):
        base[j, : lengths[j]] = token_ids[i]
    real_rows = len(seqs)
    if rows is not None and rows > real_rows:
        extra = rows - real_rows
        row_local = np.concatenate([row_local, np.full(extra, row_local[0])])
        positions = np.concatenate([positions, np.full(extra, positions[0])])
    row_len = lengths[row_local]
    real_len = row_len[:real_rows]
    extra_arrays = {}
    if masked and per_row > 1:
        first, last = specials
        n_res = row_len - first - last
        stride = -(-n_res // per_row)
        slots = np.arange(per_row)
        grid = positions[:, None] + slots[None, :] * stride[:, None]
        valid = grid < (first + n_res)[:, None]
        positions = np.where(valid, grid, positions[:, None])
        counts = valid[:real_rows].sum(axis=1)
        sel_row = np.repeat(np.arange(real_rows), counts)
        sel_slot = np.arange(len(sel_row)) - np.repeat(np.cumsum(counts) - counts, counts)
        sel_pos = positions[sel_row, sel_slot]
        extra_arrays["sel_slot"] = sel_slot.astype(np.int64)
    elif masked:
        sel_row = np.arange(real_rows)
        sel_pos = positions[:real_rows]
    else:
        first, last = specials
        n_res = real_len - first - last
        sel_row = np.repeat(np.arange(real_rows), n_res)
        sel_pos = np.arange(len(sel_row)) - np.repeat(np.cumsum(n_res) - n_res, n_res) + first
    arrays = {
        "base": base,
        "row_local": row_local.astype(np.int64),
        "row_pos": positions.astype(np.int64),
        "sel_row": sel_row.astype(np.int64),
        "sel_pos": sel_pos.astype(np.int64),
        **extra_arrays,
        "targets": base[row_local[sel_row], sel_pos],
        "owner": seqs[sel_row],
        "max_seqlen": width,
        "min_len": int(row_len.min()),
        "real_rows": real_rows,
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
