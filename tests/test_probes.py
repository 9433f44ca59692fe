"""Corruption and probe generators: seeded, and each produces what it claims."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ume_rl.data.generate import generate_synthetic_dataset
from ume_rl.inspection.probes import (
    PROBE_KINDS,
    VARIANT_KINDS,
    make_probes,
    make_variants,
    mutable_positions,
    point_mutations,
)
from ume_rl.rewards.complexity import normalized_entropy
from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE
from ume_rl.rewards.tags import extract_tagged_sequence


@pytest.fixture(scope="module")
def references():
    rows = generate_synthetic_dataset(n_per_modality=6, seed=3, progress=False)["full"]
    return list(rows["sequence"]), list(rows["modality"])


@pytest.fixture(scope="module")
def variants(references):
    return make_variants(*references, n_mutations=3, seed=7)


def _by_kind(rows, kind):
    return [r for r in rows if r["kind"] == kind]


def _hamming(a: str, b: str) -> int:
    assert len(a) == len(b)
    return sum(x != y for x, y in zip(a, b, strict=True))


def test_variants_are_deterministic_and_seeded(references):
    assert make_variants(*references, seed=7) == make_variants(*references, seed=7)
    assert make_variants(*references, seed=7) != make_variants(*references, seed=8)


def test_a_variant_depends_only_on_its_reference(references):
    sequences, modalities = references
    alone = make_variants(sequences[2:3], modalities[2:3], seed=7)
    together = [r for r in make_variants(sequences, modalities, seed=7) if r["source"] == 2]
    assert [r["sequence"] for r in alone] == [r["sequence"] for r in together]


def test_one_row_per_reference_and_kind(references, variants):
    assert len(variants) == len(references[0]) * len(VARIANT_KINDS)
    assert Counter(r["kind"] for r in variants) == dict.fromkeys(VARIANT_KINDS, len(references[0]))
    assert all(r["length"] == len(r["sequence"]) for r in variants)


def test_reference_rows_are_the_references_and_valid(references, variants):
    for row in _by_kind(variants, "reference"):
        assert row["sequence"] == references[0][row["source"]]
        assert extract_tagged_sequence(row["completion"], row["modality"]).reason is None


def test_shuffle_keeps_composition_and_moves_residues(references, variants):
    moved = 0
    for row in _by_kind(variants, "shuffled"):
        original = references[0][row["source"]]
        assert Counter(row["sequence"]) == Counter(original)
        moved += row["sequence"] != original
    assert moved == len(references[0])


def test_mutated_differs_in_exactly_k_positions(references, variants):
    for row in _by_kind(variants, "mutated"):
        original = references[0][row["source"]]
        k = int(row["detail"].split()[0])
        assert _hamming(row["sequence"], original) == k
        if row["modality"] != "SMILES":
            assert k == 3
            assert extract_tagged_sequence(row["completion"], row["modality"]).reason is None


@settings(max_examples=60, deadline=None)
@given(
    modality=st.sampled_from(["amino_acid", "nucleotide"]),
    data=st.data(),
    seed=st.integers(0, 10_000),
)
def test_point_mutations_property(modality, data, seed):
    alphabet = MODALITY_TABLE[modality].alphabet
    sequence = data.draw(st.text(alphabet=alphabet, min_size=1, max_size=80))
    k = data.draw(st.integers(0, len(sequence)))
    mutant = point_mutations(sequence, modality, k, random.Random(seed))
    assert _hamming(mutant, sequence) == k
    assert set(mutant) <= set(alphabet)


def test_smiles_mutations_skip_chlorine_and_bracket_atoms():
    smiles = "ClCC[NH3+]O"
    assert [smiles[i] for i in mutable_positions(smiles, "SMILES")] == ["C", "C", "O"]
    assert mutable_positions(smiles, "SMILES") == [2, 3, 10]
    with pytest.raises(ValueError, match="only 3 are mutable"):
        point_mutations(smiles, "SMILES", 4, random.Random(0))


def test_wrong_alphabet_is_invalid_for_the_reward(references, variants):
    for row in _by_kind(variants, "wrong_alphabet"):
        original = references[0][row["source"]]
        assert len(row["sequence"]) == len(original)
        changed = [c for c, o in zip(row["sequence"], original, strict=True) if c != o]
        assert changed and set(changed) <= set(MODALITY_TABLE[row["modality"]].foreign_alphabet)
        assert extract_tagged_sequence(row["completion"], row["modality"]).reason in {
            "bad_alphabet",
            "unparsable_smiles",
        }


def test_truncated_is_the_first_half(references, variants):
    for row in _by_kind(variants, "truncated"):
        original = references[0][row["source"]]
        assert row["sequence"] == original[: len(original) // 2]


def test_untagged_has_no_tag(references, variants):
    for row in _by_kind(variants, "untagged"):
        assert row["completion"] == references[0][row["source"]]
        assert extract_tagged_sequence(row["completion"], row["modality"]).reason == "no_tag"


def test_unknown_kind_or_modality_is_an_error():
    with pytest.raises(ValueError, match="unknown variant kinds"):
        make_variants(["ACGT"], ["nucleotide"], kinds=["reversed"])
    with pytest.raises(ValueError, match="unknown modality"):
        make_variants(["ACGT"], ["rna"])
    with pytest.raises(ValueError, match="unknown probe kinds"):
        make_probes(kinds=["palindrome"])


# ------------------------------------------------------------------------------------------------ probes


@pytest.fixture(scope="module")
def probes():
    return make_probes(n_per_kind=4, seed=11)


def test_probes_are_deterministic_and_counted(probes):
    assert make_probes(n_per_kind=4, seed=11) == probes
    assert make_probes(n_per_kind=4, seed=12) != probes
    assert Counter((r["modality"], r["kind"]) for r in probes) == {
        (m, k): 4 for m in MODALITIES for k in PROBE_KINDS
    }


def test_probes_are_valid_so_the_reward_must_score_them(probes):
    for row in probes:
        tagged = extract_tagged_sequence(row["completion"], row["modality"])
        assert tagged.reason is None, row
        lo, hi = MODALITY_TABLE[row["modality"]].length_range
        whole_units = row["kind"] == "tandem_repeat" and row["modality"] == "SMILES"  # at least two units
        assert lo <= row["length"] <= hi or whole_units, row


def test_homopolymers_are_one_residue(probes):
    rows = _by_kind(probes, "homopolymer")
    assert all(len(set(r["sequence"])) == 1 for r in rows)
    assert {r["sequence"][0] for r in rows if r["modality"] == "nucleotide"} == set("ACGT")
    assert next(r for r in rows if r["modality"] == "SMILES")["sequence"].startswith("CCCC")


def test_tandem_repeats_are_periodic(probes):
    for row in _by_kind(probes, "tandem_repeat"):
        seq = row["sequence"]
        period = next(p for p in range(1, 7) if all(seq[i] == seq[i + p] for i in range(len(seq) - p)))
        assert len(set(seq[:period])) >= 2  # not a homopolymer
        assert len(seq) >= 3 * period


def test_low_entropy_probes_are_low_entropy(probes):
    sizes = {"SMILES": 12, "amino_acid": 20, "nucleotide": 4}
    for row in _by_kind(probes, "low_entropy"):
        seq = row["sequence"]
        assert len(set(seq)) >= 2
        assert Counter(seq).most_common(1)[0][1] / len(seq) >= 0.75
        assert normalized_entropy(seq, sizes[row["modality"]]) < 0.6


def test_fixed_length_probes():
    rows = make_probes(["amino_acid", "nucleotide"], n_per_kind=2, length=30, seed=0)
    assert {r["length"] for r in rows} == {30}


def test_score_rows_joins_reward_details_and_complexity(tiny_ume):
    from ume_rl.inspection.probes import score_rows
    from ume_rl.rewards.masked_lm import MaskedLMReward

    reward = MaskedLMReward(tiny_ume, temperature=0.5, mode="unmasked")
    rows = make_variants(["MKVLAAGIWQ", "ACGTTGCAAGCTTACG"], ["amino_acid", "nucleotide"], seed=0)
    frame = score_rows(rows + make_probes(["nucleotide"], n_per_kind=1, length=20, seed=0), reward)
    assert len(frame) == len(rows) + 3
    assert list(frame["sequence"][: len(rows)]) == [r["sequence"] for r in rows]  # order kept
    invalid = frame["kind"].isin(["wrong_alphabet", "untagged"])
    assert set(frame.loc[invalid, "reason"]) == {"bad_alphabet", "no_tag"}
    assert (frame.loc[invalid, "reward"] == reward.penalty).all()
    assert frame.loc[invalid, ["score", "complexity"]].isna().all().all()
    valid = frame[~invalid]
    assert valid["reason"].isna().all()
    assert (valid["reward"] >= reward.score_floor / reward.temperature).all()
    unfloored = valid[valid["score"] >= reward.score_floor]
    assert (unfloored["reward"] - unfloored["score"] / 0.5).abs().max() < 1e-9
    assert valid["complexity"].between(0, 1).all()
    with pytest.raises(ValueError, match="no rows"):
        score_rows([], reward)
