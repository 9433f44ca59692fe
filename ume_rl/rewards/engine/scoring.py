"""Exact, batched pseudo-log-likelihood: the score behind the reward, for a UME or any masked LM.

The score of a sequence is the mean, over its residue tokens (every token the model's tokenizer produces
between its special tokens), of

- ``mode="masked"`` (default): log p(token_i | the sequence with token_i replaced by <mask>), the exact
  pseudo-log-likelihood (one masked copy per residue token);
- ``mode="unmasked"``: log p(token_i | the whole unmasked sequence), the single-pass approximation;
- ``mode="spaced"``: the approximate masked pseudo-log-likelihood. Each row masks ``masks_per_row`` (k)
  evenly spaced residues, ``ceil(n / k)`` apart, and scores each of them given the rest: ``ceil(n / k)`` rows
  instead of ``n``, each residue still masked exactly once, but seen with k - 1 other residues masked.
  ``masks_per_row=1`` is ``masked`` exactly. It breaks down where k masks are a large share of a sequence
  (short sequences: a 12-residue peptide with k=4 is a third masked, far from the share a UME was trained
  with); ``benchmarks/spaced_pll.py`` measures its agreement with ``masked`` per modality and k.

>>> from ume_rl.models.ume import load_ume
>>> from ume_rl.rewards.engine.ume_scoring import UmeScorer
>>> scorer = UmeScorer(load_ume("tiny"), mode="masked")  # doctest: +SKIP
>>> scorer.score(["CCO", "MKVL", "ACGT"], ["SMILES", "amino_acid", "nucleotide"])  # doctest: +SKIP
[-6.46..., -7.25..., -7.47...]

One engine, :class:`PseudoLikelihoodScorer` (here), with a small adapter per model family:
:class:`~ume_rl.rewards.engine.ume_scoring.UmeScorer` (lobster FlexBERT; its layouts are described there) and
:class:`~ume_rl.rewards.engine.hf_scoring.HFMaskedLMScorer` (any Hugging Face ``AutoModelForMaskedLM``).

How a call runs: each sequence is tokenized (no padding, no truncation); the work rows (one per sequence
unmasked, one per residue masked, one per k residues spaced) are sorted by length and bucketed into batches of
at most ``token_budget`` padded tokens with at most 25% padding; each batch is padded to its own longest row;
the encoder runs once per batch (UME masked or spaced: the last layer only at the masked positions) and the decoder head only at the scored
positions; log-probs stay on the device until one device-to-host copy per call, and per-sequence means are
taken in float64 on the host. ``torch.inference_mode``, optional bf16/fp16 autocast, one pinned non-blocking
host-to-device copy per batch on CUDA.

Fresh batches as fast as repeated ones (CUDA): GRPO never scores the same batch twice, so every call would
bring new (rows, length) shapes. ``pad_shapes`` (default: on for CUDA, off on CPU, where it only adds
padding) rounds each batch's padded length and row count up to a small fixed ladder
(:class:`~ume_rl.rewards.engine.batching.ShapeLadder`); :meth:`PseudoLikelihoodScorer.warmup` runs every ladder
shape once.
``sdpa`` (default ``"auto"``: no cuDNN attention on CUDA) picks the attention kernels
(:func:`~ume_rl.rewards.engine.flexbert.sdpa_backends` says why). Identical sequences of a call are scored once and,
with ``cache_size > 0``, remembered across calls (:mod:`ume_rl.rewards.engine.cache`); ``stats`` counts
``duplicates`` and ``cache_hits``.

A sequence's score does not depend on what else is in the call (within 1e-5 in fp32) and repeated calls
are identical. A sequence with more tokens than ``max_length`` (special tokens included) is not truncated:
its score is NaN, counted in ``stats["too_long"]`` and logged (the reward marks it invalid, "too_long").
Likewise a sequence whose tokenization contains ``<unk>`` (RDKit accepts ``[Og]``, UME's SMILES tokenizer
does not know it): ``<unk>`` is not a residue, so its score is NaN, counted in ``stats["unknown_token"]``
and logged (the reward marks it invalid, "unknown_token").

Why ``masked`` is the default: lobster trains UME with the MLM loss on masked positions only (labels are
-100 elsewhere), so ``unmasked`` reads predictions at positions the model was never trained on; the
masked pseudo-log-likelihood is what the model was trained to predict. Cost: one encoder row per residue,
about mean-length times the compute of ``unmasked`` (``python benchmarks/reward_throughput.py`` prints the
ratio for your machine; the README quotes measured figures). The two modes rank sequences differently
(notebook 03's ``masked_vs_unmasked`` figure shows the Spearman correlation for your UME); ``unmasked`` remains
for quick CPU runs where throughput matters more than fidelity.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch

from ume_rl.rewards.engine.batching import (
    HOST_ONLY,
    ShapeLadder,
    batch_arrays,
    plan_batches,
    spaced_rows,
    to_device,
)
from ume_rl.rewards.engine.cache import ScoreMemo, weights_version
from ume_rl.rewards.engine.flexbert import (
    resolve_dtype,
    sdpa_backends,
)

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("masked", "unmasked", "spaced")
DEFAULT_MODE = "masked"
DEFAULT_MASKS_PER_ROW = 3
"""``spaced`` mode's default k: the value ``benchmarks/spaced_pll.py`` supports (see the README's Throughput)."""
DEFAULT_TOKEN_BUDGET = {"cpu": 8192, "cuda": 65536}


class PseudoLikelihoodScorer:
    """The scoring engine: mean per-residue-token log-probability (higher is better, always <= 0).

    Subclasses adapt a model family: they tokenize (:meth:`encode`), name the model's special ids and length
    limit, and run one batch (``_encoder``, ``_hidden``, ``_decode``); everything else (rows, bucketing,
    shape ladder, budgets, device copies, autocast, SDPA backends, deduplication and cache, statistics,
    invalid sequences) is here, shared.

    Args:
        model: the ``torch.nn.Module`` that runs (its device is where scoring happens; it is put in eval mode).
        mode: ``"masked"`` (exact pseudo-log-likelihood), ``"unmasked"`` (one pass, approximation) or
            ``"spaced"`` (``masks_per_row`` spaced masks per row, approximation; see the module docstring).
        token_budget: most padded tokens per forward; default 8192 on CPU, 65536 on CUDA.
        dtype: ``None``/``"fp32"`` (the model's own precision) or ``"bf16"``/``"fp16"`` (autocast; the
            log-softmax is always computed in float32).
        max_length: longest tokenized sequence scored, special tokens included.
        vocab_size: width of the model's logits.
        mask_token_id, pad_token_id: the tokenizer's ids; ``unk_token_id`` may be ``None`` (no unknown token).
        specials: special tokens before and after the residues of every encoded sequence.
        pad_shapes: round batch shapes up to a fixed ladder (``None``: on CUDA only); exact either way. Applies
            to padded layouts whose batches may mix lengths (not flash-attn layouts, not ESM ``token_dropout``
            in masked mode, see :meth:`_ladder`).
        sdpa: attention kernels, ``"auto"`` (no cuDNN on CUDA), ``None`` (PyTorch's choice) or names
            (:func:`~ume_rl.rewards.engine.flexbert.sdpa_backends`).
        dedup: score identical token sequences of a call once (exact).
        cache_size: scores remembered across calls (LRU, emptied when the weights change); 0: none.
        masks_per_row: k, residues masked together per row in ``spaced`` mode (a positive integer; unused by
            the other modes).
    """

    label = "masked LM"  # how errors and logs name the model

    def __init__(
        self,
        model: torch.nn.Module,
        mode: str,
        token_budget: int | None,
        dtype,
        max_length: int,
        vocab_size: int,
        mask_token_id: int,
        pad_token_id: int,
        unk_token_id: int | None,
        specials: tuple[int, int] = (1, 1),
        pad_shapes: bool | None = None,
        sdpa="auto",
        dedup: bool = True,
        cache_size: int = 0,
        masks_per_row: int = DEFAULT_MASKS_PER_ROW,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(masks_per_row, bool) or not isinstance(masks_per_row, int) or masks_per_row < 1:
            raise ValueError(f"masks_per_row must be a positive integer, got {masks_per_row!r}")
        if token_budget is not None and token_budget < 1:
            raise ValueError(f"token_budget must be positive, got {token_budget}")
        self.mode = mode
        self.masks_per_row = masks_per_row
        self.token_budget = token_budget
        self.dtype = resolve_dtype(dtype)
        self.max_length = int(max_length)
        self.vocab_size = int(vocab_size)
        self.mask_token_id = int(mask_token_id)
        self.pad_token_id = int(pad_token_id)
        self.unk_token_id = None if unk_token_id is None else int(unk_token_id)
        self.specials = (int(specials[0]), int(specials[1]))
        self.pad_shapes = pad_shapes
        self.sdpa = sdpa
        self.memo = ScoreMemo(dedup=dedup, cache_size=cache_size)
        self.stats = dict.fromkeys(
            (
                "calls",
                "sequences",
                "too_long",
                "unknown_token",
                "forwards",
                "rows",
                "tokens",
                "padded_tokens",
                "duplicates",
                "cache_hits",
            ),
            0,
        )
        model.eval()

    # ------------------------------------------------------------------------------------------ adapter API

    def encode(self, sequences: Sequence[str], modalities: Sequence) -> list[list[int]]:
        """Token ids (special tokens included, no padding, no truncation) of each sequence."""
        raise NotImplementedError

    @property
    def longest_residue_token(self) -> int:
        """Characters of the longest residue token of the tokenizer(s): bounds text worth tokenizing."""
        raise NotImplementedError

    def _module(self) -> torch.nn.Module:
        """The model whose parameters' device is where batches go."""
        raise NotImplementedError

    def _layout(self) -> str:
        return "padded"

    def _encoder(self, layout: str, key_mask: bool) -> torch.nn.Module:
        raise NotImplementedError

    def _hidden(self, encoder, layout: str, dev: dict[str, torch.Tensor], max_seqlen: int) -> torch.Tensor:
        """What :meth:`_decode` turns into logits, at the scored positions of one batch."""
        return encoder(**self._encoder_kwargs(layout, dev, max_seqlen))[dev["sel_row"], dev["sel_pos"]]

    def _decode(self, selected: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _same_length(self, layout: str) -> bool:
        """True when a batch must not mix lengths (the model would see its padding)."""
        return layout == "padded_fa"

    def _counts(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """What each sequence's sum of log-probs is divided by: its residue tokens."""
        first, last = self.specials
        return np.array([len(t) - first - last for t in token_ids], dtype=np.float64)

    def _memo_tag(self) -> tuple:
        """What a cache key holds besides the token ids: the adapter, the model and everything a score
        depends on, so that no two scorers (or settings) could ever share an entry."""
        return (
            type(self).__name__,
            self.label,
            id(self._module()),
            self.mode,
            self._per_row,
            str(self.dtype),
            self.specials,
        )

    # ------------------------------------------------------------------------------------------ public API

    @property
    def min_log_prob_uniform(self) -> float:
        """Mean log-prob of a uniform model over the vocabulary: ``-ln(vocab_size)``."""
        return -math.log(self.vocab_size)

    def invalid_reason(self, token_ids: Sequence[int]) -> str | None:
        """``"too_long"``, ``"unknown_token"`` or ``None`` (scorable) for one encoded sequence."""
        if len(token_ids) > self.max_length:
            return "too_long"
        if self.unk_token_id is not None and self.unk_token_id in token_ids:
            return "unknown_token"
        return None

    def score(self, sequences: Sequence[str], modalities: Sequence) -> list[float]:
        """Score each sequence with its modality (lobster ``Modality`` members or their values, mixed freely).

        Returns one float per sequence, in order: the mean per-residue log-prob, or NaN when the sequence has
        more than ``max_length`` tokens or a token the tokenizer maps to ``<unk>`` (counted in ``stats``
        under ``too_long`` / ``unknown_token``). Raises ``ValueError`` for a sequence with no residue token.
        """
        return self.score_ids(self.encode(sequences, modalities))

    def score_ids(self, token_ids: Sequence[Sequence[int]]) -> list[float]:
        """Like :meth:`score`, from token ids as returned by :meth:`encode`.

        Identical sequences are scored once (``stats["duplicates"]``) and, with ``cache_size > 0``, scores of
        earlier calls are reused (``stats["cache_hits"]``); see :mod:`ume_rl.rewards.engine.cache`.
        """
        n = len(token_ids)
        self.stats["calls"] += 1
        self.stats["sequences"] += n
        out = np.full(n, np.nan)
        empty = [i for i, t in enumerate(token_ids) if len(t) <= sum(self.specials)]
        if empty:
            raise ValueError(f"sequences at positions {empty[:10]} have no residue token (empty sequence)")
        reasons = [self.invalid_reason(t) for t in token_ids]
        for reason, what in (
            ("too_long", f"exceed max_length={self.max_length} tokens"),
            ("unknown_token", "contain <unk> tokens"),
        ):
            count = reasons.count(reason)
            if count:
                self.stats[reason] += count
                logger.warning("%d of %d sequences %s: scored NaN", count, n, what)
        keep = [i for i in range(n) if reasons[i] is None]
        if keep:
            before = dict(self.memo.stats)
            version = weights_version(self._module()) if self.memo.cache_size else None
            tag = self._memo_tag()
            keys = [(tag, tuple(token_ids[i])) for i in keep]
            out[keep] = self.memo(keys, self._score_keys, version)
            for stat in ("duplicates", "cache_hits"):
                self.stats[stat] += self.memo.stats[stat] - before[stat]
        return out.tolist()

    @torch.inference_mode()
    def warmup(self) -> int:
        """Run every ladder shape once (with and without a key-padding mask); returns the forwards run.

        With ``pad_shapes`` on, every later batch has one of these shapes, so per-shape costs on CUDA (kernel
        selection, execution plans, allocator growth) are paid here rather than in the first training steps.
        Scores and ``stats`` are untouched; a no-op returning 0 when the ladder does not apply.
        """
        device = next(self._module().parameters()).device
        layout = self._layout()
        ladder = self._ladder(device, layout)
        if ladder is None:
            return 0
        masked, forwards = self.mode != "unmasked", 0
        first, last = self.specials
        with self._autocast(device), sdpa_backends(device, self.sdpa):
            for width, rows in ladder.shapes(self._budget(device)):
                residues = width - 1 - first - last  # of the shorter sequence
                if residues < 1:
                    continue
                full = [self.mask_token_id] * width  # content is irrelevant: only the shapes are warmed
                ids = [full, full[:-1]]  # the second is one token shorter: a key mask
                positions = first + np.arange(rows) % residues if masked else np.full(rows, -1)
                for longer in (0, 1):  # the last row reads the full or the shorter sequence
                    seqs = np.r_[np.zeros(rows - 1, dtype=np.int64), longer]
                    host = batch_arrays(
                        ids,
                        seqs,
                        positions,
                        layout,
                        self.pad_token_id,
                        masked,
                        self.specials,
                        width=width,
                        rows=rows,
                        per_row=self._per_row,
                    )
                    dev = to_device({k: v for k, v in host.items() if k not in HOST_ONLY}, device)
                    encoder = self._encoder(layout, host["min_len"] < host["max_seqlen"])
                    self._batch_log_probs(encoder, layout, dev, host)
                    forwards += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return forwards

    def encoder_only(self, token_ids: Sequence[Sequence[int]]):
        """A zero-argument function running the encoder alone over the batches :meth:`score_ids` packs.

        Batch planning, host arrays and device copies are done here, once; the returned function only runs
        the encoder (no decoder head, no log-softmax) and returns its outputs. The baseline for measuring
        the scorer's overhead (``benchmarks/reward_throughput.py``).
        """
        device = next(self._module().parameters()).device
        layout = self._layout()
        prepared = [(encoder, dev, host["max_seqlen"]) for _, host, dev, encoder in self._batches(token_ids)]
        autocast = self._autocast(device)

        @torch.inference_mode()
        def run() -> list:
            with autocast, sdpa_backends(device, self.sdpa):
                return [
                    encoder(**self._encoder_kwargs(layout, dev, max_seqlen))
                    for encoder, dev, max_seqlen in prepared
                ]

        return run

    # ------------------------------------------------------------------------------------------ engine

    @property
    def _per_row(self) -> int:
        """Residues masked per row: ``masks_per_row`` in ``spaced`` mode, else 1."""
        return self.masks_per_row if self.mode == "spaced" else 1

    def _rows(self, token_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Work rows: (sequence index, first masked position or -1)."""
        if self.mode == "unmasked":
            return np.arange(len(token_ids)), np.full(len(token_ids), -1)
        first, last = self.specials
        return spaced_rows([len(t) - first - last for t in token_ids], self._per_row, first)

    def _budget(self, device: torch.device) -> int:
        return self.token_budget or DEFAULT_TOKEN_BUDGET.get(device.type, DEFAULT_TOKEN_BUDGET["cuda"])

    def _autocast(self, device: torch.device):
        if self.dtype:
            return torch.autocast(device_type=device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def _ladder(self, device: torch.device, layout: str) -> ShapeLadder | None:
        """The shape ladder when ``pad_shapes`` applies (``None`` resolves to CUDA only).

        Only padded SDPA layouts whose batches may mix lengths: varlen has no width, flash-attn with padding
        attends its pads, and batches that must not mix lengths (:meth:`_same_length`: ESM ``token_dropout``
        in masked mode, whose embeddings depend on the padded width) must not be widened either.
        """
        on = device.type == "cuda" if self.pad_shapes is None else self.pad_shapes
        if not on or layout not in ("padded", "unpadded_sdpa") or self._same_length(layout):
            return None
        return ShapeLadder.for_max_length(self.max_length, most_rows=self._budget(device))

    def _score_keys(self, keys) -> np.ndarray:
        """Mean residue log-probs of memo keys ``(tag, token ids)`` (the memo's scoring function)."""
        token_ids = [key[-1] for key in keys]
        return self._log_prob_sums(token_ids) / self._counts(token_ids)

    def _batches(self, token_ids: Sequence[Sequence[int]]):
        """Yield ``(row lengths, host arrays, device arrays, encoder)`` per planned batch."""
        device = next(self._module().parameters()).device
        layout = self._layout()
        ladder = self._ladder(device, layout)
        row_seq, row_pos = self._rows(token_ids)
        row_len = np.array([len(t) for t in token_ids])[row_seq]
        batches = plan_batches(
            row_len.tolist(), self._budget(device), same_length=self._same_length(layout), ladder=ladder
        )
        for batch in batches:
            width, rows = (
                (ladder.width(int(row_len[batch].max())), ladder.row_count(len(batch)))
                if ladder
                else (None, None)
            )
            host = batch_arrays(
                token_ids,
                row_seq[batch],
                row_pos[batch],
                layout,
                self.pad_token_id,
                self.mode != "unmasked",
                self.specials,
                width=width,
                rows=rows,
                per_row=self._per_row,
            )
            dev = to_device({k: v for k, v in host.items() if k not in HOST_ONLY}, device)
            yield row_len[batch], host, dev, self._encoder(layout, host["min_len"] < host["max_seqlen"])

    @torch.inference_mode()
    def _log_prob_sums(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Per-sequence sum of the scored tokens' log-probs."""
        device = next(self._module().parameters()).device
        layout = self._layout()
        pieces, owners = [], []
        with self._autocast(device), sdpa_backends(device, self.sdpa):
            for lengths, host, dev, encoder in self._batches(token_ids):
                pieces.append(self._batch_log_probs(encoder, layout, dev, host))
                self.stats["forwards"] += 1
                self.stats["rows"] += len(lengths)
                self.stats["tokens"] += int(lengths.sum())
                self.stats["padded_tokens"] += host["base"].shape[1] * len(host["row_local"])
                owners.append(host["owner"])
        values = torch.cat(pieces).to("cpu", dtype=torch.float64).numpy()  # the one device-to-host sync
        return np.bincount(np.concatenate(owners), weights=values, minlength=len(token_ids))

    def _batch_log_probs(
        self, encoder, layout: str, dev: dict[str, torch.Tensor], host: dict
    ) -> torch.Tensor:
        """Log-prob of each scored target of one batch (on the device)."""
        selected = self._hidden(encoder, layout, dev, host["max_seqlen"])
        logits = self._decode(selected).float()
        return torch.log_softmax(logits, dim=-1).gather(1, dev["targets"][:, None]).squeeze(1)

    def _device_rows(self, dev: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's rows on the device: each sequence once per row, masked at its position(s) in the
        masked and spaced modes."""
        rows = dev["base"].index_select(0, dev["row_local"])
        if self.mode != "unmasked":
            positions = dev["row_pos"]
            index = torch.arange(rows.shape[0], device=rows.device).view(-1, *[1] * (positions.dim() - 1))
            rows[index, positions] = self.mask_token_id
        return rows

    def _encoder_kwargs(self, layout: str, dev: dict[str, torch.Tensor], max_seqlen: int) -> dict:
        """The encoder's inputs for one batch (padded layout)."""
        return {"input_ids": self._device_rows(dev), "attention_mask": dev["attention_mask"]}
