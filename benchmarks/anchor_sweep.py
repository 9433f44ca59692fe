"""Anchors against drift, measured: warm start vs GRPO vs GRPO + each anchor vs the combination (demo profile).

Every configuration starts GRPO from the same warm start (the ``demo`` recipe's, trained once) and is run per
seed with the demo recipe's settings and the overrides below. Each policy (the warm start too) then samples
``--eval_generations`` completions per held-out prompt (validation + test), and per modality the script records:

- ``valid``: valid fraction; ``reward``: mean UME reward of all completions (the training reward, invalid penalty
  included); ``ume``: of the valid ones;
- ``audit``: mean per-token log-probability of the valid sequences under the ±2-neighbour context count model
  fitted on the corpus's train split (:class:`ume_rl.inspection.quality.ContextBaseline`): a scorer the policy
  is not trained on;
- realism (:class:`ume_rl.training.realism.RealismSuite` against the corpus's held-out split: every metric as
  ``realism/<metric>``, and the distances below) and ``unique``
  (distinct valid sequences / valid);
- ``train_reward``: the mean UME reward TRL logged over the last quarter of the steps; ``seconds``: GRPO wall time.

    python benchmarks/anchor_sweep.py --seeds 0 1 2                    # every configuration
    python benchmarks/anchor_sweep.py --configs grpo kl --seeds 0      # some

Results go to ``benchmarks/results/anchor_sweep.json`` after every run (runs already there are kept, so a sweep
can be continued); ``summary`` holds the per-configuration means and spreads over seeds, the Pareto front over
(reward, audit), and the issue's target checked per modality against the warm start.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
from datasets import concatenate_datasets

from ume_rl.data.corpus import load_real_corpus
from ume_rl.data.store import load_or_generate_dataset
from ume_rl.inspection.quality import context_baseline
from ume_rl.rewards.modalities import MODALITIES
from ume_rl.rewards.registry import build_reward_funcs
from ume_rl.training.evaluation import generate_completions
from ume_rl.training.realism import RealismSuite
from ume_rl.training.recipes import load_recipe
from ume_rl.training.run import warm_start_policy
from ume_rl.training.sft import completed_warm_start
from ume_rl.training.trainer import build_trainer

RESULTS = Path(__file__).parent / "results" / "anchor_sweep.json"
NORMALIZED = {"multi_objective_aggregation": "normalize_then_sum"}
# Each configuration sets beta itself: the demo recipe's own (its default anchor) must not leak into the others.
CONFIGS = {
    "grpo": {"reward_funcs": ["ume"], "beta": 0.0},
    "kl": {"reward_funcs": ["ume"], "beta": 0.02},
    "novelty": {"reward_funcs": ["ume", "novelty"], "reward_weights": [1.0, 0.5], "beta": 0.0, **NORMALIZED},
    "complexity_length": {
        "reward_funcs": ["ume", "complexity", "length"],
        "reward_weights": [1.0, 0.5, 0.5],
        "beta": 0.0,
        **NORMALIZED,
    },
    "all": {
        "reward_funcs": ["ume", "complexity", "length", "novelty"],
        "reward_weights": [1.0, 0.5, 0.5, 0.5],
        "beta": 0.02,
        **NORMALIZED,
    },
}
# realism distances to the corpus: lower is better (KL against 0, the others against the corpus's own value)
DISTANCES = {"SMILES": ("qed",), "amino_acid": ("aa_kl",), "nucleotide": ("kmer3_kl", "gc")}


def evaluate(
    policy, tokenizer, held_out, ume_reward, ume, corpus, suite: RealismSuite, generations: int, seed: int
) -> dict:
    """Per-modality metrics of ``policy``'s completions on the held-out prompts (module docstring)."""
    frame = generate_completions(
        policy,
        held_out,
        ume_reward,
        num_generations=generations,
        max_new_tokens=100,
        seed=seed,
        tokenizer=tokenizer,
    )
    realism = suite.table(frame)
    out = {}
    for modality in MODALITIES:
        mine = frame[frame["modality"] == modality]
        rows = mine[mine["valid"]]
        sequences = rows["sequence"].tolist()
        metrics = {"valid": float(mine["valid"].mean()), "reward": float(mine["reward"].mean())}
        metrics["ume"] = float(rows["reward"].mean()) if sequences else math.nan
        metrics["unique"] = len(set(sequences)) / len(sequences) if sequences else math.nan
        metrics["mean_length"] = float(rows["sequence"].str.len().mean()) if sequences else math.nan
        if sequences:
            tokenizer_m = ume.get_tokenizer(modality)
            ids = tokenizer_m(sequences)["input_ids"]
            metrics["audit"] = float(context_baseline(corpus, modality, tokenizer_m).scores(ids).mean())
        else:
            metrics["audit"] = math.nan
        if modality in realism.index.get_level_values(0):
            metrics.update({f"realism/{k}": float(v) for k, v in realism.loc[modality, "value"].items()})
        for metric in DISTANCES[modality]:
            value, ref = (
                realism.loc[(modality, metric)] if (modality, metric) in realism.index else (math.nan, 0.0)
            )
            metrics[f"{metric}_distance"] = float(abs(value - ref))
        out[modality] = metrics
    return out


def train_reward(log_history: list[dict]) -> float:
    """Mean of TRL's logged UME reward over the last quarter of the logged steps."""
    values = [e["rewards/ume_reward/mean"] for e in log_history if "rewards/ume_reward/mean" in e]
    tail = values[-max(1, len(values) // 4) :]
    return float(statistics.fmean(tail)) if tail else math.nan


def _beyond(stats: dict, warm: dict, key: str) -> bool:
    """``stats[key]`` above the warm start's beyond both spreads (each a ``[mean, sd]`` over seeds)."""
    return stats[key][0] - stats[key][1] > warm[key][0] + warm[key][1]


def summarize(runs: dict) -> dict:
    """Mean and spread over seeds per configuration, the Pareto front and the issue's target per modality."""
    by_config: dict[str, list[dict]] = {}
    for record in runs.values():
        by_config.setdefault(record["config"], []).append(record)
    table: dict[str, dict] = {}
    for config, records in by_config.items():
        table[config] = {"seeds": sorted(r["seed"] for r in records)}
        for modality in MODALITIES:
            keys = records[0]["metrics"][modality].keys()
            stats = {}
            for key in keys:
                values = [
                    r["metrics"][modality][key]
                    for r in records
                    if not math.isnan(r["metrics"][modality][key])
                ]
                mean = statistics.fmean(values) if values else math.nan
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                stats[key] = [round(mean, 4), round(spread, 4)]
            table[config][modality] = stats
        rewards = [r["train_reward"] for r in records if r.get("train_reward") is not None]
        table[config]["train_reward"] = round(statistics.fmean(rewards), 3) if rewards else None
    front, target = {}, {}
    for modality in MODALITIES:
        points = {  # no valid completion: no audit, so it is dominated by any policy with one
            c: tuple(
                -math.inf if math.isnan(v) else v for v in (t[modality]["reward"][0], t[modality]["audit"][0])
            )
            for c, t in table.items()
        }
        front[modality] = sorted(
            c
            for c, (u, a) in points.items()
            if not any(u2 >= u and a2 >= a and (u2, a2) != (u, a) for u2, a2 in points.values())
        )
        if "warm_start" not in table:
            continue
        warm = table["warm_start"][modality]
        target[modality] = {}
        for config, t in table.items():
            if config == "warm_start":
                continue
            m = t[modality]
            distances = [k for k in m if k.endswith("_distance")]
            checks = {
                "reward_up": _beyond(m, warm, "reward"),
                "audit_up": _beyond(m, warm, "audit"),
                "realism_within_10pct": all(m[k][0] <= 1.1 * warm[k][0] + 1e-9 for k in distances),
                "unique_ge_0.95": m["unique"][0] >= 0.95,
            }
            checks["met"] = all(checks.values())
            target[modality][config] = checks
    return {"table": table, "pareto_front_reward_audit": front, "target": target}


def save(path: Path, results: dict) -> None:
    """Write ``results`` with the runs already in ``path`` (read again now, so sweeps side by side, one seed each,
    keep each other's runs) and the summary over all of them."""
    runs = {**(json.loads(path.read_text())["runs"] if path.is_file() else {}), **results["runs"]}
    results["runs"] = dict(sorted(runs.items()))
    results["summary"] = summarize(results["runs"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max_steps", type=int, default=None, help="default: the demo recipe's")
    parser.add_argument("--eval_generations", type=int, default=4)
    parser.add_argument(
        "--work", default=None, help="where runs are written (default: a temporary directory)"
    )
    parser.add_argument(
        "--warm_only", action="store_true", help="train the warm start into --work, then stop"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="the JSON file to add the runs to")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    results = json.loads(args.results.read_text()) if args.results.is_file() else {"runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        script, grpo = load_recipe("demo", output_dir=str(work / "base"), overwrite_output_dir=True)
        from ume_rl.profiles import get_profile

        profile = get_profile("demo")
        corpus = load_real_corpus(progress=False)
        suite = RealismSuite.from_corpus(corpus, moses=0)
        dataset = load_or_generate_dataset(
            profile.dataset_dir, rebuild=True, progress=False, references="real"
        )
        held_out = concatenate_datasets([dataset["validation"], dataset["test"]])
        reused = completed_warm_start(work / "warm_start") is not None  # then its seconds say nothing
        start = time.perf_counter()
        warm = warm_start_policy(script, grpo, dataset, profile.policy_path(), work / "warm_start")
        warm_seconds = time.perf_counter() - start
        if args.warm_only:
            return
        ume = profile.load_ume()
        (ume_reward,) = build_reward_funcs(["ume"], ume, script.reward_settings())
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(warm))
        for seed in args.seeds:
            name = f"warm_start/seed{seed}"
            if name not in results["runs"]:
                model = AutoModelForCausalLM.from_pretrained(str(warm))
                metrics = evaluate(
                    model, tokenizer, held_out, ume_reward, ume, corpus, suite, args.eval_generations, seed
                )
                results["runs"][name] = {
                    "config": "warm_start",
                    "seed": seed,
                    "seconds": None if reused else round(warm_seconds, 1),
                    "metrics": metrics,
                }
            for config in args.configs:
                name = f"{config}/seed{seed}"
                if name in results["runs"]:
                    continue
                overrides = {**CONFIGS[config], "seed": seed, "max_steps": args.max_steps}
                script, grpo = load_recipe(
                    "demo",
                    output_dir=str(work / name),
                    overwrite_output_dir=True,
                    save_strategy="no",
                    **overrides,
                )
                rewards = build_reward_funcs(script.reward_funcs, ume, script.reward_settings())
                trainer = build_trainer(str(warm), rewards, dataset["train"], None, args=grpo)
                start = time.perf_counter()
                trainer.train()
                seconds = time.perf_counter() - start
                metrics = evaluate(
                    trainer.model,
                    tokenizer,
                    held_out,
                    ume_reward,
                    ume,
                    corpus,
                    suite,
                    args.eval_generations,
                    seed,
                )
                results["runs"][name] = {
                    "config": config,
                    "seed": seed,
                    "overrides": CONFIGS[config],
                    "max_steps": grpo.max_steps,
                    "seconds": round(seconds, 1),
                    "train_reward": train_reward(trainer.state.log_history),
                    "metrics": metrics,
                }
                print(name, json.dumps(results["runs"][name]), flush=True)
                save(args.results, results)
                del trainer
        save(args.results, results)


if __name__ == "__main__":
    main()
