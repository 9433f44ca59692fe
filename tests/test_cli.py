"""`ume-rl train`: recipes, flag overrides, an in-process run, and a two-process (torchrun, gloo) run on CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ume_rl
from ume_rl.cli import main, parse_train_args
from ume_rl.training.run import RECIPES_DIR, load_recipe, recipe_path

TINY = str(RECIPES_DIR / "tiny.yaml")
FULL = str(RECIPES_DIR / "full.yaml")
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # recipes set torch_num_threads


def test_both_recipes_parse(tmp_path):
    tiny_script, tiny = load_recipe("tiny", output_dir=tmp_path)
    assert tiny_script.profile == "tiny" and tiny_script.warm_start_epochs > 0
    assert tiny.generation_batch_size % tiny.num_generations == 0
    assert tiny.bf16 is False and tiny.report_to == [] and tiny.log_completions
    full_script, full = load_recipe(FULL, output_dir=tmp_path)
    assert full_script.profile == "full" and full.max_completion_length >= 200  # DNA references reach 200 bp
    assert full.generation_batch_size % full.num_generations == 0


def test_flags_override_the_recipe():
    script, grpo = parse_train_args(
        ["--config", TINY, "--max_steps", "3", "--reward_temperature", "0.5", "--learning_rate", "1e-4"]
    )
    assert (grpo.max_steps, script.reward_temperature, grpo.learning_rate) == (3, 0.5, 1e-4)
    _, recipe = load_recipe("tiny")
    assert recipe.max_steps != 3 and recipe.learning_rate != 1e-4
    script, _ = load_recipe("tiny", max_steps=None, reward_temperature=0.3)  # None keeps the recipe's value
    assert script.reward_temperature == 0.3


def test_recipes_ship_inside_the_package(tmp_path, monkeypatch):
    assert RECIPES_DIR.parent == Path(ume_rl.__file__).parent  # package data, found after a plain pip install
    assert sorted(p.name for p in RECIPES_DIR.glob("*.yaml")) == ["demo.yaml", "full.yaml", "tiny.yaml"]
    monkeypatch.chdir(
        tmp_path
    )  # no recipes/ here: the old repository-relative spelling finds the packaged file
    assert recipe_path("recipes/tiny.yaml") == recipe_path("tiny") == RECIPES_DIR / "tiny.yaml"
    by_name, _ = parse_train_args(["--config", "full", "--max_steps", "3"])
    by_old_path, grpo = parse_train_args(["--config=recipes/full.yaml", "--max_steps", "3"])
    assert by_name.profile == by_old_path.profile == "full" and grpo.max_steps == 3
    own = tmp_path / "mine.yaml"
    own.write_text("profile: tiny\nmax_steps: 7\n")
    assert parse_train_args(["--config", str(own)])[1].max_steps == 7
    with pytest.raises(FileNotFoundError):
        recipe_path("recipes/missing.yaml")


def test_evaluation_reward_is_the_training_reward(tmp_path, tiny_ume, tiny_qwen_path):
    from ume_rl.data import generate_synthetic_dataset
    from ume_rl.rewards.registry import build_reward_funcs
    from ume_rl.training.trainer import build_trainer

    script, grpo = load_recipe(
        "tiny", output_dir=tmp_path, reward_temperature=0.2, reward_penalty=-50.0, reward_mode="unmasked"
    )
    train = generate_synthetic_dataset(n_per_modality=4, seed=0, progress=False)["train"]
    rewards = build_reward_funcs(script.reward_funcs, tiny_ume, script.reward_settings())
    trainer = build_trainer(tiny_qwen_path, rewards, train, args=grpo)
    trained = trainer.reward_funcs[0]
    evaluated = build_reward_funcs(script.reward_funcs, tiny_ume, script.reward_settings())[0]
    assert (
        (evaluated.temperature, evaluated.penalty) == (trained.temperature, trained.penalty) == (0.2, -50.0)
    )
    completions = ["<dna>ACGTTGCA</dna>", "no tag", "<protein>MKVLAAG</protein>"]
    assert evaluated(completions) == trained(completions)
    assert evaluated(completions)[1] == -50.0


def test_usage_and_unknown_commands(capsys):
    assert main(["--help"]) == 0
    assert "ume-rl train --config" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["fly"]) == 2
    with pytest.raises(FileNotFoundError, match="full, tiny"):
        load_recipe("nonexistent")


def test_train_command_end_to_end():
    argv = ["train", "--config", "tiny", "--max_steps", "2", "--warm_start_epochs", "1"]
    assert main([*argv, "--save_steps", "1", "--eval_generations", "1", "--max_completion_length", "48"]) == 0
    # no --output_dir: the run goes to the profile's runs/grpo-tiny ($UME_RL_RUNS_DIR, per test here)
    out = Path(os.environ["UME_RL_RUNS_DIR"]) / "grpo-tiny"
    assert (out / "warm_start" / "model.safetensors").is_file()
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    stats = json.loads((out / "reward_stats" / "rank0.json").read_text())
    # 2 steps x the recipe's 32 completions
    assert stats["world_size"] == 1 and stats["ume_reward"]["completions"] == 2 * 32
    evaluation = (out / "evaluation.csv").read_text().splitlines()
    assert evaluation[0].startswith("modality,n,tag_rate,valid_rate") and evaluation[-1].startswith("all,30,")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(BIN)) is None, reason="no torchrun next to python")
def test_two_processes_score_their_own_completions(tmp_path):
    out = tmp_path / "ddp"
    per_device, steps = 8, 2
    command = [
        str(BIN / "torchrun"),
        "--nproc_per_node",
        "2",
        "-m",
        "ume_rl.cli",
        "train",
        "--config",
        "recipes/tiny.yaml",  # the repository-relative spelling: resolves to the packaged recipe
        "--warm_start_epochs",
        "1",
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        str(per_device),
        "--max_completion_length",
        "16",
        "--eval_generations",
        "1",
        "--output_dir",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    stats = [json.loads((out / "reward_stats" / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [s["rank"] for s in stats] == [0, 1] and all(s["world_size"] == 2 for s in stats)
    # Each rank scored only its own share: per-device batch x steps, not the global batch.
    assert [s["ume_reward"]["completions"] for s in stats] == [per_device * steps] * 2
    state = json.loads((out / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    logged = [row for row in state["log_history"] if "reward" in row]
    assert logged and all("ume_reward/valid_fraction" in row for row in logged)
    assert (out / "model.safetensors").is_file() and (out / "warm_start" / "model.safetensors").is_file()
    log = result.stdout + result.stderr
    assert log.count("held-out evaluation of the trained policy") == 1  # rank 0 only
    assert (out / "evaluation.csv").is_file()
