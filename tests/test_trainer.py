"""The GRPO config defaults, the trainer builder, ZeRO-3 and prompt plumbing (tiny Qwen + tiny UME, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
from trl import GRPOConfig

from ume_rl.training.config import UmeGRPOConfig, build_grpo_config, default_num_generations
from ume_rl.training.trainer import outside_zero3, to_conversational

pytestmark = pytest.mark.usefixtures("single_thread")


def test_config_defaults_work_on_cpu(tmp_path):
    config = build_grpo_config(tmp_path, batch_size=4, max_steps=2)
    assert config.per_device_train_batch_size == 4
    assert config.num_generations == 4  # TRL's default 8 does not divide a batch of 4
    assert config.bf16 is False  # no bf16 hardware here; TRL's own default refuses to start on CPU
    assert config.report_to == []  # wandb is installed, yet nothing reports unless asked
    assert config.log_completions is False  # no per-step completion tables unless asked
    assert config.dataloader_pin_memory is False  # no accelerator: pinning would only warn
    assert build_grpo_config(tmp_path, log_completions=True).log_completions is True
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


def test_build_trainer_takes_reward_callables_in_order(tmp_path, tiny_qwen_path, tiny_ume, dataset):
    from ume_rl.rewards.complexity import ComplexityReward
    from ume_rl.rewards.masked_lm import MaskedLMReward
    from ume_rl.training.trainer import build_trainer

    plain = dataset["train"].remove_columns("prompt").rename_column("prompt_text", "prompt")
    rewards = [MaskedLMReward(tiny_ume, mode="unmasked"), ComplexityReward()]
    args = build_grpo_config(
        tmp_path, batch_size=4, max_steps=1, max_completion_length=8, reward_weights=[1.0, 0.5]
    )
    trainer = build_trainer(tiny_qwen_path, rewards, plain, args=args)
    assert trainer.reward_funcs == rewards and trainer.args.reward_weights == [1.0, 0.5]
    assert isinstance(trainer.train_dataset[0]["prompt"], list)  # chat messages: the chat template applies
    with pytest.raises(ValueError, match="at least one reward"):
        build_trainer(tiny_qwen_path, [], plain, args=args)


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


def test_a_damaged_warm_start_is_never_reused(tiny_qwen_path, dataset, tmp_path, caplog):
    import logging

    from ume_rl.training.sft import completed_warm_start, warm_start

    out = tmp_path / "warm"
    rows = dataset["train"].select(range(16))
    settings = {"num_train_epochs": 1, "per_device_train_batch_size": 16, "disable_tqdm": True, "seed": 0}
    warm_start(tiny_qwen_path, rows, out, **settings)
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated after it was written
    with caplog.at_level(logging.WARNING, logger="ume_rl.training.sft"):
        assert completed_warm_start(out) is None
        warm_start(tiny_qwen_path, rows, out, **settings, reuse="any")  # even when resuming
    assert "is damaged (model.safetensors: size" in caplog.text and "training it again" in caplog.text
    assert completed_warm_start(out) is not None


def test_the_corpus_stage_teaches_the_language_before_sft(tiny_qwen_path, dataset, tmp_path):
    import math

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ume_rl.training.sft import completed_warm_start, warm_start

    text = "<dna>ACGTTGCAACGTTGCA</dna>"

    def loss(path):
        tokenizer = AutoTokenizer.from_pretrained(path)
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return AutoModelForCausalLM.from_pretrained(path)(input_ids=ids, labels=ids).loss.item()

    rows = dataset["train"].select(range(8))
    settings = {"per_device_train_batch_size": 4, "disable_tqdm": True, "seed": 0, "corpus_max_length": 32}
    out = warm_start(
        tiny_qwen_path,
        rows,
        tmp_path / "lm",
        num_train_epochs=0,  # the corpus stage alone
        corpus=[text] * 16,
        corpus_steps=30,
        corpus_learning_rate=1e-2,
        **settings,
    )
    assert out == tmp_path / "lm" and loss(out) < 0.3 * loss(tiny_qwen_path) and math.isfinite(loss(out))
    record = completed_warm_start(out)["corpus"]
    assert record["texts"] == 16 and record["steps"] == 30 and len(record["sha256"]) == 64
    both = warm_start(
        tiny_qwen_path,
        rows,
        tmp_path / "both",
        num_train_epochs=1,
        corpus=[text] * 16,
        corpus_steps=30,
        corpus_learning_rate=1e-2,
        learning_rate=1e-4,  # SFT after it keeps what the corpus stage taught
        **settings,
    )
    assert loss(both) < 0.3 * loss(tiny_qwen_path)
    with pytest.raises(ValueError, match="needs corpus texts"):
        warm_start(tiny_qwen_path, rows, tmp_path / "none", corpus_steps=3, **settings)
