"""The ``spaced`` mode (approximate masked pseudo-log-likelihood): k spaced residues masked per row.

Checked against a naive reference (one sequence per forward, the masked copies built by hand), on both UME
code paths (the last-layer shortcut and the whole encoder), on a Hugging Face masked LM, and against the exact
``masked`` mode (k=1 is that mode exactly).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from ume_rl.rewards.engine.batching import batch_arrays, spaced_rows
from ume_rl.rewards.engine.ume_scoring import UmeScorer

SEQS = ["CCO", "MKVLAAGGWTRE", "ACGTACGTTTGAC", "c1ccccc1O", "MK", "GATTACA"]
MODS = ["SMILES", "amino_acid", "nucleotide", "SMILES", "amino_acid", "nucleotide"]
TOL = 1e-4


def spaced_groups(n: int, k: int) -> list[list[int]]:
    """Residue indices (0-based) masked together: rows of ``ceil(n / k)``-spaced residues."""
    stride = math.ceil(n / k)
    return [list(range(r, n, stride)) for r in range(stride)]


@torch.no_grad()
def naive_spaced(ume, sequences, modalities, k: int) -> list[float]:
    """Reference: one forward per row of one sequence, no padding, decoder on every position."""
    flex = ume.model
    out = []
    for sequence, modality in zip(sequences, modalities, strict=True):
        ids = ume.get_tokenizer(modality)([sequence])["input_ids"][0]
        x = torch.tensor([ids])
        total, n = 0.0, len(ids) - 2
        for group in spaced_groups(n, k):
            y = x.clone()
            y[0, [1 + g for g in group]] = flex.mask_token_id
            logp = torch.log_softmax(
                flex.decoder(flex.model(input_ids=y, attention_mask=torch.ones_like(y)))[0], -1
            )
            total += sum(logp[1 + g, ids[1 + g]].item() for g in group)
        out.append(total / n)
    return out


@pytest.fixture(scope="module")
def padded_ume(tiny_ume):
    return copy.deepcopy(tiny_ume)


def test_spaced_rows_mask_each_residue_exactly_once():
    ids = [[0, *range(10, 10 + n), 2] for n in (1, 2, 5, 7, 13)]
    for k in (1, 2, 3, 4, 8, 20):
        seqs, positions = spaced_rows([len(t) - 2 for t in ids], k)
        host = batch_arrays(ids, seqs, positions, "padded", 1, True, per_row=k, width=32, rows=len(seqs) + 3)
        for i, t in enumerate(ids):
            n = len(t) - 2
            assert (seqs == i).sum() == math.ceil(n / k)
            scored = np.sort(host["sel_pos"][host["owner"] == i])
            assert scored.tolist() == list(range(1, n + 1))  # every residue once, no special token
        row_pos = host["row_pos"]
        assert row_pos.shape == ((len(seqs) + 3, k) if k > 1 else (len(seqs) + 3,))
        # the scored targets are the residues at their positions, and each row masks what it scores
        assert host["targets"].tolist() == [
            ids[o][p] for o, p in zip(host["owner"], host["sel_pos"], strict=True)
        ]
        if k > 1:
            assert (row_pos[host["sel_row"], host["sel_slot"]] == host["sel_pos"]).all()


def test_masks_are_spaced_as_documented():
    seqs, positions = spaced_rows(
        [10], per_row=3
    )  # stride ceil(10 / 3) = 4: rows {0,4,8} {1,5,9} {2,6} {3,7}
    host = batch_arrays([[0, *range(10), 2]], seqs, positions, "padded", 1, True, per_row=3)
    groups = [sorted(host["sel_pos"][host["sel_row"] == r] - 1) for r in range(len(seqs))]
    assert (
        [list(map(int, g)) for g in groups] == spaced_groups(10, 3) == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    )


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("pad_shapes", [False, True])
def test_spaced_matches_the_naive_reference_on_the_last_layer_shortcut(padded_ume, k, pad_shapes):
    scorer = UmeScorer(padded_ume, mode="spaced", masks_per_row=k, pad_shapes=pad_shapes, token_budget=128)
    got = scorer.score(SEQS, MODS)
    assert got == pytest.approx(naive_spaced(padded_ume, SEQS, MODS, k), abs=TOL)
    n = [len(t) - 2 for t in scorer.encode(SEQS, MODS)]
    assert scorer.stats["rows"] == sum(math.ceil(x / k) for x in n)
    alone = [scorer.score([s], [m])[0] for s, m in zip(SEQS, MODS, strict=True)]
    assert got == pytest.approx(alone, abs=1e-5)  # batch-invariant


def test_spaced_matches_the_naive_reference_on_the_whole_encoder(padded_ume):
    from ume_rl.models.ume import build_tiny_ume

    unpadded = build_tiny_ume(
        layout="unpadded"
    )  # lobster's unpadded SDPA: the scorer's padded twin, no shortcut
    unpadded.freeze()
    unpadded.eval()
    scorer = UmeScorer(unpadded, mode="spaced", masks_per_row=3)
    assert scorer.score(SEQS, MODS) == pytest.approx(naive_spaced(padded_ume, SEQS, MODS, 3), abs=TOL)


def test_one_mask_per_row_is_the_exact_masked_mode(padded_ume):
    exact = UmeScorer(padded_ume, mode="masked").score(SEQS, MODS)
    one = UmeScorer(padded_ume, mode="spaced", masks_per_row=1)
    assert one.score(SEQS, MODS) == pytest.approx(exact, abs=1e-6)
    four = UmeScorer(padded_ume, mode="spaced", masks_per_row=4).score(SEQS, MODS)
    assert max(abs(a - b) for a, b in zip(four, exact, strict=True)) > 1e-4  # more masks: another score


def test_a_sequence_shorter_than_k_is_one_fully_masked_row(padded_ume):
    scorer = UmeScorer(padded_ume, mode="spaced", masks_per_row=8)
    got = scorer.score(["MKV"], ["amino_acid"])
    assert scorer.stats["rows"] == 1
    assert got == pytest.approx(naive_spaced(padded_ume, ["MKV"], ["amino_acid"], 8), abs=TOL)


def test_spaced_on_a_hugging_face_masked_lm(tiny_mlms):
    from ume_rl.rewards.engine.hf_scoring import HFMaskedLMScorer

    mlm = tiny_mlms["amino_acid"]
    seqs = ["MKVLAAGGWTRE", "MKV", "ACDEFGHIK"]
    exact = HFMaskedLMScorer(mlm, mode="masked").score(seqs, ["amino_acid"] * 3)
    one = HFMaskedLMScorer(mlm, mode="spaced", masks_per_row=1).score(seqs, ["amino_acid"] * 3)
    assert one == pytest.approx(exact, abs=1e-5)
    scorer = HFMaskedLMScorer(mlm, mode="spaced", masks_per_row=3, normalize="token")
    got = scorer.score(seqs, ["amino_acid"] * 3)
    want = []
    with torch.no_grad():
        for ids in scorer.encode(seqs, ["amino_acid"] * 3):
            first, last = scorer.specials
            n, total = len(ids) - first - last, 0.0
            for group in spaced_groups(n, 3):
                y = torch.tensor([ids])
                y[0, [first + g for g in group]] = mlm.tokenizer.mask_token_id
                logp = torch.log_softmax(mlm.model(input_ids=y).logits[0], -1)
                total += sum(logp[first + g, ids[first + g]].item() for g in group)
            want.append(total / n)
    assert got == pytest.approx(want, abs=TOL)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_masks_per_row_must_be_a_positive_integer(tiny_ume, bad):
    with pytest.raises(ValueError, match="masks_per_row must be a positive integer"):
        UmeScorer(tiny_ume, mode="spaced", masks_per_row=bad)


def test_the_reward_runs_the_spaced_mode_and_never_shares_a_cache_entry_across_k(tiny_ume):
    from ume_rl.rewards.masked_lm import MaskedLMReward

    reward = MaskedLMReward(tiny_ume, mode="spaced", masks_per_row=2)
    assert reward.mode == "spaced" and reward.scorer.masks_per_row == 2
    rewards = reward(["<protein>MKVLAAGGWTRE</protein>", "<dna>ACGU</dna>"])
    score = UmeScorer(tiny_ume, mode="spaced", masks_per_row=2).score(["MKVLAAGGWTRE"], ["amino_acid"])[0]
    assert rewards[0] == pytest.approx(score / reward.temperature, abs=1e-4)
    assert rewards[1] == reward.penalty
    two = UmeScorer(tiny_ume, mode="spaced", masks_per_row=2)
    three = UmeScorer(tiny_ume, mode="spaced", masks_per_row=3)
    assert two._memo_tag() != three._memo_tag()
