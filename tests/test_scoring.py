"""UmeScorer: exact against naive references, batch-invariant, ordered, both FlexBERT layouts.

On CPU by default. ``UME_RL_TEST_DEVICE=cuda`` (and ``UME_RL_TEST_DTYPE=bf16``) run the same tests on a GPU,
as ``benchmarks/gpu_check.sh`` does; flash-attn computes attention in bf16, so tolerances widen there.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch

from ume_rl.models.ume import flash_attn_available
from ume_rl.rewards.engine.batching import plan_batches
from ume_rl.rewards.engine.ume_scoring import UmeScorer

DEVICE = os.environ.get("UME_RL_TEST_DEVICE", "cpu")
DTYPE = os.environ.get("UME_RL_TEST_DTYPE") or None
LOW_PRECISION = DTYPE in ("bf16", "fp16") or (DEVICE == "cuda" and flash_attn_available())
TOL = 5e-2 if LOW_PRECISION else 1e-4  # against the naive fp32 reference
INV_TOL = 5e-2 if LOW_PRECISION else 1e-5  # batch invariance

SEQS = ["CCO", "MKVLAAGGW", "ACGTACGTTTGA", "c1ccccc1O", "MK", "GATTACA"]
MODS = ["SMILES", "amino_acid", "nucleotide", "SMILES", "amino_acid", "nucleotide"]


@torch.no_grad()
def naive_scores(ume, sequences, modalities, masked: bool) -> list[float]:
    """Reference: one sequence per forward, batch of one, no padding, decoder on every position;
    masked: one forward per residue position."""
    flex = ume.model
    out = []
    for sequence, modality in zip(sequences, modalities, strict=True):
        ids = ume.get_tokenizer(modality)([sequence])["input_ids"][0]
        x = torch.tensor([ids], device=DEVICE)
        logps = []
        positions = range(1, len(ids) - 1)
        if masked:
            for p in positions:
                y = x.clone()
                y[0, p] = flex.mask_token_id
                logits = flex.decoder(flex.model(input_ids=y, attention_mask=torch.ones_like(y)))
                logps.append(torch.log_softmax(logits[0, p], -1)[ids[p]].item())
        else:
            logits = flex.decoder(flex.model(input_ids=x, attention_mask=torch.ones_like(x)))
            logp = torch.log_softmax(logits[0], -1)
            logps = [logp[p, ids[p]].item() for p in positions]
        out.append(sum(logps) / len(logps))
    return out


@pytest.fixture(scope="module")
def ume(tiny_ume):
    """The tiny UME as ``load_ume("tiny")`` gives it: the unpadded varlen layout exactly when flash-attn is
    used (CUDA and flash_attn importable), else padded (same weights either way, as ``build_tiny_ume``)."""
    if DEVICE == "cpu":
        return tiny_ume
    from ume_rl.models.ume import load_ume

    return load_ume("tiny", device=DEVICE)


@pytest.fixture(scope="module")
def padded_ume(tiny_ume):
    """Truth for the references: the padded SDPA layout in fp32 (same seed, same weights)."""
    return copy.deepcopy(tiny_ume).to(DEVICE)


@pytest.fixture(scope="module")
def unpadded_ume():
    from ume_rl.models.ume import build_tiny_ume

    ume = build_tiny_ume(layout="unpadded")
    ume.freeze()
    return ume.eval().to(DEVICE)


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
def test_matches_naive_reference(ume, padded_ume, mode):
    # A small budget forces several batches, mixed lengths and padding inside batches.
    scorer = UmeScorer(ume, mode=mode, token_budget=64, dtype=DTYPE)
    got = scorer.score(SEQS, MODS)
    want = naive_scores(padded_ume, SEQS, MODS, masked=mode == "masked")
    assert got == pytest.approx(want, abs=TOL)
    assert all(s < 0 for s in got)
    assert scorer.stats["forwards"] > 1


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
def test_batch_invariance_order_and_determinism(ume, mode):
    scorer = UmeScorer(ume, mode=mode, dtype=DTYPE)
    alone = scorer.score(["MKVLAAGGW"], ["amino_acid"])[0]
    crowd_seqs = ["ACGT" * 12, "CCO", "MKVLAAGGW", "C" * 20, "GATTACA" * 4]
    crowd_mods = ["nucleotide", "SMILES", "amino_acid", "SMILES", "nucleotide"]
    crowded = scorer.score(crowd_seqs, crowd_mods)
    assert crowded[2] == pytest.approx(alone, abs=INV_TOL)
    assert scorer.score(crowd_seqs, crowd_mods) == crowded  # deterministic
    order = [4, 2, 0, 3, 1]
    permuted = scorer.score([crowd_seqs[i] for i in order], [crowd_mods[i] for i in order])
    assert permuted == pytest.approx([crowded[i] for i in order], abs=INV_TOL)
    tight = UmeScorer(ume, mode=mode, token_budget=1, dtype=DTYPE).score(
        crowd_seqs, crowd_mods
    )  # a row per forward
    assert tight == pytest.approx(crowded, abs=INV_TOL)


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
def test_unpadded_layout_is_exact(padded_ume, unpadded_ume, mode):
    """The unpadded SDPA layout mixes the sequences of one forward; the scorer must not."""
    scorer = UmeScorer(unpadded_ume, mode=mode, dtype=DTYPE)
    got = scorer.score(SEQS, MODS)
    # Same seed, same weights: the padded layout's naive reference is the truth for both.
    assert got == pytest.approx(naive_scores(padded_ume, SEQS, MODS, masked=mode == "masked"), abs=TOL)
    # ... and it is what the unpadded model itself computes for one sequence at a time.
    want = naive_scores(unpadded_ume, SEQS[:2], MODS[:2], masked=mode == "masked")
    assert got[:2] == pytest.approx(want, abs=TOL)


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
def test_varlen_indexing_one_row_per_forward(padded_ume, unpadded_ume, mode, monkeypatch):
    """The flash-attn path's packing (flat ids, position ids, cu_seqlens), checked on CPU where lobster's
    unpadded SDPA is exact for a single row per forward (token_budget=1)."""
    scorer = UmeScorer(unpadded_ume, mode=mode, token_budget=1, dtype=DTYPE)
    if DEVICE == "cpu":
        monkeypatch.setattr(scorer, "_layout", lambda: "varlen")
    got = scorer.score(SEQS, MODS)
    assert got == pytest.approx(naive_scores(padded_ume, SEQS, MODS, masked=mode == "masked"), abs=TOL)


@pytest.mark.skipif(DEVICE != "cpu" and flash_attn_available(), reason="flash-attn: no twin")
def test_unpadded_twin_shares_weights(unpadded_ume):
    scorer = UmeScorer(unpadded_ume, mode="unmasked")
    scorer.score(["MKV", "MKVL"], ["amino_acid"] * 2)  # lengths differ: padded twin with key mask
    (twin,) = scorer._twins.values()
    original = dict(unpadded_ume.model.model.named_parameters())
    for name, param in twin.named_parameters():
        assert param.data_ptr() == original[name].data_ptr()


def test_too_long_is_nan_and_counted(ume):
    scorer = UmeScorer(ume, mode="unmasked", dtype=DTYPE)
    limit = scorer.max_length  # tokens, CLS and EOS included
    scores = scorer.score(
        ["A" * (limit - 2), "A" * (limit - 1), "CCO"], ["nucleotide", "nucleotide", "SMILES"]
    )
    assert math.isfinite(scores[0]) and math.isnan(scores[1]) and math.isfinite(scores[2])
    assert scorer.stats["too_long"] == 1


def test_unknown_tokens_are_nan_and_counted(ume):
    """RDKit accepts [Og] and [Fe@@H3]; UME's SMILES tokenizer maps them to <unk>, which is not a residue."""
    scorer = UmeScorer(ume, mode="unmasked", dtype=DTYPE)
    sequences = ["[Og]", "c1ccccc1[Fe@@H3]", "CCO"]
    ids = scorer.encode(sequences, ["SMILES"] * 3)
    assert [scorer.unk_token_id in t for t in ids] == [True, True, False]
    scores = scorer.score(sequences, ["SMILES"] * 3)
    assert math.isnan(scores[0]) and math.isnan(scores[1]) and math.isfinite(scores[2])
    assert scorer.stats["unknown_token"] == 2 and scorer.stats["too_long"] == 0


def test_encoder_only_runs_the_packed_batches(ume):
    scorer = UmeScorer(ume, mode="unmasked", dtype=DTYPE, token_budget=64)
    ids = scorer.encode(SEQS, MODS)
    outputs = scorer.encoder_only(ids)()
    scorer.score_ids(ids)
    assert len(outputs) == scorer.stats["forwards"] > 1
    hidden = ume.model.config.hidden_size
    assert sum(o.reshape(-1, hidden).shape[0] for o in outputs) >= sum(len(t) for t in ids)


def test_inputs_are_checked(ume):
    from lobster.constants import Modality

    scorer = UmeScorer(ume, mode="unmasked", dtype=DTYPE)
    by_enum = scorer.score(["CCO", "MKV"], [Modality.SMILES, Modality.AMINO_ACID])
    assert by_enum == scorer.score(["CCO", "MKV"], ["SMILES", "amino_acid"])
    with pytest.raises(ValueError, match="no residue"):
        scorer.score(["CCO", ""], ["SMILES", "SMILES"])
    with pytest.raises(ValueError, match="2 sequences but 1"):
        scorer.score(["CCO", "CC"], ["SMILES"])
    with pytest.raises(ValueError, match="mode"):
        UmeScorer(ume, mode="pll")
    assert scorer.score([], []) == []


def test_bf16_autocast_is_close(ume):
    fp32 = UmeScorer(ume, mode="unmasked").score(SEQS, MODS)
    bf16 = UmeScorer(ume, mode="unmasked", dtype="bf16").score(SEQS, MODS)
    assert bf16 == pytest.approx(fp32, abs=0.05)


def test_plan_batches_respects_the_budget():
    lengths = [7, 3, 12, 3, 5, 40, 9, 9, 1]
    batches = plan_batches(lengths, token_budget=20)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 20
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)
    for batch in plan_batches(lengths, token_budget=100, same_length=True):
        assert len({lengths[i] for i in batch}) == 1


def test_plan_batches_buckets_lengths():
    lengths = [20, 200, 22, 198, 25, 60]
    batches = plan_batches(lengths, token_budget=10_000, max_padding=0.25)
    for batch in batches:
        area = len(batch) * max(lengths[i] for i in batch)
        assert area - sum(lengths[i] for i in batch) <= 0.25 * area
    assert [0, 2, 4] in batches and [3, 1] in batches


# ---------------------------------------------------------------------------------- shape ladder (pad_shapes)


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
def test_pad_shapes_is_exact_and_uses_ladder_shapes(ume, padded_ume, mode):
    from ume_rl.rewards.engine.batching import ShapeLadder

    scorer = UmeScorer(ume, mode=mode, token_budget=64, dtype=DTYPE, pad_shapes=True)
    got = scorer.score(SEQS, MODS)
    assert got == pytest.approx(naive_scores(padded_ume, SEQS, MODS, masked=mode == "masked"), abs=TOL)
    plain = UmeScorer(ume, mode=mode, token_budget=64, dtype=DTYPE, pad_shapes=False).score(SEQS, MODS)
    assert got == pytest.approx(plain, abs=INV_TOL)
    if scorer._layout() in ("padded", "unpadded_sdpa"):
        ladder = ShapeLadder.for_max_length(scorer.max_length, most_rows=64)
        ids = scorer.encode(SEQS, MODS)
        shapes = {(len(h["row_local"]), h["base"].shape[1]) for _, h, _, _ in scorer._batches(ids)}
        assert all(rows in ladder.rows and width in ladder.widths for rows, width in shapes)
        assert scorer.stats["padded_tokens"] > scorer.stats["tokens"]


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
def test_pad_shapes_unpadded_checkpoint_and_batch_invariance(padded_ume, unpadded_ume, mode):
    scorer = UmeScorer(unpadded_ume, mode=mode, dtype=DTYPE, pad_shapes=True)
    got = scorer.score(SEQS, MODS)
    assert got == pytest.approx(naive_scores(padded_ume, SEQS, MODS, masked=mode == "masked"), abs=TOL)
    alone = [scorer.score([s], [m])[0] for s, m in zip(SEQS, MODS, strict=True)]
    assert got == pytest.approx(alone, abs=INV_TOL)


def test_padding_rows_are_never_scored():
    from ume_rl.rewards.engine.batching import batch_arrays

    ids = [[0, 5, 6, 2], [0, 7, 8, 9, 2], [0, 5, 2]]
    seqs, positions = np.array([0, 1, 2]), np.full(3, -1)
    host = batch_arrays(ids, seqs, positions, "padded", 1, masked=False, width=16, rows=6)
    assert host["base"].shape == (3, 16) and len(host["row_local"]) == 6
    assert host["real_rows"] == 3 and host["sel_row"].max() == 2
    assert host["targets"].tolist() == [5, 6, 7, 8, 9, 5]  # residues of the three real rows only
    assert host["owner"].tolist() == [0, 0, 1, 1, 1, 2]
    assert host["attention_mask"].sum(1).tolist() == [4, 5, 3, 4, 4, 4]  # padding rows repeat row 0
    masked = batch_arrays(ids, np.array([1, 1, 1]), np.array([1, 2, 3]), "padded", 1, True, width=16, rows=4)
    assert masked["targets"].tolist() == [7, 8, 9] and masked["row_pos"].tolist() == [1, 2, 3, 1]
    # a tokenizer with CLS only (Nucleotide Transformer): the last token is a residue, padding rows still unscored
    cls_only = batch_arrays(ids, seqs, positions, "padded", 1, False, (1, 0), width=16, rows=4)
    assert cls_only["targets"].tolist() == [5, 6, 2, 7, 8, 9, 2, 5, 2]
    assert cls_only["owner"].tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2] and cls_only["sel_row"].max() == 2


def test_warmup_runs_every_ladder_shape_without_touching_stats(ume):
    scorer = UmeScorer(ume, mode="masked", token_budget=64, dtype=DTYPE, pad_shapes=True)
    if scorer._layout() not in ("padded", "unpadded_sdpa"):
        pytest.skip("the ladder applies to the padded layouts")
    before = dict(scorer.stats)
    forwards = scorer.warmup()
    assert forwards >= 2 * 16  # every width, with and without a key mask
    assert scorer.stats == before
    assert UmeScorer(ume, pad_shapes=False).warmup() == 0


def test_plan_batches_with_a_ladder_keeps_the_budget():
    from ume_rl.rewards.engine.batching import ShapeLadder

    ladder = ShapeLadder.for_max_length(512)
    assert ladder.widths == (16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 368, 432, 512)
    assert ladder.rows[:10] == (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
    lengths = [17, 17, 17, 30, 100, 120, 512, 3]
    for budget in (64, 200, 1000):
        batches = plan_batches(lengths, token_budget=budget, ladder=ladder)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for batch in batches:
            width, rows = ladder.width(max(lengths[i] for i in batch)), ladder.row_count(len(batch))
            assert len(batch) == 1 or rows * width <= budget


# ---------------------------------------------------------------------------------- dedup and cache


def test_identical_sequences_are_scored_once(ume):
    seqs = ["CCO", "MKVLAAGGW", "CCO", "CCO", "ACGTACGTTTGA", "MKVLAAGGW"]
    mods = ["SMILES", "amino_acid", "SMILES", "SMILES", "nucleotide", "amino_acid"]
    every = UmeScorer(ume, mode="masked", dtype=DTYPE, dedup=False)
    once = UmeScorer(ume, mode="masked", dtype=DTYPE)
    assert once.score(seqs, mods) == pytest.approx(every.score(seqs, mods), abs=INV_TOL)
    assert once.stats["duplicates"] == 3 and every.stats["duplicates"] == 0
    residues = [len(t) - 2 for t in once.encode(seqs, mods)]
    assert every.stats["rows"] == sum(residues)  # masked: one row per residue of every sequence
    assert once.stats["rows"] == residues[0] + residues[1] + residues[4]


def test_cache_across_calls_is_bounded_and_follows_the_weights(tiny_ume):
    ume = copy.deepcopy(tiny_ume).to(DEVICE)
    scorer = UmeScorer(ume, mode="unmasked", dtype=DTYPE, cache_size=2)
    first = scorer.score(["CCO", "MKV", "ACGT"], ["SMILES", "amino_acid", "nucleotide"])
    assert len(scorer.memo) == 2  # bounded: the oldest was evicted
    forwards = scorer.stats["forwards"]
    assert scorer.score(["ACGT", "MKV"], ["nucleotide", "amino_acid"]) == [first[2], first[1]]
    assert scorer.stats["forwards"] == forwards and scorer.stats["cache_hits"] == 2
    with torch.no_grad():
        ume.model.decoder[1].weight.mul_(1.5)  # new weights: remembered scores must not be reused
    changed = scorer.score(["ACGT"], ["nucleotide"])[0]
    assert scorer.stats["forwards"] == forwards + 1 and scorer.stats["cache_hits"] == 2
    assert changed == pytest.approx(
        UmeScorer(ume, mode="unmasked", dtype=DTYPE).score(["ACGT"], ["nucleotide"])[0]
    )
    assert abs(changed - first[2]) > 1e-3
