"""Reward quality: decoys, baselines and the held-out evaluation, on a UME trained for seconds."""

import random

import pytest
from rdkit import Chem

from ume_rl.inspection.quality import (
    ATOM_CLASSES,
    DECOYS,
    auroc,
    make_decoys,
    mutate_smiles,
    out_of_source_targets,
    reward_quality,
    reward_quality_by_split,
    side_by_side,
)
from ume_rl.models.ume import load_ume
from ume_rl.rewards.modalities import MODALITY_TABLE


def _atoms(smiles):
    mol = Chem.MolFromSmiles(smiles)
    return sorted((a.GetIsAromatic(), a.GetSymbol() in "CNOS") for a in mol.GetAtoms())


def test_mutated_smiles_parse_and_swap_within_class():
    rng = random.Random(0)
    for smiles in ("CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "OCCNCCS"):
        mutant = mutate_smiles(smiles, 0.2, rng)
        assert mutant is not None and mutant != smiles
        mol = Chem.MolFromSmiles(mutant)
        assert mol is not None and Chem.MolToSmiles(mol) == mutant
        assert mol.GetNumAtoms() == Chem.MolFromSmiles(smiles).GetNumAtoms()
        # aromatic atoms stay aromatic c/n, aliphatic ones stay among C/N/O/S
        assert _atoms(mutant) == _atoms(smiles)
    assert mutate_smiles("[Na+]", 0.2, rng) is None  # no bare atom to swap
    assert set().union(*ATOM_CLASSES) == {"C", "N", "O", "S", "c", "n"}


def test_decoys_keep_composition_or_length():
    real = ["MKVLAAGIVGLLLAAGCSSE", "ACDEFGHIKLMNPQRSTVWY"]
    decoys = make_decoys(real, "amino_acid", seed=0)
    assert set(decoys) == set(DECOYS["amino_acid"])
    for r, s, m in zip(real, decoys["shuffled"], decoys["mutated_10pct"], strict=True):
        assert sorted(s) == sorted(r) and s != r
        assert len(m) == len(r) and sum(a != b for a, b in zip(m, r, strict=True)) == 2
    real_smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CCOC(=O)c1ccc(N)cc1"]
    smiles = make_decoys(real_smiles, "SMILES", seed=0)
    for r, synthetic in zip(real_smiles, smiles["synthetic"], strict=True):
        assert synthetic is None or abs(len(synthetic) - len(r)) <= 3


def test_auroc():
    assert auroc([2, 3], [0, 1]) == 1.0
    assert auroc([0, 1], [2, 3]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    assert auroc([1, float("nan")], [0]) == 1.0


@pytest.fixture(scope="module")
def qualities(trained_small_ume, real_corpus, fast_small_ume_config):
    """reward_quality of the UME trained for seconds and of the same architecture untrained."""
    from ume_rl.models.small_ume import cpu_mlm_ume_class

    ckpt, _ = trained_small_ume
    config = fast_small_ume_config
    untrained = cpu_mlm_ume_class()(
        model_name=config.arch, max_length=config.max_length, use_flash_attn=False
    )
    n = {"SMILES": 16, "amino_acid": 12, "nucleotide": 6}
    kwargs = {"n": n, "progress": False, "probes_per_kind": 1}
    by_split = reward_quality_by_split(load_ume(ckpt, device="cpu"), real_corpus, **kwargs)
    return (
        by_split["heldout"],
        reward_quality(untrained.eval(), real_corpus, **kwargs),
        by_split["out_of_source"],
    )


def test_quality_tables_cover_every_modality_and_decoy(qualities):
    trained, *_ = qualities
    assert list(trained.pll["modality"]) == ["SMILES", "amino_acid", "nucleotide"]
    pairs = {(r.modality, r.decoy) for r in trained.auroc.itertuples()}
    assert pairs == {(m, d) for m, decoys in DECOYS.items() for d in decoys}
    assert (trained.auroc["n_pairs"] > 0).all()
    assert set(trained.probes["probe"]) == {"homopolymer", "tandem_repeat", "low_entropy"}
    assert trained.targets()["met"].dtype == bool and len(trained.targets()) == 3 + 7 + 3


@pytest.mark.parametrize("index", [0, 2])
def test_quality_uses_its_split_only(qualities, real_corpus, index):
    """In source: held-out windows and molecules only; out of source: the sources held out whole only."""
    quality = qualities[index]
    assert quality.split == ("heldout", None, "out_of_source")[index]
    real = quality.scores[quality.scores["set"] == "real"]
    assert set(real["modality"]) == set(MODALITY_TABLE)
    for row in real.itertuples():
        held = real_corpus.sequences(row.modality, quality.split)
        assert any(row.sequence in h for h in held) if row.modality != "SMILES" else row.sequence in held
        train = real_corpus.train[row.modality]
        assert (
            row.sequence not in train
            if row.modality == "SMILES"
            else not any(row.sequence in t for t in train)
        )


def test_side_by_side_and_out_of_source_targets(qualities):
    trained, _, outside = qualities
    table = side_by_side({"heldout": trained, "out_of_source": outside})
    assert len(table) == len(trained.auroc)
    for model in ("ume", "context", "unigram"):
        for split, quality in (("heldout", trained), ("out_of_source", outside)):
            assert table[f"{model} {split}"].tolist() == quality.auroc[model].tolist()
    targets = out_of_source_targets(outside)
    assert list(targets["modality"]) == ["SMILES", "nucleotide", "amino_acid"]
    assert (targets["split"] == "out_of_source").all()
    assert (
        targets["met"].tolist() == (targets["ume"] >= targets["context"] - targets["allowed_below"]).tolist()
    )
    assert "out-of-source PLL" in outside.summary() and "held-out PLL" in trained.summary()


def test_quality_refuses_the_train_split(real_corpus):
    with pytest.raises(ValueError, match="never the train split"):
        reward_quality(None, real_corpus, split="train")


def test_training_raises_the_held_out_likelihood(qualities):
    """Direction only: seconds of training move the held-out PLL from the untrained level towards the data."""
    trained, untrained, _ = qualities
    assert (trained.pll["ume"] > untrained.pll["ume"] + 1.0).all()
    # the baselines do not depend on the UME
    assert trained.pll["unigram"].tolist() == untrained.pll["unigram"].tolist()
    dna = trained.auroc.set_index(["modality", "decoy"]).loc[("nucleotide", "shuffled")]
    assert dna["unigram"] == pytest.approx(0.5, abs=0.2) and dna["context"] > 0.7


def test_summary_reads_the_tables(qualities):
    trained, untrained, _ = qualities
    lines = untrained.summary().splitlines()
    assert len(lines) == 3
    for line, modality in zip(lines, MODALITY_TABLE, strict=True):
        assert line.startswith(MODALITY_TABLE[modality].label)
        assert "does NOT beat the unigram" in line  # untrained: ~ -ln(vocabulary) per token
        assert all(f"vs {decoy} " in line for decoy in DECOYS[modality])
    assert trained.summary() != untrained.summary()


def test_quality_of_a_mapping_with_a_hugging_face_masked_lm(qualities, trained_small_ume, real_corpus):
    """Any reward model per modality: an ESM-shaped masked LM scores protein, the UME the rest; the baselines
    still count UME tokens, so they are the same numbers as for the UME alone."""
    from ume_rl.models.masked_lms import build_tiny_masked_lm

    trained, *_ = qualities
    ckpt, _ = trained_small_ume
    ume = load_ume(ckpt, device="cpu")
    esm = build_tiny_masked_lm("amino_acid", seed=0)
    n = {"SMILES": 16, "amino_acid": 12, "nucleotide": 6}
    mixed = reward_quality(
        {"SMILES": ume, "protein": esm, "DNA": ume}, real_corpus, n=n, progress=False, probes_per_kind=1
    )
    pll = mixed.pll.set_index("modality")
    assert pll["context"].tolist() == trained.pll["context"].tolist()
    assert pll.loc["SMILES", "ume"] == pytest.approx(trained.pll.set_index("modality").loc["SMILES", "ume"])
    assert pll.loc["amino_acid", "ume"] != pytest.approx(
        trained.pll.set_index("modality").loc["amino_acid", "ume"]
    )
    with pytest.raises(ValueError, match="no reward model"):
        reward_quality({"SMILES": ume}, real_corpus, n=n, progress=False)


def test_paired_win_rates(qualities):
    """Each real sequence against its own decoy: a shuffled sequence has the real one's composition, so the
    unigram ties every pair (0.5); every rate is a fraction."""
    trained, *_ = qualities
    table = trained.auroc.set_index(["modality", "decoy"])
    for model in ("ume", "context", "unigram"):
        assert table[f"{model} paired"].between(0, 1).all()
    assert table.loc[("nucleotide", "shuffled"), "unigram paired"] == 0.5
    assert table.loc[("amino_acid", "shuffled"), "unigram paired"] == 0.5
