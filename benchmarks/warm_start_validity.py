"""Validity of the demo policy after its warm start, against the warm start's CPU budget.

For each budget point (policy size, corpus-stage steps, references per modality, epochs, learning rate) this builds
the tiny Qwen2 policy, warm-starts it (language modelling on tagged real sequences when ``corpus_steps`` > 0, then
SFT) on the demo dataset's train rows plus extra real references (MOSES train SMILES,
the corpus's train split for proteins and DNA; none of them a held-out row's answer), samples completions on
the demo dataset's held-out prompts (validation + test, as notebook 04 and ``ume-rl train`` evaluate) and
records the valid rate per modality and the warm start's wall time. One process, one torch thread.

    python benchmarks/warm_start_validity.py                       # the default grid
    python benchmarks/warm_start_validity.py --run NAME hidden=128 layers=4 refs=2000 epochs=2 lr=3e-3
    python benchmarks/warm_start_validity.py --run NAME corpus_steps=1500 corpus_lr=5e-3 refs=1000 epochs=1 lr=3e-3

Results are added to ``benchmarks/results/warm_start_validity.json`` (one entry per run name) after each run.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from datasets import concatenate_datasets
from transformers import AutoModelForCausalLM

from ume_rl.data.generate import corpus_texts, extra_references, reference_rows, tokenizer_corpus
from ume_rl.data.store import load_or_generate_dataset
from ume_rl.models.policy import build_tiny_qwen
from ume_rl.models.ume import load_ume
from ume_rl.profiles import get_profile
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.training.evaluation import generate_completions
from ume_rl.training.sft import warm_start

RESULTS = Path(__file__).parent / "results" / "warm_start_validity.json"
DEFAULTS = {  # the previous demo warm start (SFT only); a run's FIELD=VALUE overrides these
    "hidden": 64,
    "layers": 2,
    "refs": 0,
    "epochs": 8.0,
    "lr": 1e-2,
    "batch": 16,
    "tok_smiles": 0,
    "corpus_steps": 0,  # the corpus stage: causal LM on tagged real sequences before SFT
    "corpus_lr": 3e-3,
    "corpus_smiles": 40000,
    "corpus_protein": 1500,
    "corpus_dna": 1500,
}
GRID = {
    "previous-default": {},
    "corpus3000-refs1000-e1": {
        "corpus_steps": 3000,
        "refs": 1000,
        "epochs": 1.0,
        "lr": 3e-3,
    },  # the demo recipe's
    "h64-refs1000-e2": {"refs": 1000, "epochs": 2.0, "tok_smiles": 200},
    "h128l4-refs1000-e2": {
        "hidden": 128,
        "layers": 4,
        "refs": 1000,
        "epochs": 2.0,
        "lr": 3e-3,
        "tok_smiles": 200,
    },
    "h128l4-refs3000-e2": {
        "hidden": 128,
        "layers": 4,
        "refs": 3000,
        "epochs": 2.0,
        "lr": 3e-3,
        "tok_smiles": 200,
    },
}


def run_point(name: str, point: dict, seed: int, work: Path) -> dict:
    """Build, warm-start and evaluate one budget point; returns its record."""
    profile = get_profile("demo")
    dataset = load_or_generate_dataset(profile.dataset_dir, rebuild=True, progress=False, references="real")
    held_out = concatenate_datasets([dataset["validation"], dataset["test"]])
    corpus_text = tokenizer_corpus(seed=seed, references="real")
    if point["tok_smiles"]:
        corpus_text += extra_references("SMILES", point["tok_smiles"], seed + 1)
    base = build_tiny_qwen(
        work / f"{name}-base",
        seed=seed,
        corpus=corpus_text,
        hidden_size=point["hidden"],
        num_hidden_layers=point["layers"],
    )
    rows = dataset["train"]
    if point["refs"]:
        rows = concatenate_datasets([rows, reference_rows(point["refs"], seed, exclude=held_out["sequence"])])
    corpus = []
    if point["corpus_steps"]:
        sizes = {
            "SMILES": point["corpus_smiles"],
            "amino_acid": point["corpus_protein"],
            "nucleotide": point["corpus_dna"],
        }
        corpus = corpus_texts(sizes, seed, exclude=held_out["sequence"])
    start = time.perf_counter()
    policy = warm_start(
        base,
        rows,
        work / f"{name}-warm",
        num_train_epochs=point["epochs"],
        learning_rate=point["lr"],
        per_device_train_batch_size=point["batch"],
        seed=seed,
        logging_steps=50,
        reuse="never",
        corpus=corpus,
        corpus_steps=point["corpus_steps"],
        corpus_learning_rate=point["corpus_lr"],
    )
    seconds = time.perf_counter() - start
    frame = generate_completions(
        policy, held_out, MaskedLMReward(load_ume("tiny")), num_generations=8, max_new_tokens=100
    )
    valid = frame.groupby("modality")["valid"].mean().round(4).to_dict()
    lengths = frame[frame.valid].groupby("modality")["sequence"].apply(lambda s: s.str.len().mean()).round(1)
    params = AutoModelForCausalLM.from_pretrained(str(policy)).num_parameters()
    return {
        **point,
        "seed": seed,
        "parameters": params,
        "train_rows": len(rows),
        "warm_start_seconds": round(seconds, 1),
        "valid_rate": valid,
        "valid_mean_length": lengths.to_dict(),
        "completions_per_modality": int(len(frame) / 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="+", action="append", metavar=("NAME", "FIELD=VALUE"), default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    runs = {r[0]: dict(kv.split("=", 1) for kv in r[1:]) for r in args.run} if args.run else GRID
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in runs.items():
            point = {k: type(DEFAULTS[k])(v) for k, v in {**DEFAULTS, **overrides}.items()}
            record = run_point(name, point, args.seed, Path(tmp))
            # read again just before writing: runs of this script side by side keep each other's entries
            results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
            results[name] = {"torch_threads": torch.get_num_threads(), **record}
            print(name, json.dumps(record), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
