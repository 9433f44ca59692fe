"""Profiles: a recipe name plus where runs go; the recipe names the models; full never falls back silently."""

from pathlib import Path

import pytest
import torch

from ume_rl.profiles import (
    PROFILES,
    RECIPES_DIR,
    default_output_dir,
    get_profile,
    policy_path,
    resolve_profile_name,
    runs_dir,
)


def test_env_var_picks_profile(monkeypatch):
    monkeypatch.setenv("UME_RL_PROFILE", "full")
    assert resolve_profile_name() == "full"
    monkeypatch.setenv("UME_RL_PROFILE", " TINY ")
    assert resolve_profile_name() == "tiny"


def test_explicit_name_beats_env(monkeypatch):
    monkeypatch.setenv("UME_RL_PROFILE", "full")
    assert resolve_profile_name("tiny") == "tiny"


def test_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("UME_RL_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile_name() == "demo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile_name() == "full"


def test_unknown_profile_is_an_error(monkeypatch):
    monkeypatch.setenv("UME_RL_PROFILE", "medium")
    with pytest.raises(ValueError, match="UME_RL_PROFILE"):
        resolve_profile_name()


def test_profiles_are_the_shipped_recipes():
    assert PROFILES == ("demo", "full", "full-public", "tiny")
    assert all(get_profile(name).recipe == RECIPES_DIR / f"{name}.yaml" for name in PROFILES)


def test_full_profile_reads_model_choices_from_its_recipe(monkeypatch, tmp_path):
    """The models come from the recipe; your own recipe YAML is a profile too (UME_RL_PROFILE=path)."""
    profile = get_profile("full")
    assert (profile.policy, profile.ume) == ("Qwen/Qwen2-0.5B-Instruct", "ume-mini-base-12M")
    own = tmp_path / "mine.yaml"
    own.write_text("model_path: Qwen/Qwen2-1.5B-Instruct\nume_model_path: /ckpts/ume.ckpt\n")
    monkeypatch.setenv("UME_RL_PROFILE", str(own))
    profile = get_profile()
    assert (profile.name, profile.policy, profile.ume) == (
        "mine",
        "Qwen/Qwen2-1.5B-Instruct",
        "/ckpts/ume.ckpt",
    )
    (tmp_path / "bare.yaml").write_text("max_steps: 3\n")
    with pytest.raises(ValueError, match="does not name its model_path"):
        get_profile(str(tmp_path / "bare.yaml")).policy_path()


def test_full_profile_without_cached_qwen_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(FileNotFoundError, match="UME_RL_PROFILE=tiny"):
        get_profile("full").policy_path()


def test_full_profile_download_offline_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="UME_RL_PROFILE=tiny"):
        get_profile("full").policy_path(download=True)


def test_full_profile_with_missing_checkpoint_names_the_fix(monkeypatch, tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text(
        (RECIPES_DIR / "full.yaml").read_text().replace("ume-mini-base-12M", str(tmp_path / "missing.ckpt"))
    )
    with pytest.raises(FileNotFoundError, match="UME_RL_PROFILE=tiny"):
        get_profile(str(own)).load_ume(device="cpu")


def test_runs_dir_env_and_project_root(monkeypatch, tmp_path):
    assert runs_dir() == Path(tmp_path / "runs").resolve()  # set by the autouse fixture
    monkeypatch.delenv("UME_RL_RUNS_DIR")
    project = tmp_path / "project"
    (project / "ume_rl").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    assert runs_dir() == (project / "runs").resolve()


def test_tiny_policy_path_is_built_once(tmp_path):
    profile = get_profile("tiny")
    path = profile.policy_path()
    assert (path / "config.json").is_file()
    stamp = (path / "config.json").stat().st_mtime_ns
    assert profile.policy_path() == path
    assert (path / "config.json").stat().st_mtime_ns == stamp
    assert policy_path("tiny") == path and policy_path(str(path)) == path  # a local directory is itself
    with pytest.raises(ValueError, match="not a causal LM"):
        policy_path("ume-mini-base-12M")


def test_default_output_dir_is_named_after_the_recipe():
    assert default_output_dir(RECIPES_DIR / "full-public.yaml") == runs_dir() / "grpo-full-public"
    assert default_output_dir("tiny") == runs_dir() / "grpo-tiny"
    assert default_output_dir() == runs_dir() / "grpo-run"


def test_demo_profile_uses_the_small_ume_and_real_references(monkeypatch, tmp_path):
    profile = get_profile("demo")
    assert (profile.name, profile.policy, profile.ume, profile.references) == ("demo", "tiny", "demo", "real")
    assert profile.dataset_dir != get_profile("tiny").dataset_dir
    import ume_rl.models.ume

    asked = []
    monkeypatch.setattr(
        ume_rl.models.ume, "demo_ume_checkpoint", lambda runs: asked.append(runs) or tmp_path / "x.ckpt"
    )
    with pytest.raises(
        FileNotFoundError, match="x.ckpt does not exist"
    ):  # the demo UME's checkpoint is loaded
        profile.load_ume(device="cpu")
    assert asked == [profile.runs]
    assert get_profile("tiny").ume == "tiny"


@pytest.mark.parametrize("name", PROFILES)
def test_each_shipped_recipe_is_complete_on_its_own(name, tmp_path):
    """A recipe names its policy, its UME and its references itself (no profile, no environment variable)."""
    import yaml

    from ume_rl.models.names import resolve
    from ume_rl.training.recipes import load_recipe

    raw = yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())
    assert {"model_path", "ume_model_path", "references"} <= set(raw) and "profile" not in raw
    script, grpo = load_recipe(name, output_dir=tmp_path / "out")
    assert resolve(script.ume_model_path).is_ume and resolve(script.model_path).kind in ("tiny", "hub")
    assert set(script.reward_model_names()) == {"SMILES", "amino_acid", "nucleotide"}
    assert default_output_dir(name).name == f"grpo-{name}"
