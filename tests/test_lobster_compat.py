"""lobster's names (ume_rl.lobster_compat): the seed guide's trainer calls, metrics, resume (tiny Qwen + tiny UME)."""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil

import pytest
import torch

from ume_rl.lobster_compat import (
    UMERewardFunction,
    create_ume_grpo_trainer,
    create_ume_reward_wrapper,
    extract_tagged_content,
    train_ume_grpo,
)
from ume_rl.rewards.modalities import MODALITIES

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
