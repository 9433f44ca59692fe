"""ComplexityReward: ranks low-complexity probes below references, and honours the TRL reward contract."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from ume_rl.data.generate import generate_synthetic_dataset
from ume_rl.inspection.probes import make_probes
from ume_rl.rewards.complexity import (
    ComplexityReward,
    kmer_diversity,
    normalized_entropy,
    sequence_complexity,
)
from ume_rl.rewards.modalities import MODALITIES


@pytest.fixture(scope="module")
def references():
    rows = generate_synthetic_dataset(n_per_modality=20, seed=5, progress=False)["full"]
    return list(zip(rows["sequence"], rows["modality"], strict=True))


def test_entropy_and_kmer_diversity_basics():
    assert normalized_entropy("AAAAAAAA", 4) == 0.0
    assert normalized_entropy("ACGTACGT", 4) == pytest.approx(1.0)
    assert normalized_entropy("AC", 4) == pytest.approx(1.0)  # maximum is log(min(alphabet, length))
    assert normalized_entropy("A", 20) == 0.0
    assert kmer_diversity("ACACACAC", 2) == pytest.approx(2 / 7)
    assert kmer_diversity("ACGT", 3) == 1.0
    assert kmer_diversity("AA", 6) == 1.0  # k is capped at the length
    assert kmer_diversity("", 3) == 0.0


@pytest.mark.parametrize("measure", ["entropy", "kmer", "both"])
def test_repeats_score_below_references(references, measure):
    probes = make_probes(n_per_kind=4, seed=1)
    for modality in MODALITIES:
        refs = [sequence_complexity(s, m, measure) for s, m in references if m == modality]
        homopolymers, repeats = (
            [
                sequence_complexity(p["sequence"], modality, measure)
                for p in probes
                if p["modality"] == modality and p["kind"] == kind
            ]
            for kind in ("homopolymer", "tandem_repeat")
        )
        assert max(homopolymers) < min(refs), (modality, measure)
        if measure != "entropy":  # composition entropy cannot see order, so it misses CC(=O)CC(=O)CC(=O)
            # Real SMILES repeat themselves too (CCCC1CCCCC1), so SMILES repeats are only below the median.
            bound = sorted(refs)[len(refs) // 2] if modality == "SMILES" else min(refs)
            assert max(repeats) < bound, (modality, measure)
        low = [
            sequence_complexity(p["sequence"], modality, measure)
            for p in probes
            if p["modality"] == modality and p["kind"] == "low_entropy"
        ]
        assert sum(low) / len(low) < sum(refs) / len(refs)
        assert all(0.0 <= v <= 1.0 for v in refs + low)


def test_standard_and_conversational_formats_agree():
    reward = ComplexityReward()
    texts = [
        "Here: <protein>MKVLAAGIWQ</protein>",
        "<dna>ACGTTGCAAGCTTACG</dna> done",
        "<smiles>CCO</smiles>",
    ]
    conversational = [[{"role": "assistant", "content": t}] for t in texts]
    standard = reward(texts)
    assert standard == reward(conversational)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in standard)


def test_invalid_completions_get_the_penalty():
    texts = [
        "no tags",
        "<dna></dna>",
        "<dna>ACGU</dna>",
        "<smiles>C1CC</smiles>",
        "<dna>" + "A" * 5000 + "</dna>",  # too long for any UME before parsing
        "<protein>MKV</protein>",
    ]
    assert ComplexityReward()(texts)[:5] == [None] * 5
    assert ComplexityReward(penalty=-1.0)(texts)[:5] == [-1.0] * 5
    assert isinstance(ComplexityReward()(texts)[5], float)


def test_modality_column_makes_a_wrong_tag_invalid():
    reward = ComplexityReward(penalty=-1.0)
    texts = ["<dna>ACGTTGCA</dna>", "<dna>ACGTTGCA</dna>"]
    assert reward(texts, modality=["amino_acid", "nucleotide"])[0] == -1.0
    assert reward(texts, modality=["amino_acid", "nucleotide"])[1] > 0.5


def test_trl_reward_contract():
    """Called the way GRPOTrainer calls a custom reward: keyword arguments, dataset columns, helpers."""
    reward = ComplexityReward(measure="kmer")
    completions = [
        [{"role": "assistant", "content": "<protein>ACACACACAC</protein>"}],
        [{"content": "nothing"}],
    ]
    out = reward(
        prompts=[[{"role": "user", "content": "p"}]] * 2,
        completions=completions,
        completion_ids=[[1, 2], [3]],
        modality=["amino_acid", "amino_acid"],
        sequence=["MKV", "MKV"],
        trainer_state=None,
        log_extra=lambda *a, **k: None,
        log_metric=lambda *a, **k: None,
    )
    assert out == [0.25, None]
    assert reward.__name__ == "complexity_reward"
    assert not isinstance(reward, torch.nn.Module)  # TRL would treat a Module as a sequence classifier


def test_reads_completions_like_the_ume_reward():
    reward = ComplexityReward(measure="kmer", penalty=-1.0)
    texts = ["<smiles>CCO</smiles>", "<dna>ACGT</dna>"]
    assert reward(texts, modality="SMILES") == [1.0, -1.0]  # one modality for all, not split into characters
    # Content too long for UME is rejected before RDKit (a 10**5-atom chain would otherwise parse and score).
    assert reward(["<smiles>" + "CO" * 50_000 + "</smiles>"]) == [-1.0]
    assert ComplexityReward(measure="kmer", max_chars=None)(["<smiles>" + "CO" * 500 + "</smiles>"])[0] >= 0


def test_picklable():
    reward = ComplexityReward(measure="entropy", penalty=-2.0)
    clone = pickle.loads(pickle.dumps(reward))
    texts = ["<dna>AAAAACCCCC</dna>", "x"]
    assert clone(texts) == reward(texts) == [pytest.approx(math.log(2) / math.log(4)), -2.0]
    assert clone.__name__ == "complexity_reward"


def test_unknown_measure_is_an_error():
    with pytest.raises(ValueError, match="unknown measure"):
        ComplexityReward(measure="gzip")
    with pytest.raises(ValueError, match="unknown modality"):
        sequence_complexity("ACGT", "rna")


def test_composes_with_ume_reward_in_a_grpo_step(tiny_ume, warm_policy_path, tmp_path, single_thread):
    """reward_funcs=[MaskedLMReward, ComplexityReward] + reward_weights in a real GRPOTrainer step.

    The warm-started tiny Qwen writes valid protein tags about 2 times in 3, so both rewards get numbers.
    """
    from trl import GRPOConfig, GRPOTrainer

    from ume_rl.rewards.masked_lm import MaskedLMReward

    config = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_generations=8,
        max_completion_length=100,  # the tiny recipe's: long enough for a tagged reference to close
        max_steps=1,
        logging_steps=1,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        reward_weights=[1.0, 0.5],
        multi_objective_aggregation="normalize_then_sum",
    )
    train = generate_synthetic_dataset(n_per_modality=4, seed=0, progress=False)["train"]
    trainer = GRPOTrainer(
        model=str(warm_policy_path),
        reward_funcs=[MaskedLMReward(tiny_ume, mode="unmasked"), ComplexityReward()],
        args=config,
        train_dataset=train.filter(lambda row: row["modality"] == "amino_acid"),
    )
    assert trainer.reward_func_names == ["ume_reward", "complexity_reward"]
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    log = trainer.state.log_history[0]
    assert log["ume_reward/valid_fraction"] > 0
    assert math.isfinite(log["rewards/ume_reward/mean"])
    complexity = log["rewards/complexity_reward/mean"]
    assert complexity is not None and math.isfinite(complexity) and 0.0 < complexity <= 1.0
    changed = [name for name, p in trainer.model.named_parameters() if not torch.equal(before[name], p)]
    assert changed, "the combined advantage moved no parameter"


def test_input_contract_and_parameters_are_checked():
    reward = ComplexityReward()
    with pytest.raises(TypeError, match="got one str"):
        reward("<dna>ACGTACGT</dna>")
    with pytest.raises(TypeError, match="got None"):
        reward(None)
    with pytest.raises(TypeError, match="modality must be None"):
        reward(["no tag"], modality=3)
    with pytest.raises(ValueError, match="Unknown modality 'protien'"):
        reward(["no tag"], modality="protien")
    with pytest.raises(TypeError, match=r"completions\[2\] must be a string"):
        reward(["<dna>ACGT</dna>", "no tag", 7], modality="dna")  # not a completion: an error, not unscored
    with pytest.raises(ValueError, match="penalty must be finite"):
        ComplexityReward(penalty=math.nan)
    with pytest.raises(TypeError, match="penalty must be a real number"):
        ComplexityReward(penalty="0")
    with pytest.raises(ValueError, match="max_chars must be a positive integer"):
        ComplexityReward(max_chars=0)
