"""Reward throughput: ume_rl's scorer against upstream's recipe, a naive masked loop and the bare forward.

One fixed set of completions (mixed modalities, the synthetic dataset's length ranges), one run, on the
UME_mini architecture (untrained weights, seeded: throughput does not depend on the weights):

    python benchmarks/reward_throughput.py                       # CPU, fp32
    python benchmarks/reward_throughput.py --device cuda --dtype bf16

Rows (completions/s and tokens/s; tokens = true tokens of the scored sequences, CLS/EOS included):

- ``ume_rl unmasked`` / ``ume_rl masked``: :class:`ume_rl.rewards.ume.UmeReward`, the whole reward (parse,
  validate, tokenize, score).
- ``upstream-equivalent``: ``lobster.rl_training.UMERewardFunction`` where it works (unpadded layout);
  where it does not (the padded CPU layout: it returns 0.0 for everything), its exact recipe on the same
  model: per-modality groups inside chunks of 8, padding to ``max_length``, one unmasked forward, decoder
  on every position, mean over non-pad tokens (specials included).
- ``naive masked loop``: one forward per (sequence, position), batch of one, decoder on every position.
- ``bare forward``: the encoder alone over exactly the batches ``ume_rl unmasked`` packs
  (:meth:`ume_rl.rewards.scoring.UmeScorer.encoder_only`, inputs prepared beforehand).
- ``generic unmasked (ESM-2 8M shape)`` / ``generic bare forward``: the same two on the protein completions,
  scored through the generic Hugging Face path (:class:`ume_rl.rewards.hf_scoring.HFMaskedLMScorer`) by an
  untrained ``EsmForMaskedLM`` shaped like ``facebook/esm2_t6_8M_UR50D`` (6 layers, hidden 320, ESM-2's
  vocabulary): the generic path is held to the same overhead target as UME's.

Masked rows cost about mean-length times more, so they run on the first ``--masked-n`` completions
(stratified) and are compared per completion. The methods run round-robin for ``--rounds`` rounds; each
ratio is computed within a round (same load for both methods on a shared machine) and the median of the
per-round ratios is reported (the per-round ratios are printed and saved too); the table shows each
method's median time. Prints a markdown table and the ratios; writes JSON (default
``benchmarks/results/reward_throughput_<device>.json``; use ``--out`` for small trial runs, e.g.
``--n 16 --masked-n 3 --rounds 1 --out /tmp/rt.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from ume_rl.data import random_sequence
from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE
from ume_rl.rewards.tags import wrap
from ume_rl.rewards.ume import UmeReward

TARGETS = {
    "unmasked_vs_upstream": 4.0,
    "unmasked_over_bare_wall": 1.25,
    "masked_vs_naive": 3.0,
    "generic_unmasked_over_bare_wall": 1.25,
}


def make_completions(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` valid tagged completions, modalities interleaved (so any prefix is stratified)."""
    rng = random.Random(seed)
    modalities = [MODALITIES[i % len(MODALITIES)] for i in range(n)]
    return [wrap(random_sequence(m, rng), m) for m in modalities], modalities


def build_ume_mini(device: str, seed: int = 0):
    from lobster.model import UME

    from ume_rl.models import flash_attn_available

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ume = UME(
            model_name="UME_mini", max_length=512, use_flash_attn=device == "cuda" and flash_attn_available()
        )
    ume.freeze()
    return ume.eval().to(device)


def generic_methods(
    ume, completions: list[str], modalities: list[str], device: str, dtype, token_budget, seed=0
):
    """Rows for the generic masked-LM path: an ESM-2-8M-shaped ``EsmForMaskedLM`` scores the protein completions
    (the UME is the reward model of the other modalities, which these completions never reach)."""
    from transformers import EsmConfig, EsmForMaskedLM

    from ume_rl.masked_lms import build_tiny_masked_lm
    from ume_rl.rewards.hf_scoring import MaskedLM

    tokenizer = build_tiny_masked_lm("amino_acid").tokenizer  # ESM-2's vocabulary
    config = EsmConfig(
        vocab_size=len(tokenizer),
        hidden_size=320,
        num_hidden_layers=6,
        num_attention_heads=20,
        intermediate_size=1280,
        max_position_embeddings=1026,
        position_embedding_type="rotary",
        token_dropout=True,
        emb_layer_norm_before=False,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        esm = EsmForMaskedLM(config).eval().requires_grad_(False).to(device)
    models = {
        "amino_acid": MaskedLM(esm, tokenizer, "amino_acid", "ESM-2 8M shape"),
        "SMILES": ume,
        "DNA": ume,
    }
    reward = UmeReward(models, mode="unmasked", token_budget=token_budget, dtype=dtype)
    proteins = [c for c, m in zip(completions, modalities, strict=True) if m == "amino_acid"]
    scorer = reward.scorers["amino_acid"]
    token_ids = scorer.encode(
        [r["sequence"] for r in reward.details(proteins)], ["amino_acid"] * len(proteins)
    )
    n_tok = sum(len(t) for t in token_ids)
    reward(proteins[:3])  # warm-up
    return {
        "generic unmasked (ESM-2 8M shape)": (lambda: reward(proteins), len(proteins), n_tok),
        "generic bare forward": (scorer.encoder_only(token_ids), len(proteins), n_tok),
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


@torch.inference_mode()
def upstream_recipe(ume, completions: list[str], dtype) -> list[float]:
    """Upstream's computation (``UME.compute_pseudo_likelihood`` via ``UMERewardFunction``) on a padded UME."""
    from lobster.constants import Modality
    from lobster.rl_training.reward_functions import extract_tagged_content

    tag_to_modality = {"smiles": Modality.SMILES, "protein": Modality.AMINO_ACID, "dna": Modality.NUCLEOTIDE}
    rewards = [-5.0] * len(completions)
    device = next(ume.parameters()).device
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    )
    for start in range(0, len(completions), 8):
        groups: dict = {}
        for j, completion in enumerate(completions[start : start + 8]):
            tag, content = extract_tagged_content(completion)
            if tag is not None:
                groups.setdefault(tag_to_modality[tag], []).append((start + j, content))
        for modality, items in groups.items():
            encoded = ume.tokenizer_transforms[modality]([content for _, content in items])
            ids = encoded["input_ids"].to(device)
            mask = encoded["attention_mask"].to(device)
            with autocast:
                hidden = ume.model.model(input_ids=ids, attention_mask=mask)
                logits = ume.model.decoder(hidden).float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
            keep = (ids != ume.model.pad_token_id).float()
            values = ((logp * keep).sum(1) / (keep.sum(1) + 1e-8)).tolist()
            for (index, _), value in zip(items, values, strict=True):
                rewards[index] = value / 0.1
    return rewards


def upstream_own(ume, completions: list[str]) -> list[float]:
    from lobster.rl_training.reward_functions import UMERewardFunction

    logging.getLogger("lobster.model._ume").setLevel(logging.CRITICAL)  # it logs a traceback per chunk on CPU
    return UMERewardFunction(ume, enable_wandb_logging=False)(completions)


@torch.inference_mode()
def naive_masked(ume, sequences: list[str], modalities: list[str], dtype) -> list[float]:
    device = next(ume.parameters()).device
    mask_id = ume.model.mask_token_id
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
    )
    scores = []
    for sequence, modality in zip(sequences, modalities, strict=True):
        ids = torch.tensor([ume.get_tokenizer(modality)([sequence])["input_ids"][0]], device=device)
        total = 0.0
        for pos in range(1, ids.shape[1] - 1):
            masked = ids.clone()
            masked[0, pos] = mask_id
            with autocast:
                hidden = ume.model.model(input_ids=masked, attention_mask=torch.ones_like(masked))
                logits = ume.model.decoder(hidden).float()
            total += torch.log_softmax(logits[0, pos], dim=-1)[ids[0, pos]].item()
        scores.append(total / (ids.shape[1] - 2))
    return scores


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--n", type=int, default=256, help="completions in the fixed set")
    parser.add_argument("--masked-n", type=int, default=12, help="completions for the two masked rows")
    parser.add_argument(
        "--rounds",
        "--repeats",
        dest="rounds",
        type=int,
        default=3,
        help="round-robin rounds; ratios are per round, the median is reported",
    )
    parser.add_argument("--token-budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/reward_throughput_<device>.json)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None

    completions, modalities = make_completions(args.n, args.seed)
    ume = build_ume_mini(args.device, args.seed)
    unmasked = UmeReward(ume, mode="unmasked", token_budget=args.token_budget, dtype=dtype)
    masked = UmeReward(ume, mode="masked", token_budget=args.token_budget, dtype=dtype)
    rows = unmasked.details(completions)
    sequences = [r["sequence"] for r in rows]
    token_ids = unmasked.scorer.encode(sequences, modalities)
    tokens = [len(t) for t in token_ids]
    sub = slice(0, args.masked_n)
    n_tok, n_tok_sub = sum(tokens), sum(tokens[sub])

    # warm-up (allocators, kernels, twins) on a few completions
    unmasked(completions[:6])
    masked(completions[:3])
    upstream_recipe(ume, completions[:3], dtype)
    naive_masked(ume, sequences[:1], modalities[:1], dtype)

    layout = unmasked.scorer._layout()
    upstream_distinct = None
    if layout == "varlen":
        upstream_name, upstream_fn = "upstream UMERewardFunction", lambda: upstream_own(ume, completions)
    else:
        own = upstream_own(ume, completions[:16])
        upstream_distinct = len(set(own))  # 1 on the padded layout: it returns 0.0 for everything
        upstream_name = "upstream-equivalent (recipe)"
        upstream_fn = lambda: upstream_recipe(ume, completions, dtype)  # noqa: E731
    methods = {
        "ume_rl unmasked": (lambda: unmasked(completions), args.n, n_tok),
        "bare forward": (unmasked.scorer.encoder_only(token_ids), args.n, n_tok),
        upstream_name: (upstream_fn, args.n, n_tok),
        "ume_rl masked": (lambda: masked(completions[sub]), args.masked_n, n_tok_sub),
        "naive masked loop": (
            lambda: naive_masked(ume, sequences[sub], modalities[sub], dtype),
            args.masked_n,
            n_tok_sub,
        ),
    }
    methods.update(
        generic_methods(ume, completions, modalities, args.device, dtype, args.token_budget, args.seed)
    )
    print(
        f"UME_mini, layout {layout}, device {args.device}, dtype {args.dtype}, {args.n} completions, {n_tok} tokens"
    )
    # Round-robin rounds; ratios within each round (both methods under the same load on a shared machine).
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs = {}
    for round_ in range(args.rounds):
        for name, (fn, _, _) in methods.items():
            seconds, outputs[name] = timed(fn, args.device)
            times[name].append(seconds)
            print(f"  round {round_ + 1}: {name}: {seconds:.2f} s", flush=True)
    results = {}
    for name, (_, n, n_tokens) in methods.items():
        median = float(np.median(times[name]))
        results[name] = {
            "seconds": median,
            "seconds_all": times[name],
            "completions": n,
            "tokens": n_tokens,
            "completions_per_s": n / median,
            "tokens_per_s": n_tokens / median,
        }

    masked_scores = np.array(outputs["ume_rl masked"]) * masked.temperature
    naive_scores = np.array(outputs["naive masked loop"])
    unmasked_sub = np.array(outputs["ume_rl unmasked"][sub]) * unmasked.temperature
    # Per completion: a/b speed = (seconds_b / n_b) / (seconds_a / n_a), within each round.
    per_completion = {name: np.array(times[name]) / n for name, (_, n, _) in methods.items()}
    ratios_per_round = {
        "unmasked_vs_upstream": per_completion[upstream_name] / per_completion["ume_rl unmasked"],
        "unmasked_over_bare_wall": np.array(times["ume_rl unmasked"]) / np.array(times["bare forward"]),
        "masked_vs_naive": per_completion["naive masked loop"] / per_completion["ume_rl masked"],
        "unmasked_vs_masked": per_completion["ume_rl masked"] / per_completion["ume_rl unmasked"],
        "generic_unmasked_over_bare_wall": np.array(times["generic unmasked (ESM-2 8M shape)"])
        / np.array(times["generic bare forward"]),
    }
    ratios = {key: float(np.median(values)) for key, values in ratios_per_round.items()}
    checks = {
        "masked_max_abs_diff_vs_naive": float(np.abs(masked_scores - naive_scores).max()),
        "spearman_masked_vs_unmasked": spearman(masked_scores, unmasked_sub),
        "upstream_own_function_distinct_rewards_of_16": upstream_distinct,
    }
    print("\n| method | completions | seconds | completions/s | tokens/s |\n|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['completions']} | {r['seconds']:.2f} | {r['completions_per_s']:.1f} | {r['tokens_per_s']:.0f} |"
        )
    print()
    for key, value in ratios.items():
        target = TARGETS.get(key)
        ok = (
            "" if target is None else (" (target <= %.2f)" if "over" in key else " (target >= %.1f)") % target
        )
        rounds = ", ".join(f"{v:.2f}" for v in ratios_per_round[key])
        print(f"{key}: {value:.2f} (median of rounds: {rounds}){ok}")
    for key, value in checks.items():
        print(f"{key}: {value}")

    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "layout": layout,
        "model": "UME_mini (untrained, seeded), max_length 512",
        "length_ranges": {m: s.length_range for m, s in MODALITY_TABLE.items()},
        "n": args.n,
        "masked_n": args.masked_n,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "results": results,
        "ratios": ratios,
        "ratios_per_round": {key: values.tolist() for key, values in ratios_per_round.items()},
        "targets": TARGETS,
        "checks": checks,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"reward_throughput_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
