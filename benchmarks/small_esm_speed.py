"""What the small ESM-style models' CPU training choices buy: non-pad tokens trained per second.

Trains one modality's model of :class:`~ume_rl.models.small_esm.SmallEsmConfig` for ``--steps`` steps under three
settings, in turn, ``--rounds`` times (fresh weights, the same seed and batches each time):

- ``plain``: ``EsmForMaskedLM``'s own forward with SDPA attention, batches cut from pools of 256 examples;
- ``fast step``: the plain attention product and the LM head on the picked tokens only (``fast_cpu_step``);
- ``default``: the fast step, batches cut from pools of ``pack_pool`` (4,096) examples, so less padding.

Prints each round's tokens per second and the ratio of each setting's median to ``plain``'s (above 1 is faster),
and writes them as JSON (``--out``, default ``benchmarks/results/small_esm_speed.json``):

    python benchmarks/small_esm_speed.py                      # SMILES, 150 steps, 3 rounds, 2 threads (~2 min)
    python benchmarks/small_esm_speed.py --modality DNA --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import torch


def settings(config) -> dict:
    """The three settings compared, by name."""
    return {
        "plain": replace(config, pack_pool=256, fast_cpu_step=False),
        "fast step": replace(config, pack_pool=256),
        "default": config,
    }


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--modality", default="SMILES")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "small_esm_speed.json"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.models import small_esm
    from ume_rl.rewards.modalities import MODALITIES, normalize_modality

    modality = normalize_modality(args.modality)
    sequences = load_real_corpus(progress=False).sequences(modality, "train")
    equal = (1.0,) * len(MODALITIES)  # each modality gets `steps`; only one is trained
    base = replace(small_esm.SmallEsmConfig(), steps=len(MODALITIES) * args.steps, token_shares=equal)
    assert base.steps_of(modality) == args.steps
    configs = settings(base)
    rates: dict[str, list[float]] = {name: [] for name in configs}
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for round_ in range(args.rounds):
                for name, config in configs.items():
                    run = small_esm.train_modality(modality, sequences, config, Path(scratch) / name, 0)
                    rates[name].append(run["tokens"] / run["seconds"])
                    print(
                        f"round {round_}: {name:9s} {run['tokens']:7d} tokens in {run['seconds']:5.1f} s = "
                        f"{rates[name][-1]:6.0f} tokens/s",
                        flush=True,
                    )
    finally:
        torch.set_num_threads(before)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratios = {name: medians[name] / medians["plain"] for name in medians}
    for name, ratio in ratios.items():
        print(f"{name:9s} median {medians[name]:6.0f} tokens/s: {ratio:.2f}x plain")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "modality": modality,
                "steps": args.steps,
                "threads": args.threads,
                "tokens_per_second": rates,
                "ratio_of_medians_to_plain": ratios,
            },
            indent=2,
        )
        + "\n"
    )
    return ratios


if __name__ == "__main__":
    main()
