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
from ume_rl.profiles import RECIPES_DIR, recipe_path
from ume_rl.training.recipes import load_recipe
from ume_rl.training.validation import ConfigError

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
    assert (tiny_script.model_path, tiny_script.ume_model_path) == (
        "tiny",
        "tiny",
    ) and tiny_script.warm_start_epochs > 0
    assert tiny.generation_batch_size % tiny.num_generations == 0
    assert tiny.bf16 is False and tiny.report_to == [] and not tiny.log_completions
    full_script, full = load_recipe(FULL, output_dir=tmp_path)
    assert (
        full_script.ume_model_path == "ume-mini-base-12M" and full.max_completion_length >= 200
    )  # DNA references reach 200 bp
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
    full, _ = load_recipe("full", output_dir=tmp_path / "out")
    assert (script.model_path, script.ume_model_path) == (full.model_path, full.ume_model_path)
    assert set(script.reward_models) == {"SMILES", "amino_acid", "nucleotide"}
    cache = tmp_path / "hub"
    snapshots = {
        modality: _cache_snapshot(cache, repo, lambda d, m=modality: build_tiny_masked_lm(m, out_dir=d))
        for modality, repo in script.reward_models.items()
    }
    qwen = _cache_snapshot(cache, "Qwen/Qwen2-0.5B-Instruct", lambda d: shutil.copytree(tiny_qwen_path, d))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert download_models("full-public", output_dir=tmp_path / "out") == {"policy": qwen, **snapshots}

    dataset = tmp_path / "data"
    save_dataset(generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False), dataset)
    run = TrainRun.prepare(*load_recipe("full-public", output_dir=tmp_path / "out", dataset_dir=str(dataset)))
    assert Path(run.base_policy) == qwen
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

    esm = tmp_path / "esm"
    esm.mkdir()
    flag = json.dumps({"protein": str(esm), "dna": "ume"})
    script, _ = parse_train_args(
        ["--config", TINY, "--output_dir", str(tmp_path / "out"), "--reward_models", flag]
    )
    assert script.reward_models == {"amino_acid": str(esm), "nucleotide": "ume"}
    names = script.reward_model_names()
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
    monkeypatch.chdir(tmp_path)  # the packaged recipes are found by name from anywhere
    assert recipe_path("tiny") == recipe_path("TINY") == RECIPES_DIR / "tiny.yaml"
    by_name, _ = parse_train_args(["--config", "full", "--max_steps", "3"])
    by_path, grpo = parse_train_args([f"--config={RECIPES_DIR / 'full.yaml'}", "--max_steps", "3"])
    assert by_name.ume_model_path == by_path.ume_model_path == "ume-mini-base-12M" and grpo.max_steps == 3
    own = tmp_path / "mine.yaml"
    own.write_text("model_path: tiny\nume_model_path: tiny\nmax_steps: 7\n")
    assert parse_train_args(["--config", str(own)])[1].max_steps == 7
    own.write_text("max_steps: 7\n")  # a recipe is complete on its own: it names its models
    with pytest.raises(ConfigError, match="model_path=None .*the recipe must name its policy"):
        parse_train_args(["--config", str(own)])
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


def test_train_command_end_to_end(capfd):
    argv = ["train", "--config", "tiny", "--max_steps", "2", "--warm_start_epochs", "1"]
    assert main([*argv, "--save_steps", "1", "--eval_generations", "1", "--max_completion_length", "48"]) == 0
    printed = capfd.readouterr()
    log = printed.out + printed.err
    # quiet: no per-split dataset bars, no pin_memory warning on CPU, no per-step completion tables
    assert "Saving the dataset" not in log and "pin_memory" not in log, log[-3000:]
    assert "Warning" not in log and "warnings.warn" not in log, log[-3000:]
    assert "Completion" not in log, log[-3000:]  # TRL's table headers: Prompt, Completion, rewards
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
    # the model card names the base policy, the reward models, the recipe and the result table
    card = (out / "README.md").read_text()
    assert "fine-tuned version of [None]" not in card
    assert "**Base policy**: `" in card and "tiny-qwen" in card
    assert "**Reward models**: SMILES: `tiny`" in card and "`ume` × 1" in card
    assert "**Recipe**: `tiny.yaml`" in card and "`max_steps`: 2" in card
    assert "| modality | n | tag_rate | valid_rate" in card and "\n| all | 30 |" in card
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
        "tiny",
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
    assert marker["resumes"][-1]["changed"] == {"max_steps": [2, 3]}  # allowed, and recorded
    assert marker["fingerprint"]["max_steps"] == 3


def test_overwrite_clears_the_earlier_run_whole(finished_run, run_args, tmp_path):
    run = _copy(finished_run, tmp_path)
    (run / "checkpoint-115").mkdir()
    (run / "completions").mkdir(exist_ok=True)  # TRL's completion log (off by default, on for this run)
    (run / "completions" / "completions_00115.parquet").write_bytes(b"stale")
    args = [
        "--max_steps",
        "1",
        "--output_dir",
        str(run),
        "--overwrite_output_dir",
        "true",
        "--log_completions",
        "true",
    ]
    assert main([*run_args, *args]) == 0
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


# ------------------------------- resume integrity (issue 20): fingerprints, damaged files, nothing claimed early


def _flag(args, name):
    return args[args.index(name) + 1]


def test_a_resume_that_changes_the_experiment_is_refused_naming_what_differs(
    tree_digests, finished_run, run_args, tmp_path, capsys
):
    run = _copy(finished_run, tmp_path)
    before = tree_digests(run)
    capsys.readouterr()
    changed = ["--learning_rate", "0.5", "--reward_funcs", "ume", "complexity", "--reward_weights", "1", "1"]
    resume = [*run_args, "--max_steps", "4", "--output_dir", str(run), "--resume_from_checkpoint", "last"]
    assert main([*resume, *changed]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a run with other settings" in err[0]
    assert (
        "learning_rate " in err[0]
        and "-> 0.5" in err[0]
        and 'reward_funcs ["ume"] -> ["ume", "complexity"]' in err[0]
    )
    assert "max_steps" not in err[0]  # harmless: allowed
    assert (
        "--overwrite_output_dir" in err[0]
        and "--accept_changes learning_rate reward_funcs reward_weights" in err[0]
    )
    assert tree_digests(run) == before


def test_a_resume_on_another_dataset_is_refused(tree_digests, finished_run, run_args, tmp_path, capsys):
    from ume_rl.data.generate import generate_synthetic_dataset
    from ume_rl.data.store import save_dataset

    run = _copy(finished_run, tmp_path)
    other = shutil.copytree(_flag(run_args, "--dataset_dir"), tmp_path / "ds")
    save_dataset(
        generate_synthetic_dataset(n_per_modality=10, seed=1, progress=False), other
    )  # notebook 02, seed 1
    before = tree_digests(run)
    capsys.readouterr()
    args = [*run_args, "--max_steps", "3", "--output_dir", str(run), "--resume_from_checkpoint", "last"]
    assert main([*args, "--dataset_dir", str(other)]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings" in err and "dataset {" in err
    assert tree_digests(run) == before


def test_resume_skips_a_truncated_newest_checkpoint(finished_run, run_args, tmp_path, caplog):
    run = _copy(finished_run, tmp_path)
    weights = run / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (run / "checkpoint-1" / "optimizer.pt").unlink()  # nothing complete but... see below
    args = [*run_args, "--max_steps", "3", "--output_dir", str(run), "--resume_from_checkpoint", "last"]
    assert main(args) == 2  # neither checkpoint is complete now: refused before anything is written
    shutil.copy(finished_run / "checkpoint-1" / "optimizer.pt", run / "checkpoint-1" / "optimizer.pt")
    with caplog.at_level(logging.INFO):
        assert main(args) == 0
    assert "skipping checkpoint-2 (model.safetensors is unreadable (SafetensorError" in caplog.text
    assert "resuming from checkpoint-1" in caplog.text
    assert json.loads((run / "checkpoint-3" / "trainer_state.json").read_text())["global_step"] == 3


def test_a_failed_start_leaves_the_directory_as_it_found_it(run_args, tiny_qwen_path, tmp_path, capsys):
    broken = shutil.copytree(tiny_qwen_path, tmp_path / "policy")
    (broken / "model.safetensors").write_bytes((broken / "model.safetensors").read_bytes()[:50])
    ckpt = tmp_path / "ume.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "run"
    cases = [
        (
            ["--model_path", str(broken)],
            f"the policy {broken} is not usable: model.safetensors is unreadable",
        ),
        (["--ume_model_path", str(ckpt)], f"the UME {ckpt} could not be loaded"),
    ]
    for flags, expected in cases:
        capsys.readouterr()
        assert main([*run_args, "--max_steps", "1", "--output_dir", str(out), *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0] and "Fix:" in err[0], err
        assert not out.exists()  # nothing claimed: the same command can simply be run again


def test_a_reward_model_that_is_not_cached_is_one_line_before_anything_is_written(
    run_args, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    out.mkdir()
    capsys.readouterr()
    flags = ["--reward_models", '{"SMILES": "nobody-here/not-a-masked-lm"}']
    assert main([*run_args, "--max_steps", "1", "--output_dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "the reward model nobody-here/not-a-masked-lm (SMILES) could not be loaded" in err[0]
    )
    assert [p.name for p in out.iterdir()] in ([], [".ume_rl.lock"])  # the lock file, empty, is not a run


def test_a_run_killed_before_its_first_checkpoint_resumes_from_its_warm_start(
    tree_digests, finished_run, run_args, tmp_path, capsys, caplog
):
    run = _copy(finished_run, tmp_path)
    for entry in run.iterdir():  # as a kill after the warm start, before the first checkpoint, leaves it
        if entry.name not in ("warm_start", "ume_rl_run.json", ".ume_rl.lock"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    marker = json.loads((run / "ume_rl_run.json").read_text())
    (run / "ume_rl_run.json").write_text(json.dumps({**marker, "status": "running"}))
    warm = {k: v for k, v in tree_digests(run).items() if k.startswith("warm_start/")}
    capsys.readouterr()
    assert main([*run_args, "--max_steps", "1", "--output_dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert (
        "holds an interrupted run (a warm start)" in err
        and "resume it with --resume_from_checkpoint last" in err
    )
    with caplog.at_level(logging.INFO):
        resume = [*run_args, "--max_steps", "1", "--output_dir", str(run), "--resume_from_checkpoint", "last"]
        assert main(resume) == 0
    assert "holds no checkpoint yet" in caplog.text and "reusing the complete warm start" in caplog.text
    assert {k: v for k, v in tree_digests(run).items() if k.startswith("warm_start/")} == warm
    assert (run / "checkpoint-1").is_dir()


def test_ctrl_c_ends_with_one_line_saying_how_to_resume(run_args, tmp_path, capsys, monkeypatch):
    import ume_rl.cli

    out = tmp_path / "run"

    def interrupted(script, grpo):  # Ctrl-C once the run has started in its directory
        out.mkdir()
        (out / "ume_rl_run.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(ume_rl.cli, "run_train", interrupted)
    args = [*run_args, "--max_steps", "1", "--output_dir", str(out), "--overwrite_output_dir", "true"]
    capsys.readouterr()
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ume-rl train: interrupted; {out} keeps its checkpoints")
    command = err[0].split("Continue it with: ")[1].split()
    assert command[-2:] == ["--resume_from_checkpoint", "last"] and "--overwrite_output_dir" not in command
    assert parse_train_args(command[2:])[1].resume_from_checkpoint == "last"


def test_a_full_start_without_a_cached_policy_is_one_line_and_the_same_command_runs_again(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    messages = []
    for _ in range(2):  # the retry is not refused as "an interrupted run": nothing was claimed
        capsys.readouterr()
        assert main(["train", "--config", "full", "--output_dir", str(out)]) == 2
        err = capsys.readouterr().err  # the first start also generates the profile's dataset (progress bars)
        assert "Traceback" not in err and not out.exists()
        messages.append([line for line in err.splitlines() if line.startswith("ume-rl train")])
    assert messages[0] == messages[1] and len(messages[0]) == 1
    assert "the policy could not be loaded (FileNotFoundError: No snapshot of Qwen/" in messages[0][0]
