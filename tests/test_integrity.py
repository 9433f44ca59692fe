"""Files checked before use (manifests, whole-file parses), the cached tiny policy rebuilt when damaged, and the
run fingerprint a resume compares (issue 20)."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import save_file

from ume_rl.models.integrity import file_problem, manifest_problem, write_manifest
from ume_rl.training.fingerprint import (
    FINGERPRINT_KEYS,
    check_resume,
    fingerprint_changes,
    model_identity,
    run_fingerprint,
)
from ume_rl.training.rundir import RunDirectoryError


def test_a_manifest_catches_truncation_change_and_a_missing_file(tmp_path):
    save_file({"w": torch.ones(8)}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert "no ume_rl_manifest.json" in manifest_problem(tmp_path)
    write_manifest(tmp_path)
    assert manifest_problem(tmp_path) is None
    (tmp_path / "config.json").write_text('{"a": 2}')  # same size, other bytes
    assert manifest_problem(tmp_path) == "config.json: sha256 differs from the recorded one (corrupted?)"
    (tmp_path / "config.json").unlink()
    assert manifest_problem(tmp_path) == "config.json is missing"


def test_whole_file_parses_name_what_is_wrong(tmp_path):
    save_file({"w": torch.ones(8)}, str(tmp_path / "w.safetensors"))
    torch.save({"x": torch.ones(3)}, tmp_path / "o.pt")
    (tmp_path / "s.json").write_text("{}")
    assert all(file_problem(tmp_path / n) is None for n in ("w.safetensors", "o.pt", "s.json"))
    for name, keep in (("w.safetensors", -4), ("o.pt", -30), ("s.json", 1)):
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[:keep])
        assert file_problem(path).startswith(name), name
    assert file_problem(tmp_path / "absent.pt") == "absent.pt is missing"


def test_a_damaged_cached_tiny_policy_is_rebuilt_not_loaded(tmp_path, caplog, monkeypatch):
    from transformers import AutoModelForCausalLM

    from ume_rl.profiles import get_profile

    monkeypatch.setenv("UME_RL_RUNS_DIR", str(tmp_path))
    profile = get_profile("tiny")
    path = profile.policy_path()
    first = model_identity(path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated cache
    with caplog.at_level(logging.WARNING, logger="ume_rl.models.policy"):
        assert profile.policy_path() == path
    assert f"the cached tiny policy in {path} is not usable (model.safetensors: size 100" in caplog.text
    assert model_identity(path) == first  # the same seed builds the same files
    assert AutoModelForCausalLM.from_pretrained(path).num_parameters() > 0


class _Grpo:
    learning_rate, max_steps, seed, reward_weights, logging_steps = 1e-5, 4, 0, None, 1


def test_a_fingerprint_names_models_by_checksum_and_tells_harmless_changes(tmp_path):
    ckpt = tmp_path / "ume.ckpt"
    ckpt.write_bytes(b"one")
    before = run_fingerprint(
        _Grpo(), policy="tiny", reward_models=str(ckpt), dataset={"train": "a"}, reward_funcs=["ume"]
    )
    ckpt.write_bytes(b"two")  # the same path, other weights
    grpo = _Grpo()
    grpo.max_steps, grpo.logging_steps = 8, 5
    after = run_fingerprint(
        grpo, policy="tiny", reward_models=str(ckpt), dataset={"train": "a"}, reward_funcs=["ume"]
    )
    refused, allowed = fingerprint_changes(before, after)
    assert refused == ["reward_models"] and allowed == {"logging_steps": [1, 5], "max_steps": [4, 8]}
    with pytest.raises(RunDirectoryError) as err:
        check_resume(tmp_path, {"fingerprint": before}, after)
    assert "reward_models" in err.value.problem and "--accept_changes reward_models" in err.value.problem
    assert check_resume(tmp_path, {"fingerprint": before}, after, accept=["reward_models"])["max_steps"] == [
        4,
        8,
    ]
    assert {"policy", "reward_models", "dataset", "learning_rate", "reward_funcs"} <= FINGERPRINT_KEYS


def test_accept_changes_names_are_checked_when_parsed(tmp_path):
    from ume_rl.training.recipes import load_recipe
    from ume_rl.training.validation import ConfigError

    with pytest.raises(ConfigError, match=r"accept_changes='learning_rat'.*did you mean 'learning_rate'"):
        load_recipe("tiny", output_dir=str(tmp_path / "r"), accept_changes=["learning_rat"])
