"""The GRPO builder, the seed guide's calls, metrics, resume, warm start plumbing (tiny Qwen + tiny UME, CPU)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
import torch
from trl import GRPOConfig

from ume_rl.data import generate_synthetic_dataset
from ume_rl.lobster_compat import create_ume_grpo_trainer, train_ume_grpo
from ume_rl.rewards.modalities import MODALITIES
from ume_rl.training.config import UmeGRPOConfig, build_grpo_config, default_num_generations
from ume_rl.training.trainer import outside_zero3, to_conversational

pytestmark = pytest.mark.usefixtures("single_thread")

MAX_COMPLETION = 100  # the tiny recipe's value: long enough for a tagged reference to close


@pytest.fixture(scope="module")
def dataset():
    return generate_synthetic_dataset(progress=False)


@pytest.fixture(scope="module")
def protein_prompts(dataset):
    # The warm-started tiny policy answers protein prompts validly about 2 times in 3, so every group of
    # completions has reward variance (SMILES groups are often all invalid: zero advantage, no update).
    return dataset["train"].filter(lambda row: row["modality"] == "amino_acid")


def test_config_defaults_work_on_cpu(tmp_path):
    config = build_grpo_config(tmp_path, batch_size=4, max_steps=2)
    assert config.per_device_train_batch_size == 4
    assert config.num_generations == 4  # TRL's default 8 does not divide a batch of 4
    assert config.bf16 is False  # no bf16 hardware here; TRL's own default refuses to start on CPU
    assert config.report_to == []  # wandb is installed, yet nothing reports unless asked
    assert config.log_completions is True
    with pytest.raises(ValueError, match="bf16"):
        GRPOConfig(output_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"per_device_train_batch_size": 6}, 6),
        ({"per_device_train_batch_size": 12}, 6),
        ({"per_device_train_batch_size": 3, "steps_per_generation": 2}, 6),
        ({"per_device_train_batch_size": 16}, 8),
        ({"per_device_train_batch_size": 4, "num_generations": 2}, 2),
    ],
)
def test_num_generations_divides_the_generation_batch(tmp_path, kwargs, expected):
    config = build_grpo_config(tmp_path, **kwargs)
    assert config.num_generations == expected
    assert config.generation_batch_size % config.num_generations == 0


def test_inconsistent_settings_are_errors(tmp_path):
    with pytest.raises(ValueError, match="disagree"):
        build_grpo_config(tmp_path, batch_size=4, per_device_train_batch_size=8)
    with pytest.raises(ValueError, match="divisible"):
        build_grpo_config(tmp_path, per_device_train_batch_size=4, num_generations=3)
    with pytest.raises(ValueError, match="at least 2"):
        default_num_generations(1)


def test_every_grpo_config_field_passes_through(tmp_path):
    defaults = GRPOConfig.__dataclass_fields__
    skipped = {"output_dir", "bf16"}  # output_dir is positional; bf16=True is TRL's own CPU refusal
    for name, f in defaults.items():
        if not f.init or name in skipped or f.default is dataclasses.MISSING:
            continue
        config = build_grpo_config(tmp_path, **{name: f.default})
        assert hasattr(config, name)
    config = build_grpo_config(tmp_path, beta=0.04, loss_type="grpo", epsilon=0.3, max_completion_length=8)
    assert (config.beta, config.loss_type, config.epsilon) == (0.04, "grpo", 0.3)
    assert config.max_completion_length == 8


def test_string_prompts_become_chat_messages(dataset):
    plain = dataset["validation"].remove_columns("prompt").rename_column("prompt_text", "prompt")
    converted = to_conversational(plain)
    assert converted[0]["prompt"] == [{"role": "user", "content": plain[0]["prompt"]}]
    assert to_conversational(dataset["validation"]) is dataset["validation"]


def test_outside_zero3_hides_the_deepspeed_partitioning():
    from transformers.integrations import deepspeed as hf_ds

    class Zero3Config:  # what transformers reads: HfDeepSpeedConfig.is_zero3()
        def is_zero3(self):
            return True

    config = Zero3Config()
    hf_ds.set_hf_deepspeed_config(config)
    try:
        assert hf_ds.is_deepspeed_zero3_enabled()
        with outside_zero3():
            assert not hf_ds.is_deepspeed_zero3_enabled()
        assert hf_ds.is_deepspeed_zero3_enabled()
    finally:
        hf_ds.unset_hf_deepspeed_config()
    with outside_zero3():
        assert not hf_ds.is_deepspeed_zero3_enabled()


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


def test_ume_reward_config_subclass_is_a_grpo_config():
    assert issubclass(UmeGRPOConfig, GRPOConfig)


def test_a_complete_warm_start_is_reused_and_an_incomplete_one_trained_again(
    tiny_qwen_path, dataset, tmp_path, caplog
):
    import hashlib
    import logging

    from ume_rl.training.sft import WARM_START_MARKER, completed_warm_start, warm_start

    def digest(path):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()
        }

    out = tmp_path / "warm"
    rows = dataset["train"].select(range(16))
    settings = {"num_train_epochs": 1, "per_device_train_batch_size": 16, "disable_tqdm": True, "seed": 0}
    assert warm_start(tiny_qwen_path, rows, out, **settings) == out
    assert completed_warm_start(out)["num_train_epochs"] == 1
    first = digest(out)
    with caplog.at_level(logging.INFO, logger="ume_rl.training.sft"):
        assert warm_start(tiny_qwen_path, rows, out, **settings) == out
    assert "reusing the complete warm start" in caplog.text and digest(out) == first  # not trained again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.sft"):
        warm_start(tiny_qwen_path, rows, out, **{**settings, "learning_rate": 1e-3}, reuse="any")  # resuming
    assert "although its settings differ in ['learning_rate']" in caplog.text and digest(out) == first
    (out / WARM_START_MARKER).unlink()  # interrupted before its record: partial, never loaded
    (out / "stale.bin").write_bytes(b"x")
    assert completed_warm_start(out) is None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.sft"):
        warm_start(tiny_qwen_path, rows, out, **settings)
    assert "is incomplete (no record written last): training it again" in caplog.text
    assert completed_warm_start(out) is not None and not (out / "stale.bin").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.sft"):
        warm_start(tiny_qwen_path, rows, out, **{**settings, "learning_rate": 1e-3})
    assert "trained with other settings: training it again" in caplog.text
    assert completed_warm_start(out)["learning_rate"] == 1e-3
