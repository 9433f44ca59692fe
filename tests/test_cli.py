"""`ume-rl train`: recipes, flag overrides, an in-process run, and a two-process (torchrun, gloo) run on CPU."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ume_rl
from ume_rl.cli import main, parse_train_args
from ume_rl.training.recipes import RECIPES_DIR, load_recipe, recipe_path

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


def _cache_snapshot(cache: Path, repo_id: str, write) -> Path:
    """Lay out a Hugging Face hub cache entry for ``repo_id`` (refs/main -> snapshots/<commit>) and fill it."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    write(snapshot)
    return snapshot


def test_full_public_recipe_loads_through_the_full_code_path(tmp_path, monkeypatch, tiny_qwen_path):
    """With its models in the Hugging Face cache (tiny stand-ins under the recipe's hub ids), ``full-public``
    resolves, downloads (a cache hit) and loads exactly as ``full`` does, with a masked LM per modality."""
    from ume_rl.data.generate import generate_synthetic_dataset
    from ume_rl.data.store import save_dataset
    from ume_rl.models.masked_lms import build_tiny_masked_lm
    from ume_rl.rewards.engine.hf_scoring import MaskedLM
    from ume_rl.training.run import TrainRun, download_models

    script, _ = load_recipe("full-public", output_dir=tmp_path / "out")
    assert script.profile == "full" and set(script.reward_models) == {"SMILES", "amino_acid", "nucleotide"}
    cache = tmp_path / "hub"
    snapshots = {
        modality: _cache_snapshot(cache, repo, lambda d, m=modality: build_tiny_masked_lm(m, out_dir=d))
        for modality, repo in script.reward_models.items()
    }
    qwen = _cache_snapshot(cache, "Qwen/Qwen2-0.5B-Instruct", lambda d: shutil.copytree(tiny_qwen_path, d))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("UME_RL_QWEN", raising=False)
    assert download_models("full-public", output_dir=tmp_path / "out") == {"policy": qwen, **snapshots}

    dataset = tmp_path / "data"
    save_dataset(generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False), dataset)
    run = TrainRun.prepare(*load_recipe("full-public", output_dir=tmp_path / "out", dataset_dir=str(dataset)))
    assert run.profile.name == "full" and Path(run.base_policy) == qwen
    models = run.load_reward_models()
    assert {m: (type(v).__name__, v.name) for m, v in models.items()} == {
        m: ("MaskedLM", repo) for m, repo in script.reward_models.items()
    }
    assert all(isinstance(v, MaskedLM) and not v.model.training for v in models.values())
    (reward,) = run.build_rewards(models)
    rows = reward.details(run.dataset["train"]["completion"], modality=run.dataset["train"]["modality"])
    assert all(r["reason"] is None and r["score"] < 0 for r in rows)
    assert reward.get_statistics()["models"] == script.reward_models


def test_reward_models_choose_per_modality_and_fall_back_to_the_ume(tmp_path):
    from ume_rl.profiles import get_profile
    from ume_rl.training.validation import ConfigError

    esm = tmp_path / "esm"
    esm.mkdir()
    flag = json.dumps({"protein": str(esm), "dna": "ume"})
    script, _ = parse_train_args(
        ["--config", TINY, "--output_dir", str(tmp_path / "out"), "--reward_models", flag]
    )
    assert script.reward_models == {"amino_acid": str(esm), "nucleotide": "ume"}
    names = script.reward_model_names(get_profile("tiny"))
    assert names == {"SMILES": "tiny", "amino_acid": str(esm), "nucleotide": "tiny"}
    with pytest.raises(ConfigError, match="mapping modality -> model"):
        parse_train_args(["--config", TINY, "--reward_models", "facebook/esm2_t6_8M_UR50D"])
    with pytest.raises(ConfigError, match="Unknown modality"):
        load_recipe("tiny", reward_models={"rna": "x"})
    with pytest.raises(ConfigError, match="reward_models.*/nowhere/esm.*does not exist"):
        load_recipe("tiny", reward_models={"protein": "/nowhere/esm"}, output_dir=tmp_path / "out2")


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
    assert sorted(p.name for p in RECIPES_DIR.glob("*.yaml")) == [
        "demo.yaml",
        "full-public.yaml",
        "full.yaml",
        "tiny.yaml",
    ]
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
    from ume_rl.data.generate import generate_synthetic_dataset
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
    with pytest.raises(FileNotFoundError, match="full, full-public, tiny"):
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
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert sorted({g["stage"] for g in generations}) == ["base", "trained", "warm_start"]
    assert len(generations) == 3 * 30 and all(g["sequence"] or not g["valid"] for g in generations)
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [row for row in state["log_history"] if "reward" in row]
    assert logged and all(
        any(k.startswith("realism/") and k.endswith("/valid") for k in row) for row in logged
    )
    assert "hacking" in json.loads((out / "verdict.json").read_text())
    assert (out / "realism.csv").read_text().startswith("modality,metric,base,warm_start,trained,corpus")


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


# ------------------------------------------- runs are never lost (issue 12): refusal, lock, resume, overwrite


@pytest.fixture(scope="module")
def run_args(tmp_path_factory, tiny_qwen_path):
    """Tiny, fast settings of ``ume-rl train`` on a small saved dataset (the output dir is added per test)."""
    from ume_rl.data.store import load_or_generate_dataset

    dataset = tmp_path_factory.mktemp("data") / "ds"
    load_or_generate_dataset(dataset, n_per_modality=10, seed=0, progress=False)
    # 1 prompt x 8 completions per step; a warm start of one SFT step
    return [
        "train",
        "--config",
        "tiny",
        "--model_path",
        str(tiny_qwen_path),
        "--dataset_dir",
        str(dataset),
    ] + [
        *("--save_steps", "1", "--warm_start_epochs", "0.05", "--eval_generations", "0"),
        *("--max_completion_length", "16", "--per_device_train_batch_size", "8"),
    ]


@pytest.fixture(scope="module")
def finished_run(run_args, tmp_path_factory):
    """A finished two-step run (checkpoints 1 and 2, a warm start, the final model); tests copy it."""
    import torch

    out = tmp_path_factory.mktemp("finished") / "run"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UME_RL_RUNS_DIR", str(out.parent / "runs"))
        assert main([*run_args, "--max_steps", "2", "--output_dir", str(out)]) == 0
    torch.set_num_threads(threads)
    return out


def _copy(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_rerunning_into_a_finished_run_is_refused_and_changes_nothing(
    tree_digests, finished_run, run_args, tmp_path, capsys
):
    run = _copy(finished_run, tmp_path)
    before = tree_digests(run)
    capsys.readouterr()
    assert main([*run_args, "--max_steps", "2", "--output_dir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "holds a finished run (checkpoint-1, checkpoint-2, a warm start, a final model)" in err[0]
    )
    assert (
        "--resume_from_checkpoint last" in err[0] and "--overwrite_output_dir (deletes everything" in err[0]
    )
    assert tree_digests(run) == before  # every file byte-identical, none added


def test_an_interrupted_run_keeps_its_checkpoints(tree_digests, finished_run, run_args, tmp_path, capsys):
    run = _copy(finished_run, tmp_path)
    (run / "model.safetensors").unlink()  # killed before the final save
    (run / "ume_rl_run.json").write_text(json.dumps({"status": "running"}))
    before = tree_digests(run)
    capsys.readouterr()
    assert main([*run_args, "--max_steps", "4", "--save_steps", "2", "--output_dir", str(run)]) == 2
    assert "holds an interrupted run (checkpoint-1, checkpoint-2, a warm start)" in capsys.readouterr().err
    assert tree_digests(run) == before


def test_resume_continues_and_reuses_the_complete_warm_start(
    tree_digests, finished_run, run_args, tmp_path, caplog
):
    run = _copy(finished_run, tmp_path)
    warm = {k: v for k, v in tree_digests(run).items() if k.startswith("warm_start/")}
    with caplog.at_level(logging.INFO):
        assert (
            main(
                [*run_args, "--max_steps", "3", "--output_dir", str(run), "--resume_from_checkpoint", "last"]
            )
            == 0
        )
    assert f"warm start: reusing the complete warm start in {run / 'warm_start'}" in caplog.text
    assert {
        k: v for k, v in tree_digests(run).items() if k.startswith("warm_start/")
    } == warm  # not trained again
    assert json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3
    marker = json.loads((run / "ume_rl_run.json").read_text())
    assert marker["status"] == "trained" and marker["global_step"] == 3 and marker["resumed"]


def test_overwrite_clears_the_earlier_run_whole(finished_run, run_args, tmp_path):
    run = _copy(finished_run, tmp_path)
    (run / "checkpoint-115").mkdir()
    (run / "completions" / "completions_00115.parquet").write_bytes(b"stale")
    assert (
        main([*run_args, "--max_steps", "1", "--output_dir", str(run), "--overwrite_output_dir", "true"]) == 0
    )
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1"]
    assert sorted(p.name for p in (run / "completions").iterdir()) == ["completions_00001.parquet"]
    assert json.loads((run / "checkpoint-1" / "trainer_state.json").read_text())["global_step"] == 1


def test_a_second_run_on_a_directory_in_use_fails_at_once(tree_digests, run_args, tmp_path, capsys):
    """The first run is simulated: this process holds the directory's lock, as a running ume-rl train would."""
    import socket

    from filelock import FileLock

    from ume_rl.training.run import TrainRun
    from ume_rl.training.rundir import HOLDER_FILE, LOCK_FILE, RunDirectoryError

    run = tmp_path / "run"
    run.mkdir()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "2024-05-01 10:00:00",
        "command": ["x"],
    }
    lock = FileLock(str(run / LOCK_FILE), timeout=0)
    lock.acquire()
    try:
        (run / HOLDER_FILE).write_text(json.dumps(holder))
        before = tree_digests(run)
        capsys.readouterr()
        assert main([*run_args, "--max_steps", "1", "--output_dir", str(run)]) == 2
        message = capsys.readouterr().err
        assert (
            f"in use by another run: PID {os.getpid()} on {socket.gethostname()}, started 2024-05-01 10:00:00"
            in message
        )
        assert tree_digests(run) == before
    finally:
        lock.release()
    # the lock taken between the checks and the start (a race) is caught when the run claims the directory
    script, grpo = parse_train_args([*run_args[1:], "--max_steps", "1", "--output_dir", str(run)])
    lock.acquire()
    try:
        with pytest.raises(RunDirectoryError, match=f"in use by another run: PID {os.getpid()}"):
            TrainRun.prepare(script, grpo)
    finally:
        lock.release()
