"""Profiles: the package decides tiny / demo / full; full never falls back silently."""

from pathlib import Path

import pytest
import torch

from ume_rl.profiles import get_profile, resolve_profile_name, runs_dir


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


def test_full_profile_reads_model_choices(monkeypatch):
    monkeypatch.setenv("UME_RL_QWEN", "Qwen/Qwen2-1.5B-Instruct")
    monkeypatch.setenv("UME_RL_UME_CHECKPOINT", "/ckpts/ume.ckpt")
    profile = get_profile("full")
    assert (profile.qwen, profile.ume) == ("Qwen/Qwen2-1.5B-Instruct", "/ckpts/ume.ckpt")


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
    monkeypatch.setenv("UME_RL_UME_CHECKPOINT", str(tmp_path / "missing.ckpt"))
    with pytest.raises(FileNotFoundError, match="UME_RL_PROFILE=tiny"):
        get_profile("full").load_ume(device="cpu")


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


def test_demo_profile_uses_the_small_ume_and_real_references(monkeypatch, tmp_path):
    profile = get_profile("demo")
    assert (profile.name, profile.qwen, profile.ume, profile.references) == ("demo", "tiny", "demo", "real")
    assert profile.dataset_dir != get_profile("tiny").dataset_dir
    import ume_rl.models.small_ume

    asked = []
    monkeypatch.setattr(
        ume_rl.models.small_ume, "demo_ume_checkpoint", lambda runs: asked.append(runs) or tmp_path / "x.ckpt"
    )
    assert profile.ume_path() == str(tmp_path / "x.ckpt") and asked == [profile.runs]
    assert get_profile("tiny").ume_path() == "tiny"
