"""The scoring engine on a lobster UME: :class:`UmeScorer`, the FlexBERT adapter of
:class:`~ume_rl.rewards.engine.scoring.PseudoLikelihoodScorer` (what the score is and how a call is batched are
described there).

>>> from ume_rl.models.ume import load_ume
>>> scorer = UmeScorer(load_ume("tiny"), mode="masked")  # doctest: +SKIP
>>> scorer.score(["CCO", "MKVL", "ACGT"], ["SMILES", "amino_acid", "nucleotide"])  # doctest: +SKIP
[-6.46..., -7.25..., -7.47...]

UME layouts (lobster FlexBERT), all exact:

- padded SDPA (CPU, or GPU without flash-attn): key-padding mask; batches without padding run SDPA
  without a mask (a twin module sharing the weights);
- unpadded + flash-attn (CUDA): rows are concatenated with no pad token and ``cu_seqlens`` come from
  the true lengths (upstream counted the padding as tokens);
- unpadded without flash-attn: lobster's SDPA path attends across all sequences of a forward, so the scorer
  runs a padded twin of the encoder sharing the same weight tensors;
- padded + flash-attn (pads are attended): batches never mix lengths.

Layout detection, padded twins and the last-layer shortcut live in :mod:`ume_rl.rewards.engine.flexbert`; length
bucketing and batch packing in :mod:`ume_rl.rewards.engine.batching`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ume_rl.rewards.engine.flexbert import (
    encoder_layout,
    hidden_at_positions,
    last_layer_shortcut_applies,
    padded_twin,
)
from ume_rl.rewards.engine.scoring import DEFAULT_MASKS_PER_ROW, DEFAULT_MODE, PseudoLikelihoodScorer
from ume_rl.rewards.modalities import MODALITIES, normalize_modality

UME_MAX_LENGTH = 512
"""The released UMEs' ``max_length`` (tokens, special tokens included)."""
UME_LONGEST_TOKEN = 9
"""Characters of UME's longest residue token (the SMILES token ``[195Pt+2]``)."""
DEFAULT_MAX_CHARS = UME_MAX_LENGTH * UME_LONGEST_TOKEN
"""Default bound on tagged content before any parsing for the auxiliary rewards: longer content cannot fit a
UME and is ``too_long`` without reaching RDKit."""


class UmeScorer(PseudoLikelihoodScorer):
    """The engine on a lobster UME: mean per-residue log-probability (higher is better, always <= 0).

    Args:
        ume_model: a lobster ``UME`` (any layout, any device; it is put in eval mode, never moved).
        mode: ``"masked"`` (exact pseudo-log-likelihood), ``"unmasked"`` (one pass, approximation) or
            ``"spaced"`` (``masks_per_row`` spaced masks per row, approximation).
        token_budget: most padded tokens per forward; default 8192 on CPU, 65536 on CUDA.
        dtype: ``None``/``"fp32"`` (the model's own precision) or ``"bf16"``/``"fp16"`` (autocast; the
            log-softmax is always computed in float32).
        max_length: longest tokenized sequence scored (default: the UME's ``max_length``).
        pad_shapes, sdpa, dedup, cache_size, masks_per_row: engine options, see
            :class:`PseudoLikelihoodScorer`.

    UME's protein and DNA tokens are single residues and its SMILES tokens atoms, bonds, branches and ring
    closures, so the mean per token is the mean per residue.
    """

    label = "UME"

    def __init__(
        self,
        ume_model,
        mode: str = DEFAULT_MODE,
        token_budget: int | None = None,
        dtype=None,
        max_length=None,
        pad_shapes: bool | None = None,
        sdpa="auto",
        dedup: bool = True,
        cache_size: int = 0,
        masks_per_row: int = DEFAULT_MASKS_PER_ROW,
    ):
        flex = ume_model.model
        self._tokenizers = {m: ume_model.get_tokenizer(m) for m in MODALITIES}
        unk_ids = {int(tok.unk_token_id) for tok in self._tokenizers.values()}
        if len(unk_ids) != 1:
            raise RuntimeError(f"UME tokenizers disagree on the <unk> id: {sorted(unk_ids)}")
        super().__init__(
            ume_model,
            mode=mode,
            token_budget=token_budget,
            dtype=dtype,
            max_length=max_length or ume_model.max_length,
            vocab_size=flex.config.vocab_size,
            mask_token_id=flex.mask_token_id,
            pad_token_id=flex.pad_token_id,
            unk_token_id=unk_ids.pop(),
            pad_shapes=pad_shapes,
            sdpa=sdpa,
            dedup=dedup,
            cache_size=cache_size,
            masks_per_row=masks_per_row,
        )
        self.ume = ume_model
        self.eos_token_id = int(flex.eos_token_id)
        self._cls_ids = {m: int(tok.cls_token_id) for m, tok in self._tokenizers.items()}
        self._twins: dict[tuple[int, bool], torch.nn.Module] = {}

    @property
    def longest_residue_token(self) -> int:
        """Characters of the longest residue token of any modality's tokenizer (``'[195Pt+2]'``: 9)."""
        return max(
            len(token) for tok in self._tokenizers.values() for token in tok.get_vocab() if token[0] != "<"
        )

    def encode(self, sequences: Sequence[str], modalities: Sequence) -> list[list[int]]:
        """Token ids (CLS … EOS, no padding, no truncation) of each sequence with its modality's tokenizer."""
        if len(sequences) != len(modalities):
            raise ValueError(f"{len(sequences)} sequences but {len(modalities)} modalities")
        mods = [normalize_modality(m) for m in modalities]
        ids: list[list[int] | None] = [None] * len(sequences)
        for modality in set(mods):
            idx = [i for i, m in enumerate(mods) if m == modality]
            encoded = self._tokenizers[modality]([sequences[i] for i in idx], add_special_tokens=True)[
                "input_ids"
            ]
            for i, tokens in zip(idx, encoded, strict=True):
                if len(tokens) < 2 or tokens[0] != self._cls_ids[modality] or tokens[-1] != self.eos_token_id:
                    raise RuntimeError(f"UME {modality} tokenizer returned {tokens[:3]}…, expected CLS … EOS")
                ids[i] = tokens
        return ids  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------ FlexBERT adapter

    def _module(self) -> torch.nn.Module:
        return self.ume

    def _layout(self) -> str:
        """``padded`` (SDPA + key mask), ``padded_fa`` (flash-attn, pads attended), ``varlen`` (unpadded +
        flash-attn) or ``unpadded_sdpa`` (unpadded without flash-attn: mixes the rows of a forward)."""
        return encoder_layout(self.ume.model)

    def _encoder(self, layout: str, key_mask: bool) -> torch.nn.Module:
        """The module that computes a batch exactly: the UME's own encoder, or a padded twin sharing its weights.

        ``key_mask`` is False for batches without any pad token, which then run SDPA without a mask (faster
        kernels on CPU and GPU).
        """
        flex = self.ume.model
        if layout in ("varlen", "padded_fa") or (layout == "padded" and key_mask):
            return flex.model
        key = (next(flex.model.parameters()).data_ptr(), key_mask)
        if key not in self._twins:
            self._twins = {k: v for k, v in self._twins.items() if k[0] == key[0]}
            self._twins[key] = padded_twin(flex.model, flex.config, key_mask=key_mask)
        return self._twins[key]

    def _decode(self, selected: torch.Tensor) -> torch.Tensor:
        return self.ume.model.decoder(selected)

    def _encoder_kwargs(self, layout: str, dev: dict[str, torch.Tensor], max_seqlen: int) -> dict:
        """The encoder's inputs for one batch: its rows (masked copies in masked mode), packed for varlen."""
        if layout != "varlen":
            return super()._encoder_kwargs(layout, dev, max_seqlen)
        return {
            "input_ids": self._device_rows(dev).reshape(-1).index_select(0, dev["flat_index"]),
            "position_ids": dev["position_ids"],
            "cu_seqlens": dev["cu_seqlens"].to(torch.int32),
            "max_seqlen": max_seqlen,
        }

    def _hidden(self, encoder, layout: str, dev: dict[str, torch.Tensor], max_seqlen: int):
        """Final hidden states at the scored positions of one batch, (scored positions, hidden)."""
        kwargs = self._encoder_kwargs(layout, dev, max_seqlen)
        if layout == "varlen":
            return encoder(**kwargs)[dev["sel_flat"]]
        if self.mode != "unmasked" and last_layer_shortcut_applies(encoder):
            hidden = hidden_at_positions(
                encoder, kwargs["input_ids"], kwargs["attention_mask"], dev["row_pos"]
            )
            if "sel_slot" in dev:  # spaced: (rows, k, hidden)
                return hidden[dev["sel_row"], dev["sel_slot"]]
            return hidden[: dev["targets"].shape[0]]  # padding rows (pad_shapes) come last
        return encoder(**kwargs)[dev["sel_row"], dev["sel_pos"]]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_twins"] = {}
        return state
