from types import SimpleNamespace

import pytest

from ume_rl.rewards.novelty import NoveltyMemory, kmer_signature, smiles_identity_and_scaffold
from ume_rl.rewards.registry import build_reward_funcs

DNA_A = "<dna>" + "ACGTTGCAAGCTTACGGATCCGTA" * 3 + "</dna>"
DNA_B = "<dna>" + "TTGACCATGGCAATCGGCTAAGCT" * 3 + "</dna>"


def step(n):
    return SimpleNamespace(global_step=n)


def test_a_repeat_from_an_earlier_step_decays_each_time():
    memory = NoveltyMemory(decay=0.5, bucket_size=100)
    assert memory([DNA_A, DNA_B]) == [1.0, 1.0]
    assert memory([DNA_A]) == [0.5]
    assert memory([DNA_A, DNA_B]) == [0.25, 0.5]


def test_copies_within_one_step_are_not_earlier_steps():
    memory = NoveltyMemory(decay=0.5)
    assert memory([DNA_A, DNA_A, DNA_A], trainer_state=step(0)) == [1.0, 1.0, 1.0]
    # a second call in the same step (another micro-batch) still compares with earlier steps only
    assert memory([DNA_A], trainer_state=step(0)) == [1.0]
    assert memory([DNA_A], trainer_state=step(1)) == [0.5**4]


def test_smiles_are_remembered_canonically_and_bucketed_by_scaffold():
    memory = NoveltyMemory(decay=0.5, bucket_size=2)
    assert memory(["<smiles>c1ccccc1O</smiles>"]) == [1.0]
    assert memory(["<smiles>Oc1ccccc1</smiles>"]) == [0.5]  # the same molecule written another way
    assert memory(["<smiles>c1ccccc1N</smiles>"]) == [0.5]  # new molecule, benzene bucket now holds 2: full
    assert memory(["<smiles>C1CCNCC1</smiles>"]) == [1.0]  # another scaffold has room
    assert smiles_identity_and_scaffold("OCc1ccccc1") == ("OCc1ccccc1", "c1ccccc1")
    assert smiles_identity_and_scaffold("CCCCO")[1] == ""  # acyclic molecules share the empty scaffold


def test_low_complexity_proteins_fill_one_bucket():
    memory = NoveltyMemory(decay=0.5, bucket_size=2)
    repeats = [f"<protein>{'V' * n}</protein>" for n in (30, 31, 32, 33)]
    out = [memory([c])[0] for c in repeats]
    assert out == [1.0, 1.0, 0.5, 0.25]  # all distinct, but one k-mer signature ('VVV')
    assert memory(["<protein>MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ</protein>"]) == [1.0]


def test_kmer_signature_orders_by_count_then_alphabet():
    assert kmer_signature("AAAAAAAAAA", 3) == "AAA"
    assert kmer_signature("ACGTACGTAC", 3, size=2) == "ACG+CGT"
    assert kmer_signature("AC", 3) == "AC"


def test_invalid_completions_get_the_penalty_and_are_not_remembered():
    memory = NoveltyMemory()
    assert memory(["no tag", "<dna>ACGU</dna>"]) == [None, None]
    assert NoveltyMemory(penalty=-1.0)(["no tag"]) == [-1.0]
    assert sum(memory.seen.values()) == 0 and memory([DNA_A]) == [1.0]


def test_reset_forgets():
    memory = NoveltyMemory(decay=0.5)
    memory([DNA_A])
    memory([DNA_A])
    memory.reset()
    assert memory([DNA_A]) == [1.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decay": 1.0},
        {"decay": 0},
        {"decay": True},
        {"bucket_size": 0},
        {"signature_size": 1.5},
        {"penalty": "x"},
    ],
)
def test_bad_settings_are_one_line_errors(kwargs):
    with pytest.raises((ValueError, TypeError)):
        NoveltyMemory(**kwargs)


def test_registry_builds_it_with_settings():
    (memory,) = build_reward_funcs(["novelty"], settings={"novelty": {"decay": 0.25}})
    assert isinstance(memory, NoveltyMemory) and memory.decay == 0.25 and memory.__name__ == "novelty_reward"


def test_novelty_and_the_kl_anchor_train_in_the_tiny_profile(tmp_path, single_thread):
    """``reward_funcs: [ume, novelty]`` and ``beta`` (KL to the warm start) are recipe lines that train: TRL builds the
    reference model from the policy's own directory, logs the KL, and the memory holds the steps' completions."""
    from ume_rl.training.recipes import load_recipe
    from ume_rl.training.run import TrainRun

    script, grpo = load_recipe(
        "tiny",
        output_dir=tmp_path / "run",
        reward_funcs=["ume", "novelty"],
        reward_weights=[1.0, 0.5],
        beta=0.02,
        max_steps=2,
        max_completion_length=16,
        per_device_train_batch_size=8,
        logging_steps=1,
        save_strategy="no",
    )
    run = TrainRun.prepare(script, grpo)
    rewards = run.build_rewards(run.load_ume())
    policy = run.warm_start()
    trainer = run.train(policy, rewards)
    assert trainer.ref_model is not None
    assert trainer.ref_model.config._name_or_path == str(policy)
    logged = {key for row in trainer.state.log_history for key in row}
    assert {"rewards/novelty_reward/mean", "kl"} <= logged
    memory = rewards[1]
    assert isinstance(memory, NoveltyMemory)
    assert memory._step == 1  # TRL passed trainer_state: the second step's call knew its step
    assert (
        sum(memory.seen.values()) + len(memory._pending) <= 16
    )  # at most 2 steps x 8 completions remembered


def test_recipe_fields_set_the_memory():
    """``novelty_decay`` and ``novelty_bucket_size`` are one YAML line each and reach the reward."""
    from ume_rl.rewards.registry import build_reward_funcs
    from ume_rl.training.recipes import load_recipe

    script, _ = load_recipe("tiny", novelty_decay=0.25, novelty_bucket_size=3)
    (memory,) = build_reward_funcs(["novelty"], None, script.reward_settings())
    assert (memory.decay, memory.bucket_size) == (0.25, 3)
    dna = "<dna>" + "ACGTTGCA" * 8 + "</dna>"
    assert memory([dna]) == [1.0]
    assert memory([dna]) == [0.25]
