"""The scoring engine on any Hugging Face masked LM: ESM-2, ChemBERTa, Nucleotide Transformer, your own.

:class:`HFMaskedLMScorer` is the Hugging Face adapter of :class:`~ume_rl.rewards.engine.scoring.PseudoLikelihoodScorer`
(the engine behind :class:`~ume_rl.rewards.engine.ume_scoring.UmeScorer`): same rows, length bucketing, token budget,
masked copies batched, one device-to-host copy, autocast, ``too_long`` / ``unknown_token`` handling. A
:class:`MaskedLM` is what it scores with: an ``AutoModelForMaskedLM``, its tokenizer and the modality it
reads (:func:`ume_rl.models.masked_lms.load_reward_model` returns one).

>>> from ume_rl.models.masked_lms import build_tiny_masked_lm
>>> scorer = HFMaskedLMScorer(build_tiny_masked_lm("amino_acid"))  # doctest: +SKIP
>>> scorer.score(["MKVL"], ["amino_acid"])  # doctest: +SKIP
[-3.52...]

What the adapter does for any architecture:

- special tokens are whatever the tokenizer adds around a sequence (found once by tokenizing a probe with and
  without them: CLS … EOS for ESM-2 and RoBERTa, CLS only for the Nucleotide Transformer); they are never
  scored, and every encoded sequence is checked to carry exactly them;
- ``<unk>`` in a tokenization makes the sequence invalid (``unknown_token``); more tokens than the model's
  positions (``max_length``: learned positions minus the padding offset, or the tokenizer's limit) makes it
  ``too_long``; nothing is truncated;
- the decoder head runs only at the scored positions where the head is a separate module taking the final
  hidden states (``lm_head`` of ESM and RoBERTa-like models, ``cls`` of BERT-like ones); other
  architectures run the whole model and read the logits at those positions (exact, slower);
- ESM models with ``token_dropout`` (ESM-2, the Nucleotide Transformer v1) rescale embeddings by the
  fraction of masked tokens over the *padded* width in ``transformers`` (4.57 does not pass the attention
  mask to the embeddings): in the masked and spaced modes, batches never mix lengths and are not widened by the shape
  ladder (``pad_shapes``), so each masked copy is scored exactly as alone;
- BERT and RoBERTa-like models get their attention mask as ``(rows, length, length)``: from a 2-D mask,
  ``transformers`` would test it with ``torch.all`` on every forward, a device-to-host sync (the engine
  makes one per call);
- the engine's shape ladder, SDPA backend choice, deduplication and cache apply as for UME.

Normalisation, ``normalize="residue"`` (default): the sum of the scored tokens' log-probs divided by the
number of residues (characters: amino acids, nucleotides, SMILES characters), not by the number of tokens. A
6-mer tokenizer (Nucleotide Transformer) or a BPE (ChemBERTa) puts a different number of residues in each
token, so "per token" would mix 6-mer and single-nucleotide tokens and depend on where a sequence's length
falls modulo 6; per residue, every sequence of a modality is on one scale (nats per residue), whatever its
tokenization. For one-residue tokens (ESM-2, UME's proteins and DNA) the two are equal. ``"token"`` gives the
mean per scored token. Since a token holds at least one residue, a uniform model scores at least
``-ln(vocab_size)`` per residue, so :class:`~ume_rl.rewards.masked_lm.MaskedLMReward`'s floor argument holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ume_rl.rewards.engine.scoring import DEFAULT_MASKS_PER_ROW, DEFAULT_MODE, PseudoLikelihoodScorer
from ume_rl.rewards.modalities import MODALITY_TABLE, normalize_modality

NORMALIZATIONS = ("residue", "token")

HEAD_ATTRIBUTES = {
    "esm": "lm_head",
    "roberta": "lm_head",
    "xlm-roberta": "lm_head",
    "camembert": "lm_head",
    "bert": "cls",
}
"""``config.model_type`` → the attribute holding a head that maps final hidden states to logits."""

SQUARE_MASK_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})
"""Model types whose SDPA path checks a 2-D attention mask with ``torch.all`` (a device-to-host sync per
forward, in ``transformers``' ``_prepare_4d_attention_mask_for_sdpa``): they get the same mask as a
``(rows, length, length)`` view, which they expand without looking at its values."""

_UNBOUNDED_LENGTH = 10**6  # tokenizers without a limit report model_max_length = 1e30


@dataclass(frozen=True)
class MaskedLM:
    """A Hugging Face masked LM, its tokenizer and the modality it scores.

    Attributes:
        model: an ``AutoModelForMaskedLM`` (frozen, on the device where it should run).
        tokenizer: its tokenizer (``AutoTokenizer``), with a mask token.
        modality: the lobster ``Modality`` value it scores (``"amino_acid"`` for ESM-2).
        name: where it came from (hub id or directory), for logs.
    """

    model: Any
    tokenizer: Any
    modality: str
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "modality", normalize_modality(self.modality))


def model_max_length(model, tokenizer) -> int:
    """Longest tokenized sequence ``model`` has positions for (special tokens included).

    ``config.max_position_embeddings``, minus ``padding_idx + 1`` where position ids start after the padding
    index (ESM, RoBERTa: 1026 → 1024, 514 → 512), capped by the tokenizer's ``model_max_length`` when set.
    """
    limits = []
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions:
        padding_idx = getattr(getattr(model.base_model, "embeddings", None), "padding_idx", None)
        limits.append(int(max_positions) - (padding_idx + 1 if padding_idx is not None else 0))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < _UNBOUNDED_LENGTH:
        limits.append(int(tokenizer_limit))
    if not limits:
        raise ValueError(f"cannot tell the longest sequence {type(model).__name__} takes: pass max_length")
    return min(limits)


def special_token_counts(tokenizer, modality: str) -> tuple[int, int]:
    """How many special tokens ``tokenizer`` puts before and after a sequence of ``modality``."""
    probe = MODALITY_TABLE[modality].mutation_alphabet[0] * 3
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return start, len(full) - start - len(bare)
    raise RuntimeError(f"{type(tokenizer).__name__} adds special tokens inside {probe!r}: {full}")


class HFMaskedLMScorer(PseudoLikelihoodScorer):
    """The engine on a Hugging Face masked LM: mean log-probability per residue (higher is better, <= 0).

    Args:
        masked_lm: a :class:`MaskedLM` (model, tokenizer, modality); the model is put in eval mode, never moved.
        mode: ``"masked"`` (exact pseudo-log-likelihood), ``"unmasked"`` (one pass, approximation) or
            ``"spaced"`` (``masks_per_row`` spaced masks per row, approximation).
        token_budget: most padded tokens per forward; default 8192 on CPU, 65536 on CUDA.
        dtype: ``None``/``"fp32"`` or ``"bf16"``/``"fp16"`` (autocast).
        max_length: longest tokenized sequence scored; default :func:`model_max_length`.
        normalize: ``"residue"`` (default) or ``"token"``; see the module docstring.
        pad_shapes, sdpa, dedup, cache_size, masks_per_row: engine options, see
            :class:`~ume_rl.rewards.engine.scoring.PseudoLikelihoodScorer` (the shape ladder is off for ESM models
            with ``token_dropout`` in the masked and spaced modes, whose batches never mix lengths).

    Scores only ``masked_lm.modality``; other modalities are a ``ValueError``.
    """

    def __init__(
        self,
        masked_lm: MaskedLM,
        mode: str = DEFAULT_MODE,
        token_budget: int | None = None,
        dtype=None,
        max_length: int | None = None,
        normalize: str = "residue",
        pad_shapes: bool | None = None,
        sdpa="auto",
        dedup: bool = True,
        cache_size: int = 0,
        masks_per_row: int = DEFAULT_MASKS_PER_ROW,
    ):
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        model, tokenizer = masked_lm.model, masked_lm.tokenizer
        if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(
                f"{masked_lm.name or type(tokenizer).__name__}: a masked LM needs mask and pad tokens"
            )
        self.modality = masked_lm.modality
        super().__init__(
            model,
            mode=mode,
            token_budget=token_budget,
            dtype=dtype,
            max_length=max_length or model_max_length(model, tokenizer),
            vocab_size=model.config.vocab_size,
            mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id,
            unk_token_id=tokenizer.unk_token_id,
            specials=special_token_counts(tokenizer, self.modality),
            pad_shapes=pad_shapes,
            sdpa=sdpa,
            dedup=dedup,
            cache_size=cache_size,
            masks_per_row=masks_per_row,
        )
        self.model, self.tokenizer, self.normalize = model, tokenizer, normalize
        self.label = masked_lm.name or type(model).__name__
        probe = tokenizer(MODALITY_TABLE[self.modality].mutation_alphabet[0] * 3)["input_ids"]
        first, last = self.specials
        self._prefix, self._suffix = probe[:first], probe[len(probe) - last :]
        head = HEAD_ATTRIBUTES.get(model.config.model_type)
        self._head = getattr(model, head, None) if head else None

    @property
    def longest_residue_token(self) -> int:
        special = set(self.tokenizer.all_special_tokens)
        return max(len(t) for t in self.tokenizer.get_vocab() if t not in special)

    def encode(self, sequences, modalities) -> list[list[int]]:
        """Token ids (the tokenizer's special tokens included, no padding, no truncation) of each sequence."""
        if len(sequences) != len(modalities):
            raise ValueError(f"{len(sequences)} sequences but {len(modalities)} modalities")
        other = {normalize_modality(m) for m in modalities} - {self.modality}
        if other:
            raise ValueError(f"{self.label} scores {self.modality} only, got {sorted(other)}")
        ids = self.tokenizer(list(sequences), add_special_tokens=True)["input_ids"] if sequences else []
        first, last = self.specials
        for tokens in ids:
            if tokens[:first] != self._prefix or tokens[len(tokens) - last :] != self._suffix:
                raise RuntimeError(
                    f"{self.label} tokenizer returned {tokens[:3]}…, expected {self._prefix} … {self._suffix}"
                )
        return ids

    def _counts(self, token_ids) -> np.ndarray:
        if self.normalize == "token":
            return super()._counts(token_ids)
        first, last = self.specials
        texts = self.tokenizer.batch_decode([t[first : len(t) - last] for t in token_ids])
        return np.array([len("".join(text.split())) for text in texts], dtype=np.float64)

    def _memo_tag(self) -> tuple:
        return (*super()._memo_tag(), self.normalize)

    # ------------------------------------------------------------------------------------------ HF adapter

    def _module(self) -> torch.nn.Module:
        return self.model

    def _encoder(self, layout: str, key_mask: bool) -> torch.nn.Module:
        return self.model.base_model if self._head is not None else self.model

    def _same_length(self, layout: str) -> bool:
        return self.mode != "unmasked" and bool(getattr(self.model.config, "token_dropout", False))

    def _encoder_kwargs(self, layout: str, dev: dict[str, torch.Tensor], max_seqlen: int) -> dict:
        kwargs = super()._encoder_kwargs(layout, dev, max_seqlen)
        if self.model.config.model_type in SQUARE_MASK_TYPES:
            mask = kwargs["attention_mask"]
            kwargs["attention_mask"] = mask[:, None, :].expand(-1, mask.shape[1], -1)
        return kwargs

    def _hidden(self, encoder, layout: str, dev: dict[str, torch.Tensor], max_seqlen: int) -> torch.Tensor:
        out = encoder(**self._encoder_kwargs(layout, dev, max_seqlen))
        states = out[0] if self._head is not None else out.logits
        return states[dev["sel_row"], dev["sel_pos"]]

    def _decode(self, selected: torch.Tensor) -> torch.Tensor:
        return self._head(selected) if self._head is not None else selected
