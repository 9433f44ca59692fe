"""Shared fixtures: tiny real models, built once per test session, offline."""

from __future__ import annotations

import os

import pytest

# Tests always run the offline profile and never write into the project's runs/.
os.environ.setdefault("UME_RL_PROFILE", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def tiny_ume():
    """The untrained tiny UME (padded layout, CPU, frozen)."""
    from ume_rl.models import load_ume

    return load_ume("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_qwen_path(tmp_path_factory):
    """Directory of a freshly built tiny Qwen2 policy with its tokenizer."""
    from ume_rl.models import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"), seed=0)


@pytest.fixture(autouse=True)
def _isolated_runs_dir(tmp_path, monkeypatch):
    """Point runs/ at a per-test temporary directory."""
    monkeypatch.setenv("UME_RL_RUNS_DIR", str(tmp_path / "runs"))
