"""lobster's names (ume_rl.lobster_compat): the seed guide's trainer calls, metrics, resume (tiny Qwen + tiny UME);
its reward call on a bare SMILES, compute_pseudo_likelihood and detect_modality, verbatim."""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil

import pytest
import torch
from lobster.constants import Modality

import ume_rl
from ume_rl.lobster_compat import (
    UMERewardFunction,
    UmeRewardFunction,
    compute_pseudo_likelihood,
    create_ume_grpo_trainer,
    create_ume_reward_wrapper,
    extract_tagged_content,
    train_ume_grpo,
)
from ume_rl.models.ume import load_ume
from ume_rl.rewards.engine.ume_scoring import UmeScorer
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.modalities import MODALITIES
from ume_rl.rewards.tags import detect_modality

pytestmark = pytest.mark.usefixtures("single_thread")

MAX_COMPLETION = 100  # the tiny recipe's value: long enough for a tagged reference to close


def test_wandb_only_when_asked(tmp_path, warm_policy_path, tiny_ume, protein_prompts, monkeypatch):
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    kwargs = dict(output_dir=tmp_path, max_steps=1, max_completion_length=8, batch_size=2)
    quiet = create_ume_grpo_trainer(warm_policy_path, tiny_ume, protein_prompts, **kwargs)
    assert quiet.args.report_to == []
    tracked = create_ume_grpo_trainer(
        warm_policy_path, tiny_ume, protein_prompts, enable_wandb_logging=True, wandb_run_name="t", **kwargs
    )
    assert tracked.args.report_to == ["wandb"] and tracked.args.run_name == "t"

    assert os.environ["WANDB_PROJECT"] == "ume-rl-grpo"


def test_create_call_takes_one_reward_model_per_modality(
    tmp_path, warm_policy_path, tiny_ume, tiny_mlms, protein_prompts
):
    models = {"amino_acid": tiny_mlms["amino_acid"], "SMILES": tiny_ume, "nucleotide": tiny_ume}
    trainer = create_ume_grpo_trainer(
        warm_policy_path,
        models,
        protein_prompts,
        output_dir=tmp_path,
        max_steps=1,
        max_completion_length=MAX_COMPLETION,
        batch_size=4,
        save_strategy="no",
    )
    reward = trainer.reward_funcs[0]
    assert (
        reward.scorers["amino_acid"].label != reward.scorers["SMILES"].label
    )  # the ESM-like model scores proteins
    trainer.train()
    assert reward.get_statistics()["completions"] == 4


def test_seed_guide_create_call_trains_and_changes_parameters(
    tmp_path, warm_policy_path, tiny_ume, protein_prompts
):
    # The seed guide's custom-trainer example, on plain-string prompts as upstream's dataset had them.
    plain = protein_prompts.remove_columns("prompt").rename_column("prompt_text", "prompt")
    trainer = create_ume_grpo_trainer(
        model_path=warm_policy_path,
        ume_model=tiny_ume,
        train_dataset=plain,
        eval_dataset=None,
        output_dir=str(tmp_path),
        reward_temperature=0.2,
        reward_batch_size=16,
        learning_rate=1e-5,
        batch_size=4,
        max_steps=2,
        max_completion_length=MAX_COMPLETION,
        save_strategy="no",
    )
    assert trainer.args.per_device_train_batch_size == 4 and trainer.args.num_generations == 4
    assert isinstance(trainer.train_dataset[0]["prompt"], list)  # chat messages: the chat template applies
    reward = trainer.reward_funcs[0]
    assert reward.__name__ == "ume_reward" and reward.temperature == 0.2
    assert next(tiny_ume.parameters()).device == trainer.args.device
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    changed = [name for name, p in trainer.model.named_parameters() if not torch.equal(before[name], p)]
    assert len(changed) > len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"
    assert reward.get_statistics()["completions"] == 2 * 4


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory, warm_policy_path, dataset):
    """The seed guide's `train_ume_grpo` call, 2 steps with a checkpoint after each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    output_dir = tmp_path_factory.mktemp("seed_run")
    try:
        trainer = train_ume_grpo(
            model_path=str(warm_policy_path),
            ume_model_path="tiny",
            train_dataset=dataset["train"],
            eval_dataset=dataset["validation"],
            output_dir=str(output_dir),
            reward_temperature=0.1,
            reward_batch_size=8,
            max_steps=2,
            logging_steps=1,
            save_steps=1,
            max_completion_length=MAX_COMPLETION,
            seed=0,
        )
    finally:
        torch.set_num_threads(threads)
    return trainer, output_dir


def test_seed_guide_train_call_logs_reward_metrics(seed_run):
    trainer, _ = seed_run
    assert trainer.state.global_step == 2
    rows = [row for row in trainer.state.log_history if "reward" in row]
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert "rewards/ume_reward/mean" in row  # TRL's own
        assert 0.0 <= row["ume_reward/valid_fraction"] <= 1.0  # the reward's, through log_metric
        assert "entropy" in row and "completions/mean_length" in row
    per_modality = {key for row in rows for key in row if key.endswith("/mean_reward")}
    assert per_modality, "no per-modality mean reward was logged"
    assert per_modality <= {f"ume_reward/{m}/mean_reward" for m in MODALITIES}


def test_final_model_and_tokenizer_are_saved_and_reload(seed_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trainer, output_dir = seed_run
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert tokenizer.convert_tokens_to_ids("<protein>") != tokenizer.unk_token_id
    assert tokenizer.chat_template is not None
    trained = dict(trainer.model.named_parameters())
    for name, param in model.named_parameters():
        assert torch.equal(param, trained[name].detach().cpu()), name
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


def test_a_finished_run_is_not_overwritten_by_a_second_seed_guide_call(
    tree_digests, seed_run, warm_policy_path, dataset
):
    from ume_rl.training.rundir import RunDirectoryError

    _, output_dir = seed_run
    before = tree_digests(output_dir)
    with pytest.raises(RunDirectoryError, match="overwrite_output_dir"):
        train_ume_grpo(
            model_path=str(warm_policy_path),
            ume_model_path="tiny",
            train_dataset=dataset["train"],
            output_dir=str(output_dir),
            max_steps=1,
        )
    assert tree_digests(output_dir) == before  # every file byte-identical, none added


def test_resume_continues_at_the_checkpoint_step(seed_run, tmp_path, warm_policy_path, dataset):
    trainer, output_dir = seed_run
    shutil.copytree(output_dir / "checkpoint-1", tmp_path / "checkpoint-1")
    resumed = train_ume_grpo(
        model_path=str(warm_policy_path),
        ume_model_path="tiny",
        train_dataset=dataset["train"],
        output_dir=str(tmp_path),
        max_steps=2,
        logging_steps=1,
        save_steps=1,
        max_completion_length=MAX_COMPLETION,
        seed=0,
        resume_from_checkpoint="last",
    )
    assert resumed.state.global_step == 2
    assert resumed.reward_funcs[0].get_statistics()["completions"] == 8  # one step of 1 prompt x 8, not two
    steps = [row["step"] for row in resumed.state.log_history if "reward" in row]
    assert steps == [1, 2]  # step 1 comes from the checkpoint's state, step 2 was trained now
    original = [row for row in trainer.state.log_history if row.get("step") == 2 and "reward" in row][0]
    again = [row for row in resumed.state.log_history if row.get("step") == 2 and "reward" in row][0]
    assert again["reward"] == pytest.approx(original["reward"], rel=1e-4)  # same rollout as without the stop


def test_training_curves_plot_from_a_real_log_history(seed_run, tmp_path):
    from ume_rl.inspection.plots import plot_training_curves, save_figure

    trainer, _ = seed_run
    fig = plot_training_curves(trainer.state.log_history, penalty=trainer.reward_funcs[0].penalty)
    assert len(fig.axes) == 4
    assert save_figure(fig, tmp_path / "curves.png").stat().st_size > 0


def test_lobster_compatible_extract_tagged_content():
    assert extract_tagged_content("<smiles>CCO</smiles>") == ("smiles", "CCO")
    assert extract_tagged_content("a <dna> acgt </dna> b") == ("dna", "acgt")
    assert extract_tagged_content("<amino_acid>MK</amino_acid>") == ("protein", "MK")
    assert extract_tagged_content("<smiles></smiles> then <protein>MKV</protein>") == ("protein", "MKV")
    assert extract_tagged_content("nothing") == (None, None)
    assert extract_tagged_content(None) == (None, None)


VALID = ["<smiles>CCO</smiles>", "<protein>MKVLAAGGW</protein>", "<dna>ACGTACGTTTGA</dna>"]


def test_lobster_compatible_entry_points(tiny_ume, caplog):
    with caplog.at_level(logging.WARNING, logger="ume_rl"):
        legacy = UMERewardFunction(
            tiny_ume, temperature=0.5, batch_size=8, enable_wandb_logging=True, mode="unmasked"
        )
    assert any("report_to" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert legacy.penalty_for_invalid == pytest.approx((-math.log(1280) - 2.0) / 0.5)
    out = legacy(VALID + ["none"])
    assert out[3] == legacy.penalty_for_invalid < min(out[:3])
    stats = legacy.get_statistics()
    assert set(stats) >= {"min", "max", "sum", "count", "mean", "modality_counts", "no_tag_count"}
    assert stats["no_tag_count"] == 1 and stats["modality_counts"] == dict.fromkeys(MODALITIES, 1)
    assert stats["mean"] == pytest.approx(sum(out) / 4) and stats["count"] == 4
    assert (stats["min"], stats["max"]) == (min(out), max(out))
    wrapped = create_ume_reward_wrapper(tiny_ume, penalty_for_invalid=-500.0, mode="unmasked")
    assert pickle.loads(pickle.dumps(wrapped))(["none"]) == [-500.0]
    assert wrapped.__name__ == "ume_reward"


# ------------------------------------------------------------------ the seed guide's reward-side calls

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
    # the reward's earlier name stays importable: the same class as the masked-LM reward
    assert ume_rl.UmeReward is ume_rl.MaskedLMReward
    assert issubclass(UMERewardFunction, ume_rl.MaskedLMReward)


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
    strict = MaskedLMReward(
        tiny_ume, mode="unmasked"
    )  # the core reward: tags required (the prompts ask for them)
    assert [r["reason"] for r in strict.details(bare)] == ["no_tag"] * 4 + [None]
    detecting = MaskedLMReward(tiny_ume, mode="unmasked", untagged="detect")
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
        MaskedLMReward(tiny_ume, untagged="guess")


def test_the_compat_adapter_and_ume_rl_train_produce_the_same_run_layout(tmp_path, tiny_qwen_path):
    """One run path (issue 17): train_ume_grpo runs TrainRun's workflow, so both entry points write the same
    files (checkpoints, final model, reward statistics, run marker with its fingerprint)."""
    import json

    from ume_rl.cli import main, parse_train_args
    from ume_rl.data.store import load_or_generate_dataset

    data = tmp_path / "ds"
    dataset = load_or_generate_dataset(data, n_per_modality=10, seed=0, progress=False)
    flags = [
        *("--config", "tiny", "--model_path", str(tiny_qwen_path), "--dataset_dir", str(data)),
        *("--max_steps", "2", "--save_steps", "1", "--warm_start_epochs", "0", "--eval_generations", "0"),
        *("--max_completion_length", "16", "--per_device_train_batch_size", "8"),
    ]
    cli_run, compat_run = tmp_path / "cli", tmp_path / "compat"
    assert main(["train", *flags, "--output_dir", str(cli_run)]) == 0
    _, grpo = parse_train_args([*flags, "--output_dir", str(compat_run)])
    train_ume_grpo(tiny_qwen_path, "tiny", dataset["train"], dataset["validation"], args=grpo)

    def layout(run):
        return sorted(
            str(p.relative_to(run)) for p in run.rglob("*") if not p.name.startswith(".ume_rl.lock")
        )

    assert layout(compat_run) == layout(cli_run)
    assert {"checkpoint-2/optimizer.pt", "reward_stats/rank0.json", "ume_rl_run.json"} <= set(layout(cli_run))
    marker = json.loads((compat_run / "ume_rl_run.json").read_text())
    assert marker["status"] == "trained" and marker["fingerprint"]["reward_models"] == {"all": "tiny"}
