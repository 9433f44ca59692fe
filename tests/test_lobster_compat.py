"""The seed guide's calls, verbatim: UmeRewardFunction on a bare SMILES, compute_pseudo_likelihood, detect_modality."""

from __future__ import annotations

import math

import pytest
from lobster.constants import Modality

import ume_rl
from ume_rl.lobster_compat import (
    UMERewardFunction,
    UmeRewardFunction,
    compute_pseudo_likelihood,
    create_ume_reward_wrapper,
    detect_modality,
)
from ume_rl.models import load_ume
from ume_rl.rewards.scoring import UmeScorer
from ume_rl.rewards.ume import UmeReward

IBUPROFEN = "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O"


def test_guide_reward_call_scores_a_bare_smiles():
    # "Testing Reward Functions", with the tiny UME in place of Ume.from_pretrained(...)
    reward_func = UmeRewardFunction(load_ume("tiny"), temperature=0.1)
    rewards = reward_func(["CC(C)CC1=CC=C(C=C1)C(C)C(=O)O"])
    assert len(rewards) == 1 and math.isfinite(rewards[0])
    assert rewards[0] > reward_func.penalty_for_invalid  # a real score, not the penalty
    score = UmeScorer(reward_func.scorer.ume).score([IBUPROFEN], ["SMILES"])[0]
    assert rewards[0] == pytest.approx(score / 0.1, abs=1e-5)
    assert reward_func.get_statistics()["modality_counts"] == {"SMILES": 1}


def test_the_guide_names_are_exported_and_one_class():
    assert UmeRewardFunction is UMERewardFunction
    assert ume_rl.UmeRewardFunction is UMERewardFunction
    assert ume_rl.compute_pseudo_likelihood is compute_pseudo_likelihood
    assert ume_rl.detect_modality is detect_modality


@pytest.mark.parametrize(
    ("sequence", "modality"),
    [
        (IBUPROFEN, Modality.SMILES),  # the guide's example
        ("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", Modality.AMINO_ACID),
        ("ATGCGTACGTTAGCCGATAG", Modality.NUCLEOTIDE),
        ("acgt", Modality.NUCLEOTIDE),
        ("CCO", Modality.SMILES),
        ("CCC", Modality.NUCLEOTIDE),  # lobster's rules: DNA letters first, even for propane
        ("CNC", Modality.AMINO_ACID),
        ("ClCCl", Modality.SMILES),  # lobster upper-cases to CLCCL and reads a protein
        ("[Na+].[Cl-]", Modality.SMILES),  # lobster rejects the upper-cased [NA+]
        ("c1ccccc1Br", Modality.SMILES),
    ],
)
def test_detect_modality_follows_lobster(sequence, modality):
    assert detect_modality(sequence) == modality


@pytest.mark.parametrize("text", ["AC", "hello world", "XYZ", "MkVl"])
def test_detect_modality_errors_like_lobster(text):
    with pytest.raises(ValueError):
        detect_modality(text)


def test_detect_modality_agrees_with_lobster_where_lobster_behaves():
    from lobster.model.utils import _detect_modality

    for text in (IBUPROFEN, "MKTAYIAKQR", "ACGTAC", "CCO", "CCC", "CNC", "c1ccsc1", "[nH]1cccc1", "mkvl"):
        assert detect_modality(text) == _detect_modality(text)


def test_compute_pseudo_likelihood_is_the_scorer(tiny_ume, tiny_mlms):
    sequences = ["CCO", IBUPROFEN]
    got = compute_pseudo_likelihood(tiny_ume, sequences, Modality.SMILES)
    assert got == UmeScorer(tiny_ume).score(sequences, ["SMILES"] * 2)
    assert all(math.isfinite(s) and s < 0 for s in got)
    unmasked = compute_pseudo_likelihood(tiny_ume, sequences, "SMILES", mode="unmasked")
    assert unmasked == UmeScorer(tiny_ume, mode="unmasked").score(sequences, ["SMILES"] * 2) != got
    esm = compute_pseudo_likelihood(tiny_mlms["amino_acid"], ["MKVL", "MKJ"], Modality.AMINO_ACID)
    assert math.isfinite(esm[0]) and math.isnan(esm[1])  # J: <unk> in ESM-2's vocabulary
    with pytest.raises(ValueError, match="scores amino_acid"):
        compute_pseudo_likelihood(tiny_mlms["amino_acid"], ["CCO"], Modality.SMILES)


def test_bare_sequences_detect_only_when_asked(tiny_ume):
    bare = [IBUPROFEN, "MKTAYIAKQR", "ACGTACGT", "Sure, here it is", "<dna>ACGT</dna>"]
    strict = UmeReward(tiny_ume, mode="unmasked")  # the core reward: tags required (the prompts ask for them)
    assert [r["reason"] for r in strict.details(bare)] == ["no_tag"] * 4 + [None]
    detecting = UmeReward(tiny_ume, mode="unmasked", untagged="detect")
    rows = detecting.details(bare)
    assert [r["modality"] for r in rows] == ["SMILES", "amino_acid", "nucleotide", None, "nucleotide"]
    assert [r["reason"] for r in rows] == [None, None, None, "no_tag", None]
    # with the dataset's modality column: text valid for that modality is read as it, otherwise wrong_modality
    rows = detecting.details(["ACGT", "ACGT", "CCO"], modality=["amino_acid", "SMILES", "amino_acid"])
    assert [(r["modality"], r["reason"]) for r in rows] == [
        ("amino_acid", None),
        ("nucleotide", "wrong_modality"),
        ("SMILES", "wrong_modality"),
    ]
    wrapped = create_ume_reward_wrapper(tiny_ume, mode="unmasked")
    assert wrapped([IBUPROFEN])[0] > wrapped.penalty
    assert create_ume_reward_wrapper(tiny_ume, mode="unmasked", untagged="invalid")([IBUPROFEN]) == [
        wrapped.penalty
    ]
    with pytest.raises(ValueError, match="untagged"):
        UmeReward(tiny_ume, untagged="guess")
