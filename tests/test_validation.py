"""Configuration checks at parse time: every bad value is one line (field, value, source, fix), exit code 2,
and nothing is loaded or written; no --config means the active profile's recipe; --help documents it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ume_rl.cli import main, parse_train_args
from ume_rl.data.generate import generate_synthetic_dataset
from ume_rl.profiles import RECIPES_DIR
from ume_rl.training.recipes import load_recipe
from ume_rl.training.validation import ConfigError

TINY = str(RECIPES_DIR / "tiny.yaml")


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # recipes set torch_num_threads


def _refused(capsys, tmp_path, *flags, config=("--config", "tiny")):
    """Run ``ume-rl train`` with ``flags``: it must exit 2 with one line on stderr, having written nothing."""
    out = tmp_path / "out"
    argv = ["train", *config, "--output_dir", str(out), *flags]
    capsys.readouterr()  # what the test wrote before
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ume-rl train: error: "), err
    assert not out.exists() and not Path(os.environ["UME_RL_RUNS_DIR"]).exists()  # no warm start, no dataset
    return err[0]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--reward_mode", "maskd"],
            "reward_mode='maskd' (flag --reward_mode): must be one of ['masked', 'unmasked', 'spaced']",
        ),
        (
            ["--reward_temperature", "0"],
            "reward_temperature=0.0 (flag --reward_temperature): must be a finite number > 0",
        ),
        (
            ["--reward_temperature", "inf"],
            "reward_temperature=inf (flag --reward_temperature): must be a finite number",
        ),
        (["--reward_penalty", "nan"], "reward_penalty=nan (flag --reward_penalty): must be a finite number"),
        (
            ["--max_steps", "0"],
            "max_steps=0 (flag --max_steps): must be an integer >= 1. Fix: a number of GRPO steps",
        ),
        (["--max_steps", "-5"], "max_steps=-5 (flag --max_steps): must be an integer >= 1"),
        (["--max_steps", "abc"], "max_steps (flag --max_steps): invalid int value: 'abc'"),
        (["--num_generations", "3"], "generation_batch_size (32) must be divisible by num_generations (3)"),
        (["--num_generations", "1", "--per_device_train_batch_size", "2"], "num_generations"),
        (
            ["--reward_funcs", "ume", "complexit"],
            "reward_funcs='complexit' (flag --reward_funcs): must be one of",
        ),
        (
            ["--reward_weights", "1", "2"],
            "reward_weights=[1.0, 2.0] (flag --reward_weights): must hold one weight",
        ),
        (
            ["--warm_start_epochs", "-1"],
            "warm_start_epochs=-1.0 (flag --warm_start_epochs): must be a finite number >= 0",
        ),
        (
            ["--eval_generations", "-1"],
            "eval_generations=-1 (flag --eval_generations): must be an integer >= 0",
        ),
        (["--learning_rate", "nan"], "learning_rate=nan (flag --learning_rate): must be a finite number"),
        (["--temperature", "0"], "temperature=0.0 (flag --temperature): must be a finite number > 0"),
        (["--references", "huge"], "references='huge' (flag --references): must be one of"),
        (["--model_path", "demo"], "model_path='demo' (flag --model_path): is a UME (demo), not a policy"),
        (
            ["--ume_model_path", "facebook/esm2_t6_8M_UR50D"],
            "ume_model_path='facebook/esm2_t6_8M_UR50D' (flag --ume_model_path): is not a UME (hub)",
        ),
        (["--reward_temp", "0.5"], "unknown flag(s) --reward_temp: did you mean --reward_temperature"),
        (
            ["--ume_model_path", "/nope/ume.ckpt"],
            "ume_model_path='/nope/ume.ckpt' (flag --ume_model_path): this checkpoint does not exist",
        ),
        (
            ["--dataset_dir", "/nope/typo"],
            "dataset_dir='/nope/typo' (flag --dataset_dir): this directory does not exist. Fix: generate one there with python -c",
        ),
        (
            ["--resume_from_checkpoint", "last"],
            "resume_from_checkpoint='last' (flag --resume_from_checkpoint): output_dir",
        ),
    ],
)
def test_each_bad_flag_fails_before_any_work(capsys, tmp_path, flags, expected):
    assert expected in _refused(capsys, tmp_path, *flags)


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("max_steps: 3.5\n", "max_steps=3.5 (recipe {path}): must be of type int"),
        ("reward_temperature: '0.1x'\n", "reward_temperature (recipe {path}): invalid float value: '0.1x'"),
        ("reward_penalty: .nan\n", "reward_penalty=nan (recipe {path}): must be a finite number"),
        ("reward_funcs: ume\n", "reward_funcs='ume' (recipe {path}): must be a non-empty list"),
        ("penalty_for_invalid: -5\n", "unknown field(s) penalty_for_invalid (recipe {path})"),
        ("reward_mode: [masked]\n", "reward_mode=['masked'] (recipe {path}): must be of type str"),
        ("- a list\n", "recipe {path} must be a YAML mapping"),
        ("novelty_decay: 1.0\n", "novelty_decay=1.0 (recipe {path}): must be below 1"),
        ("novelty_decay: 0\n", "novelty_decay=0 (recipe {path}): must be a finite number > 0"),
        ("novelty_bucket_size: 0\n", "novelty_bucket_size=0 (recipe {path}): must be an integer >= 1"),
    ],
)
def test_bad_recipe_values_name_the_recipe_file(capsys, tmp_path, recipe, expected):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "model_path: tiny\nume_model_path: tiny\n" + recipe if not recipe.startswith("-") else recipe
    )
    assert expected.format(path=path) in _refused(capsys, tmp_path, config=("--config", str(path)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "recipe {path} is empty: write its fields"),
        ("# only a comment\n", "recipe {path} is empty"),
        ("{}\n", "recipe {path} is empty"),
        ("profile: tiny\nmax_steps: 3\nmax_steps: 5\n", "recipe {path}: 'max_steps' is given twice (line 3)"),
        ("profile: tiny\nenv:\n  A: '1'\n  A: '2'\n", "recipe {path}: 'A' is given twice (line 4)"),
    ],
)
def test_empty_recipe_and_duplicate_keys_are_refused(capsys, tmp_path, text, expected):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    message = _refused(capsys, tmp_path, config=("--config", str(path)))
    assert expected.format(path=path) in message
    with pytest.raises(ConfigError, match="empty|given twice"):
        load_recipe(path)


def test_output_dir_that_is_a_file_and_datasets_that_are_not_datasets(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    argv = ["train", "--config", "tiny", "--output_dir", str(a_file)]
    assert main(argv) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert a_file.read_text() == "mine"
    single = tmp_path / "single"
    generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)["train"].save_to_disk(str(single))
    files = sorted(p.name for p in single.iterdir())
    message = _refused(capsys, tmp_path, "--dataset_dir", str(single))
    assert "not a usable saved dataset: it holds a single saved Dataset, not a DatasetDict" in message
    assert sorted(p.name for p in single.iterdir()) == files  # nothing generated into the user's directory


def test_load_recipe_arguments_are_checked_and_named():
    with pytest.raises(
        ConfigError,
        match=r"reward_temperature=\[0.1\] \(argument reward_temperature=\): must be of type float",
    ):
        load_recipe("tiny", reward_temperature=[0.1])
    with pytest.raises(
        ConfigError, match=r"reward_temperature \(argument reward_temperature=\): invalid float value: 'x'"
    ):
        load_recipe("tiny", reward_temperature="x")
    with pytest.raises(
        ConfigError, match=r"unknown field\(s\) penalty_for_invalid \(argument penalty_for_invalid=\)"
    ):
        load_recipe("tiny", penalty_for_invalid=-5.0)
    script, grpo = load_recipe("tiny", max_steps="3")  # a string is converted, as a flag is
    assert grpo.max_steps == 3


def test_without_config_the_active_profiles_recipe_is_used_and_logged(monkeypatch, caplog):
    monkeypatch.setenv("UME_RL_PROFILE", "tiny")
    with caplog.at_level(logging.INFO, logger="ume_rl.training.recipes"):
        script, grpo = parse_train_args(["--max_steps", "3"])
    assert f"no --config given: using the tiny profile's recipe {RECIPES_DIR / 'tiny.yaml'}" in caplog.text
    recipe_script, recipe_grpo = load_recipe("tiny")
    assert (script.warm_start_epochs, grpo.max_completion_length) == (8, recipe_grpo.max_completion_length)
    assert grpo.max_steps == 3 and script.ume_model_path == "tiny"
    monkeypatch.setenv("UME_RL_PROFILE", "full")  # the profile picks the recipe, its models with it
    full, _ = parse_train_args([])
    assert full.warm_start_epochs == 1 and full.ume_model_path == "ume-mini-base-12M"


def test_two_recipes_of_one_profile_never_share_a_default_run_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("UME_RL_RUNS_DIR", str(tmp_path))
    _, full = load_recipe("full")
    _, public = load_recipe("full-public")
    assert Path(full.output_dir) == tmp_path / "grpo-full"
    assert Path(public.output_dir) == tmp_path / "grpo-full-public"  # same profile (full), its own directory
    _, explicit = load_recipe("full-public", output_dir=str(tmp_path / "mine"))
    assert Path(explicit.output_dir) == tmp_path / "mine"


def test_max_steps_minus_one_is_documented_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="ume_rl.training.validation"):
        _, grpo = parse_train_args(["--config", TINY, "--max_steps", "-1"])
    assert grpo.max_steps == -1
    assert (
        "max_steps=-1 (flag --max_steps): GRPO runs num_train_epochs=3.0 passes over the training prompts"
        in caplog.text
    )


def test_help_documents_config_resume_last_and_overwrite(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert out.startswith("usage: ume-rl train [--config RECIPE] [--FIELD VALUE ...]")
    assert "--config RECIPE\n    demo, full, full-public, tiny (the recipes shipped" in out
    assert "--resume_from_checkpoint last\n    continue the run" in out
    assert "'last' (or 'true') takes its newest complete checkpoint-N" in flat  # the field's own help
    assert "--overwrite_output_dir" in out and "-1: run num_train_epochs passes" in flat
    assert main(["--help"]) == 0
    assert "--resume_from_checkpoint last" in capsys.readouterr().out
