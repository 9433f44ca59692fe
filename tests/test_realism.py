"""Realism metrics: each one on inputs whose answer is known, and the suite's reference and table."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest

from ume_rl.training import sequence_metrics as seqm
from ume_rl.training import smiles_metrics as molm
from ume_rl.training.realism import RealismSuite, moved_toward_corpus

AMINO = "ACDEFGHIKLMNPQRSTVWY"
DRUGS = [
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1CCC[C@H]1c1cccnc1",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",
    "O=C(O)c1ccccc1O",
    "CC(=O)Nc1ccc(O)cc1",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "CCN(CC)CCOC(=O)c1ccc(N)cc1",
    "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "CC(C)NCC(O)COc1cccc2ccccc12",
    "Clc1ccc(cc1)C(c1ccccc1)N1CCNCC1",
    "OC(=O)CCc1ccccc1",
]


def _random(alphabet, n, length, seed):
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(length)) for _ in range(n)]


# ------------------------------------------------------------------------------------------ sequences


def test_composition_is_smoothed_and_sums_to_one():
    freqs = seqm.composition(["AAAA"], "ACGT", k=2)
    assert len(freqs) == 16 and math.isclose(sum(freqs.values()), 1.0)
    assert min(freqs.values()) > 0  # unseen 2-mers keep a finite share
    assert seqm.kl_divergence(freqs, freqs) == 0.0
    assert seqm.gc_content(["GGCC", "AATT"]) == 0.5


def test_novelty_is_zero_for_train_copies_and_one_for_unrelated_sequences():
    train = _random(AMINO, 30, 80, seed=0)
    index = seqm.KmerIndex(train, k=3)
    fragments = [s[10:50] for s in train[:5]]  # copies of parts of train sequences
    assert index.novelty(fragments) == 0.0
    new = _random(AMINO, 5, 40, seed=99)
    assert 0.5 < index.novelty(new) <= 1.0


def test_kmer_diversity_is_zero_for_identical_sequences():
    assert seqm.kmer_diversity(["ACGTACGGT"] * 4, k=3) == 0.0
    assert seqm.kmer_diversity(_random("ACGT", 6, 60, seed=1), k=6) > 0.8
    assert math.isnan(seqm.kmer_diversity(["ACGT"], k=3))


def test_low_complexity_homopolymer_and_length():
    assert seqm.low_complexity_fraction(["A" * 30]) == 1.0
    assert seqm.low_complexity_fraction(_random(AMINO, 10, 60, seed=2)) < 0.05
    assert seqm.longest_homopolymer("ACGGGGT") == 4 and seqm.longest_homopolymer("") == 0
    assert seqm.length_distance(["AAA", "AAAAA"], ["CCC", "CCCCC"]) == 0.0
    assert seqm.length_distance(["A" * 10], ["A" * 30]) == 20.0


# ------------------------------------------------------------------------------------------- molecules


def test_internal_diversity_is_zero_for_identical_molecules():
    assert molm.internal_diversity(["CCO", "OCC", "C(O)C"]) == pytest.approx(0.0)
    assert molm.internal_diversity(DRUGS) > 0.7
    assert math.isnan(molm.internal_diversity(["CCO", "not a smiles"]))


def test_novelty_and_scaffold_novelty_against_the_train_split():
    known = molm.canonical_set(DRUGS)
    assert molm.novelty(["OC(=O)c1ccccc1O", "CC(=O)Oc1ccccc1C(O)=O"], known) == 0.0  # other spellings
    assert molm.novelty(["CCCCCCCCO"], known) == 1.0
    scaffolds = {molm.scaffold(s) for s in DRUGS}
    assert molm.scaffold_novelty(["Oc1ccccc1"], scaffolds) == 0.0  # benzene ring: a known scaffold
    assert molm.scaffold_novelty(["C1CCCCCCCCC1"], scaffolds) == 1.0


def test_qed_sa_and_their_distances():
    qed, sa = molm.qed_values(DRUGS), molm.sa_values(DRUGS)
    assert len(qed) == len(sa) == len(DRUGS)
    assert all(0 < q < 1 for q in qed) and all(1 <= s <= 10 for s in sa)
    assert molm.wasserstein(qed, qed) == 0.0
    assert molm.sa_values(["CCO"])[0] < molm.sa_values(["CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21"])[0]


def test_fcd_is_zero_for_a_set_against_itself_and_grows_for_another():
    stats = molm.chemnet_stats(DRUGS)
    assert molm.frechet_distance(stats, stats) == pytest.approx(0.0, abs=1e-3)
    alkanes = ["C" * n for n in range(2, 14)]
    assert molm.frechet_distance(molm.chemnet_stats(alkanes), stats) > 10
    assert molm.chemnet_stats(["CCO"]) is None and math.isnan(molm.frechet_distance(None, stats))


# --------------------------------------------------------------------------------------------- suite


@pytest.fixture(scope="module")
def suite():
    train = {
        "SMILES": DRUGS[:8],
        "amino_acid": _random(AMINO, 40, 80, seed=3),
        "nucleotide": _random("ACGT", 40, 150, seed=4),
    }
    heldout = {
        "SMILES": DRUGS[8:] + ["CCOC(=O)c1ccccc1", "Nc1ccccc1C(=O)O"],
        "amino_acid": _random(AMINO, 20, 60, seed=5),
        "nucleotide": _random("ACGT", 20, 120, seed=6),
    }
    return RealismSuite(train, heldout, moses=DRUGS)


def test_reference_values_put_the_held_out_sample_at_distance_zero(suite):
    dna = suite.reference("DNA")
    assert dna["kmer3_kl"] == 0.0 and dna["length_w1"] == 0.0 and dna["valid"] == 1.0
    assert 0.4 < dna["gc"] < 0.6 and dna["novel"] > 0.5
    smiles = suite.reference("SMILES")
    assert smiles["fcd_corpus"] == 0.0 and smiles["qed_w1"] == 0.0 and smiles["novel"] == 1.0
    assert smiles["fcd_moses"] > 0


def test_metrics_count_invalid_completions_and_skip_fcd_live(suite):
    values = suite.metrics("SMILES", ["CCO", "OCC", None, None], live=True)
    assert values["valid"] == 0.5 and values["unique"] == 0.5
    assert "fcd_moses" not in values and "int_div" in values
    assert all(math.isnan(v) for k, v in suite.metrics("protein", [None, None]).items() if k != "valid")
    logged = suite.log_values(["amino_acid", "nucleotide", None], ["ACDEFGHIK", None, "CCO"])
    assert logged["realism/protein/valid"] == 1.0 and logged["realism/DNA/valid"] == 0.0
    assert not any(key.startswith("realism/SMILES") for key in logged)


def test_a_homopolymer_policy_is_farther_from_the_corpus_on_every_distance(suite):
    real = _random(AMINO, 20, 60, seed=7)
    close, far = suite.metrics("protein", real), suite.metrics("protein", ["A" * 60] * 20)
    reference = suite.reference("protein")
    for name in ("aa_kl", "int_div", "low_complexity", "unique"):
        assert abs(far[name] - reference[name]) > abs(close[name] - reference[name]), name


def test_table_of_evaluation_completions(suite):
    frame = pd.DataFrame(
        {
            "modality": ["SMILES"] * 3 + ["nucleotide"] * 2,
            "valid": [True, False, False, True, True],
            "sequence": ["CCO", "c1ccccc1O", "C1CC", "ACGTACGTTT", "GGGGGGGGGG"],
        }
    )
    table = suite.table(frame)
    assert table.loc[("SMILES", "valid"), "value"] == pytest.approx(1 / 3)
    assert table.loc[("nucleotide", "homopolymer"), "value"] == pytest.approx((3 + 10) / 2)
    assert math.isnan(table.loc[("SMILES", "fcd_corpus"), "value"])  # one molecule: no covariance
    assert "amino_acid" not in table.index.get_level_values(0)
    assert list(table.columns) == ["value", "reference"]


def test_moved_toward_corpus_compares_distances_to_the_corpus():
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
