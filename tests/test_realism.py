"""Realism metrics: each moves the right way on sequences built to be close to or far from the reference."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest

from ume_rl.training.realism import composition, gc_content, kl_divergence, realism_metrics


def _frame(modality, sequences, valid=None):
    valid = valid or [True] * len(sequences)
    return pd.DataFrame({"modality": modality, "valid": valid, "sequence": sequences})


def test_composition_is_smoothed_and_sums_to_one():
    freqs = composition(["AAAA"], "ACGT", k=2)
    assert len(freqs) == 16 and math.isclose(sum(freqs.values()), 1.0)
    assert min(freqs.values()) > 0  # unseen 2-mers keep a finite share
    assert kl_divergence(freqs, freqs) == 0.0


def test_kl_is_lower_for_the_same_distribution_than_for_a_repeat():
    rng = random.Random(0)
    real = ["".join(rng.choice("ACGT") for _ in range(200)) for _ in range(20)]
    similar = ["".join(rng.choice("ACGT") for _ in range(200)) for _ in range(20)]
    table_close = realism_metrics(_frame("nucleotide", similar), {"nucleotide": real})
    table_far = realism_metrics(_frame("nucleotide", ["ACACACACAC" * 20] * 20), {"nucleotide": real})
    assert (
        table_close.loc[("nucleotide", "kmer3_kl"), "value"]
        < table_far.loc[("nucleotide", "kmer3_kl"), "value"]
    )
    assert table_far.loc[("nucleotide", "gc"), "value"] == pytest.approx(0.5)
    assert gc_content(["GGCC", "AATT"]) == 0.5


def test_protein_composition_divergence_and_validity():
    real = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERS"]
    table = realism_metrics(
        _frame("amino_acid", ["AAAAAAAAAA", None], valid=[True, False]), {"amino_acid": real}
    )
    assert table.loc[("amino_acid", "valid"), "value"] == 0.5
    shuffled = ["".join(random.Random(1).sample(s, len(s))) for s in real]  # same composition
    close = realism_metrics(_frame("amino_acid", shuffled), {"amino_acid": real})
    assert close.loc[("amino_acid", "aa_kl"), "value"] == pytest.approx(0.0, abs=1e-12)
    assert table.loc[("amino_acid", "aa_kl"), "value"] > 0.3  # a homopolymer is far from real proteins
    assert "SMILES" not in table.index.get_level_values(0)


def test_smiles_uniqueness_novelty_and_qed():
    completions = _frame("SMILES", ["CCO", "OCC", "c1ccccc1O", None], valid=[True, True, True, False])
    table = realism_metrics(completions, {"SMILES": ["CC(=O)Oc1ccccc1C(=O)O"]}, known=["C(O)C"])
    assert table.loc[("SMILES", "valid"), "value"] == 0.75
    assert table.loc[("SMILES", "unique"), "value"] == pytest.approx(2 / 3)  # CCO and OCC are one molecule
    assert (
        table.loc[("SMILES", "novel"), "value"] == 0.5
    )  # ethanol is known (another spelling), phenol is not
    assert 0 < table.loc[("SMILES", "qed"), "value"] < 1 and 0 < table.loc[("SMILES", "qed"), "reference"] < 1


def test_moved_toward_corpus_compares_distances_to_the_corpus():
    import math

    import pandas as pd

    from ume_rl.training.realism import moved_toward_corpus

    index = pd.MultiIndex.from_tuples(
        [("SMILES", "qed"), ("SMILES", "novel"), ("amino_acid", "aa_kl"), ("nucleotide", "gc")]
    )
    table = pd.DataFrame(
        {
            "warm start": [0.30, 0.9, 0.20, 0.40],
            "GRPO": [0.50, 0.5, 0.25, 0.46],
            "corpus": [0.55, math.nan, 0.0, 0.50],
        },
        index=index,
    )
    moves = moved_toward_corpus(table, "warm start", "GRPO")
    assert moves["toward_corpus"].tolist() == [True, None, False, True]
    assert moves.loc[("amino_acid", "aa_kl"), "distance_after"] == pytest.approx(0.25)
