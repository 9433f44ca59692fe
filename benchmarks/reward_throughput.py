"""Reward throughput: ume_rl's scorer against upstream's recipe, a naive masked loop and the bare forward,
on fresh batches (GRPO never scores the same completions twice), beside the same batch repeated.

UME_mini architecture by default (untrained weights, seeded: throughput does not depend on the weights):

    python benchmarks/reward_throughput.py                       # CPU, fp32
    python benchmarks/reward_throughput.py --device cuda --dtype bf16 --masked-n 32 --variants before,after

**Table 1 (fresh rounds).** Each round draws new completions from the same distribution (mixed modalities,
the synthetic dataset's length ranges) and every method scores that round's completions; the ``(repeated)``
rows score the same completions again right after. Rows (completions/s and tokens/s; tokens = true tokens of
the scored sequences, CLS/EOS included):

- ``ume_rl unmasked`` / ``ume_rl masked``: :class:`ume_rl.rewards.masked_lm.MaskedLMReward`, the whole reward (parse,
  validate, tokenize, score), on fresh completions; ``(repeated)``: the same call again.
- ``host side``: the reward's CPU-side work alone (read tags, RDKit, tokenize, plan and pack the batches,
  host-to-device copies), no model: the overhead that matters where the forward is fast (GPU).
- ``upstream-equivalent``: ``lobster.rl_training.UMERewardFunction`` where it works (unpadded layout);
  where it does not (the padded CPU layout: it returns 0.0 for everything), its exact recipe on the same
  model: per-modality groups inside chunks of 8, padding to ``max_length``, one unmasked forward, decoder
  on every position, mean over non-pad tokens (specials included).
- ``naive masked loop``: one forward per (sequence, position), batch of one, decoder on every position.
- ``bare forward``: the encoder alone over exactly the batches ``ume_rl unmasked`` packs
  (:meth:`ume_rl.rewards.engine.ume_scoring.UmeScorer.encoder_only`, inputs prepared beforehand).
- ``generic unmasked (ESM-2 8M shape)`` / ``generic bare forward``: the same two on the round's protein
  completions, scored through the generic Hugging Face path (:class:`ume_rl.rewards.engine.hf_scoring.HFMaskedLMScorer`)
  by an untrained ``EsmForMaskedLM`` shaped like ``facebook/esm2_t6_8M_UR50D`` (6 layers, hidden 320, ESM-2's
  vocabulary): the generic path is held to the same overhead target as UME's.
- ``ume_rl unmasked / masked, pad_shapes on`` (CPU; ``off`` on CUDA): the same reward with the shape ladder in
  the other state than the device's default, so what the ladder costs or saves is a ratio within each round.
- ``ume_rl masked, N% unique, dedup off / on``: masked reward on a batch where only ``--unique-fraction`` of
  the completions are distinct (GRPO groups repeat themselves; notebook 04 measured 0.40 late in training).

Masked rows cost about mean-length times more, so they run on the first ``--masked-n`` completions
(stratified) and are compared per completion. Methods run round-robin for ``--rounds`` rounds; each ratio is
computed within a round (same load for both methods on a shared machine) and the median of the per-round ratios
is reported; the table shows each method's median time.

**Table 2 (``--variants``, engine options before/after).** Per variant and mode, a new ``MaskedLMReward``: its
``warmup()`` (CUDA, when the shape ladder is on), the first call, then ``--variant-rounds`` rounds of one fresh batch
and the same batch again; each variant draws its own batches (so one variant's shapes are not another's
cache). Variants: ``before`` (the engine as first landed: no ladder, PyTorch's SDPA choice, no dedup),
``ladder`` (shape ladder + warm-up, PyTorch's SDPA choice), ``no-cudnn`` (SDPA without cuDNN, no ladder),
``after`` (this engine's defaults for the device). ``before`` runs first: process-wide caches (cuDNN plans)
start cold for it. The speedup against ``before`` is per token (each variant's batches differ in length).
``--profile-dir`` writes a ``torch.profiler`` table of one more fresh call per variant and mode (not timed).

Prints markdown tables and the ratios; writes JSON (default ``benchmarks/results/reward_throughput_<device>.json``;
use ``--out`` for small trial runs, e.g. ``--n 16 --masked-n 3 --rounds 1 --variants "" --out /tmp/rt.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ume_rl.data.generate import random_sequence
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE
from ume_rl.rewards.tags import read_completions, wrap

TARGETS = {
    "unmasked_vs_upstream": 4.0,
    "unmasked_over_bare_wall": 1.25,
    "masked_vs_naive": 3.0,
    "generic_unmasked_over_bare_wall": 1.25,
}
VARIANTS = {
    "before": {"pad_shapes": False, "sdpa": None, "dedup": False},
    "ladder": {"pad_shapes": True, "sdpa": None},
    "no-cudnn": {"pad_shapes": False, "sdpa": "auto"},
    "after": {},
}


def make_completions(n: int, seed: int = 0, unique_fraction: float = 1.0) -> tuple[list[str], list[str]]:
    """``n`` valid tagged completions, modalities interleaved (so any prefix is stratified).

    With ``unique_fraction < 1`` only that fraction is distinct: the rest repeat randomly chosen ones, shuffled.
    """
    rng = random.Random(seed)
    distinct = max(1, round(n * unique_fraction))
    modalities = [MODALITIES[i % len(MODALITIES)] for i in range(distinct)]
    completions = [wrap(random_sequence(m, rng), m) for m in modalities]
    if distinct < n:
        picks = [rng.randrange(distinct) for _ in range(n - distinct)]
        order = list(range(distinct)) + picks
        rng.shuffle(order)
        completions, modalities = [completions[i] for i in order], [modalities[i] for i in order]
    return completions, modalities


def build_ume(device: str, arch: str = "UME_mini", seed: int = 0):
    """An untrained, frozen UME of lobster architecture ``arch`` (``UME_mini`` ... ``UME_large``), seeded."""
    from ume_rl.models.ume import flash_attn_available, lobster_ume_class

    UME = lobster_ume_class()
    if arch == "UME_tiny":
        from ume_rl.models.ume import _register_tiny_arch

        _register_tiny_arch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ume = UME(model_name=arch, max_length=512, use_flash_attn=device == "cuda" and flash_attn_available())
    ume.freeze()
    return ume.eval().to(device)


def build_ume_mini(device: str, seed: int = 0):
    return build_ume(device, "UME_mini", seed)


@dataclass
class Batch:
    """One round's completions and what the baselines need from them."""

    completions: list[str]
    modalities: list[str]
    sequences: list[str]
    token_ids: list[list[int]]

    @classmethod
    def draw(cls, reward: MaskedLMReward, n: int, seed: int, unique_fraction: float = 1.0) -> Batch:
        completions, modalities = make_completions(n, seed, unique_fraction)
        sequences = [t.sequence for t in read_completions(completions)]
        return cls(completions, modalities, sequences, reward.scorer.encode(sequences, modalities))

    def tokens(self, part: slice = slice(None)) -> int:
        return sum(len(t) for t in self.token_ids[part])


def host_side(reward: MaskedLMReward, completions: list[str]) -> None:
    """The reward's CPU-side work without the model: read, validate, tokenize, plan, pack, copy to the device."""
    parsed = [t for t in read_completions(completions, max_chars=reward._max_chars) if t.reason is None]
    token_ids = reward.scorer.encode([t.sequence for t in parsed], [t.modality for t in parsed])
    for _ in reward.scorer._batches(token_ids):
        pass


def build_generic_reward(ume, device: str, dtype, token_budget, seed: int = 0) -> MaskedLMReward:
    """An unmasked reward whose protein model is an untrained ESM-2-8M-shaped ``EsmForMaskedLM`` (the generic
    masked-LM path); the UME scores the other modalities, which the generic rows never send it."""
    from transformers import EsmConfig, EsmForMaskedLM

    from ume_rl.models.masked_lms import build_tiny_masked_lm
    from ume_rl.rewards.engine.hf_scoring import MaskedLM

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
    return MaskedLMReward(models, mode="unmasked", token_budget=token_budget, dtype=dtype)


def generic_rows(reward: MaskedLMReward, batch: Batch) -> dict:
    """Table 1's generic masked-LM rows on ``batch``'s protein completions."""
    proteins = [i for i, m in enumerate(batch.modalities) if m == "amino_acid"]
    completions = [batch.completions[i] for i in proteins]
    scorer = reward.scorers["amino_acid"]
    token_ids = scorer.encode([batch.sequences[i] for i in proteins], ["amino_acid"] * len(proteins))
    n, n_tok = len(proteins), sum(len(t) for t in token_ids)
    return {
        "generic unmasked (ESM-2 8M shape)": (lambda: reward(completions), n, n_tok),
        "generic bare forward": (scorer.encoder_only(token_ids), n, n_tok),
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


def round_methods(ume, rewards: dict, batch: Batch, dup: Batch, upstream_name: str, args, dtype) -> dict:
    """Table 1's rows for one round: ``name -> (function, completions, tokens)``, timed in this order.

    A ``(repeated)`` row follows its fresh row and scores the same completions again. Add rows here.
    """
    sub = slice(0, args.masked_n)
    n, tok, tok_sub = len(batch.completions), batch.tokens(), batch.tokens(sub)
    unique = f"{args.unique_fraction:.0%} unique"
    flipped = f"pad_shapes {'off' if args.device == 'cuda' else 'on'}"  # the other state than the default
    if upstream_name.startswith("upstream UMERewardFunction"):
        upstream = lambda: upstream_own(ume, batch.completions)  # noqa: E731
    else:
        upstream = lambda: upstream_recipe(ume, batch.completions, dtype)  # noqa: E731
    rows = {
        "ume_rl unmasked": (lambda: rewards["unmasked"](batch.completions), n, tok),
        "ume_rl unmasked (repeated)": (lambda: rewards["unmasked"](batch.completions), n, tok),
        f"ume_rl unmasked, {flipped}": (lambda: rewards["unmasked_flipped"](batch.completions), n, tok),
        "bare forward": (rewards["unmasked"].scorer.encoder_only(batch.token_ids), n, tok),
        "host side": (lambda: host_side(rewards["unmasked"], batch.completions), n, tok),
        upstream_name: (upstream, n, tok),
        "ume_rl masked": (lambda: rewards["masked"](batch.completions[sub]), args.masked_n, tok_sub),
        "ume_rl masked (repeated)": (
            lambda: rewards["masked"](batch.completions[sub]),
            args.masked_n,
            tok_sub,
        ),
        f"ume_rl masked, {flipped}": (
            lambda: rewards["masked_flipped"](batch.completions[sub]),
            args.masked_n,
            tok_sub,
        ),
        "naive masked loop": (
            lambda: naive_masked(ume, batch.sequences[sub], batch.modalities[sub], dtype),
            args.masked_n,
            tok_sub,
        ),
        f"ume_rl masked, {unique}, dedup off": (
            lambda: rewards["masked_every"](dup.completions),
            args.masked_n,
            dup.tokens(),
        ),
        f"ume_rl masked, {unique}, dedup on": (
            lambda: rewards["masked"](dup.completions),
            args.masked_n,
            dup.tokens(),
        ),
    }
    rows.update(generic_rows(rewards["generic"], batch))
    return rows


def fresh_rounds(args, ume, dtype) -> dict:
    """Table 1: every method on fresh completions each round, ratios within rounds."""
    options = {"token_budget": args.token_budget, "dtype": dtype}
    rewards = {
        "unmasked": MaskedLMReward(ume, mode="unmasked", **options),
        "masked": MaskedLMReward(ume, mode="masked", **options),
        "masked_every": MaskedLMReward(ume, mode="masked", dedup=False, **options),
    }
    for mode in ("unmasked", "masked"):  # the shape ladder in the other state than the device's default
        rewards[f"{mode}_flipped"] = MaskedLMReward(
            ume, mode=mode, pad_shapes=args.device != "cuda", **options
        )
    # warm-up (allocators, kernels, twins) on a few completions of the seed's own batch
    warm = Batch.draw(rewards["unmasked"], 6, args.seed)
    rewards["unmasked"](warm.completions)
    rewards["masked"](warm.completions[:3])
    rewards["masked_every"](warm.completions[:3])
    rewards["generic"] = build_generic_reward(ume, args.device, dtype, args.token_budget, args.seed)
    rewards["generic"](
        [c for c, m in zip(warm.completions, warm.modalities, strict=True) if m == "amino_acid"]
    )
    rewards["unmasked_flipped"](warm.completions)
    rewards["masked_flipped"](warm.completions[:3])
    upstream_recipe(ume, warm.completions[:3], dtype)
    naive_masked(ume, warm.sequences[:1], warm.modalities[:1], dtype)

    layout = rewards["unmasked"].scorer._layout()
    upstream_distinct = None
    if layout == "varlen":
        upstream_name = "upstream UMERewardFunction"
    else:
        upstream_distinct = len(set(upstream_own(ume, warm.completions[:6])))  # 1: it returns 0.0 for all
        upstream_name = "upstream-equivalent (recipe)"
    times: dict[str, list[float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    masked_diffs, spearmans, tokens = [], [], []
    for round_ in range(args.rounds):
        batch = Batch.draw(rewards["unmasked"], args.n, args.seed + 1 + round_)
        dup = Batch.draw(rewards["unmasked"], args.masked_n, args.seed + 101 + round_, args.unique_fraction)
        tokens.append(batch.tokens())
        outputs = {}
        for name, (fn, n, n_tokens) in round_methods(
            ume, rewards, batch, dup, upstream_name, args, dtype
        ).items():
            seconds, outputs[name] = timed(fn, args.device)
            times.setdefault(name, []).append(seconds)
            sizes[name] = (n, n_tokens)
            print(f"  round {round_ + 1}: {name}: {seconds:.3f} s", flush=True)
        masked_scores = np.array(outputs["ume_rl masked"]) * rewards["masked"].temperature
        naive_scores = np.array(outputs["naive masked loop"])
        masked_diffs.append(float(np.abs(masked_scores - naive_scores).max()))
        unmasked_sub = np.array(outputs["ume_rl unmasked"][: args.masked_n]) * rewards["unmasked"].temperature
        spearmans.append(spearman(masked_scores, unmasked_sub))
        unique = [k for k in outputs if k.endswith("dedup on")][0]
        every = unique.replace("dedup on", "dedup off")
        if not np.allclose(outputs[unique], outputs[every], atol=1e-3):
            raise RuntimeError("dedup changed the rewards")

    results = {}
    for name, seconds in times.items():
        median, (n, n_tokens) = float(np.median(seconds)), sizes[name]
        results[name] = {
            "seconds": median,
            "seconds_all": seconds,
            "completions": n,
            "tokens": n_tokens,
            "completions_per_s": n / median,
            "tokens_per_s": n_tokens / median,
        }
    t = {name: np.array(seconds) for name, seconds in times.items()}
    per_completion = {name: t[name] / sizes[name][0] for name in t}
    dedup_on = [k for k in t if k.endswith("dedup on")][0]
    ratios_per_round = {
        "unmasked_vs_upstream": per_completion[upstream_name] / per_completion["ume_rl unmasked"],
        "unmasked_over_bare_wall": t["ume_rl unmasked"] / t["bare forward"],
        "masked_vs_naive": per_completion["naive masked loop"] / per_completion["ume_rl masked"],
        "unmasked_vs_masked": per_completion["ume_rl masked"] / per_completion["ume_rl unmasked"],
        "unmasked_fresh_over_repeated": t["ume_rl unmasked"] / t["ume_rl unmasked (repeated)"],
        "masked_fresh_over_repeated": t["ume_rl masked"] / t["ume_rl masked (repeated)"],
        "dedup_saving": t[dedup_on.replace("dedup on", "dedup off")] / t[dedup_on],
        **{
            f"pad_shapes_on_over_off_{mode}": (
                t[flip] / t[plain] if args.device != "cuda" else t[plain] / t[flip]
            )
            for mode, plain, flip in (
                (m, f"ume_rl {m}", next(k for k in t if k.startswith(f"ume_rl {m}, pad_shapes")))
                for m in ("unmasked", "masked")
            )
        },
        "overhead_ms_per_completion": 1e3 * (t["ume_rl unmasked"] - t["bare forward"]) / args.n,
        "host_ms_per_completion": 1e3 * t["host side"] / args.n,
        "generic_unmasked_over_bare_wall": t["generic unmasked (ESM-2 8M shape)"] / t["generic bare forward"],
    }
    ratios = {key: float(np.median(values)) for key, values in ratios_per_round.items()}
    checks = {
        "masked_max_abs_diff_vs_naive": max(masked_diffs),
        "spearman_masked_vs_unmasked": float(np.median(spearmans)),
        "upstream_own_function_distinct_rewards_of_6": upstream_distinct,
    }
    print(
        f"\nTable 1: fresh completions every round ({args.rounds} rounds, {args.n} completions, "
        f"median {int(np.median(tokens))} tokens), layout {layout}"
    )
    print("| method | completions | seconds | completions/s | tokens/s |\n|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['completions']} | {r['seconds']:.3f} | {r['completions_per_s']:.1f} | {r['tokens_per_s']:.0f} |"
        )
    print()
    for key, value in ratios.items():
        target = TARGETS.get(key)
        ok = (
            "" if target is None else (" (target <= %.2f)" if "over" in key else " (target >= %.1f)") % target
        )
        rounds = ", ".join(f"{v:.2f}" for v in ratios_per_round[key])
        print(f"{key}: {value:.3f} (median of rounds: {rounds}){ok}")
    for key, value in checks.items():
        print(f"{key}: {value}")
    return {
        "layout": layout,
        "tokens_per_round": tokens,
        "results": results,
        "ratios": ratios,
        "ratios_per_round": {key: values.tolist() for key, values in ratios_per_round.items()},
        "checks": checks,
        "scorer_stats": {
            name: {m: dict(s.stats) for m, s in r.scorers.items()} for name, r in rewards.items()
        },
    }


def _profile(fn, device: str, path: Path) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        _sync(device)
    averages = prof.key_averages()
    text = averages.table(sort_by="self_cpu_time_total", row_limit=20)
    if device == "cuda":
        text += "\n" + averages.table(sort_by="self_cuda_time_total", row_limit=15)
    path.write_text(text)
    return text


def one_variant(args, ume, dtype, name: str, mode: str, seed: int) -> dict:
    """Table 2's row for one variant and mode (a new ``MaskedLMReward``; batches drawn from ``seed``)."""
    n = args.variant_n if mode == "unmasked" else args.variant_masked_n
    options = {"token_budget": args.token_budget, "dtype": dtype, **VARIANTS[name]}
    if mode == "spaced":
        options["masks_per_row"] = args.masks_per_row
    reward = MaskedLMReward(ume, mode=mode, **options)
    drawn = [Batch.draw(reward, n, seed + r) for r in range(args.variant_rounds + 2)]
    batches, tokens = [b.completions for b in drawn], [b.tokens() for b in drawn]
    # warm-up on CUDA only: a CPU has no per-shape cost to pay ahead (and the ladder's forwards take minutes)
    warmup_s, forwards = timed(reward.scorer.warmup, args.device) if args.device == "cuda" else (0.0, 0)
    first_s, _ = timed(lambda: reward(batches[0]), args.device)
    fresh, repeated = [], []
    for completions in batches[1:-1]:
        fresh.append(timed(lambda: reward(completions), args.device)[0])  # noqa: B023
        repeated.append(timed(lambda: reward(completions), args.device)[0])  # noqa: B023
    stats = reward.scorer.stats
    row = {
        "completions": n,
        "options": {k: v for k, v in options.items() if k != "dtype"},
        "pad_shapes": reward.scorer._ladder(torch.device(args.device), reward.scorer._layout()) is not None,
        "warmup_s": warmup_s if forwards else 0.0,
        "warmup_forwards": forwards,
        "first_s": first_s,
        "fresh_s": fresh,
        "repeated_s": repeated,
        "fresh_median_s": float(np.median(fresh)),
        "repeated_median_s": float(np.median(repeated)),
        "fresh_over_repeated": float(np.median(np.array(fresh) / np.array(repeated))),
        "fresh_tokens": tokens[1:-1],
        "fresh_ms_per_1k_tokens": float(np.median(1e6 * np.array(fresh) / np.array(tokens[1:-1]))),
        "padded_over_true_tokens": stats["padded_tokens"] / max(stats["tokens"], 1),
    }
    print(
        f"  {name} {mode}: warm-up {row['warmup_s']:.2f} s ({forwards} forwards), first {first_s:.3f} s, "
        f"fresh {', '.join(f'{x:.3f}' for x in fresh)}, repeated {', '.join(f'{x:.3f}' for x in repeated)}",
        flush=True,
    )
    if args.profile_dir:
        path = Path(args.profile_dir) / f"profile_{name}_{mode}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _profile(lambda: reward(batches[-1]), args.device, path)
        print("\n".join(text.splitlines()[:14]))
    return row


def variant_rounds(args, ume, dtype, names: list[str]) -> dict:
    """Table 2: engine options per variant and mode: warm-up, first call, fresh vs repeated per round."""
    out: dict = {}
    for v, name in enumerate(names):
        for mode in args.modes:
            seed = (
                args.seed + 1000 * (v + 1) + (500 if mode != "unmasked" else 0)
            )  # masked, spaced: same batches
            out.setdefault(name, {})[mode] = one_variant(args, ume, dtype, name, mode, seed)
    print(
        "\nTable 2: engine options, fresh batches vs the same batch again\n"
        "| variant | mode | completions | warm-up s | first call s | fresh s (median) | repeated s (median) "
        "| fresh / repeated | fresh ms / 1k tokens | padded / true tokens |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, modes in out.items():
        for mode, r in modes.items():
            print(
                f"| {name} | {mode} | {r['completions']} | {r['warmup_s']:.2f} | {r['first_s']:.3f} | "
                f"{r['fresh_median_s']:.3f} | {r['repeated_median_s']:.3f} | {r['fresh_over_repeated']:.2f} | "
                f"{r['fresh_ms_per_1k_tokens']:.1f} | {r['padded_over_true_tokens']:.2f} |"
            )
    for name, modes in out.items():
        if "masked" in modes and "spaced" in modes:  # same batches (same seed)
            ratio = modes["masked"]["fresh_median_s"] / modes["spaced"]["fresh_median_s"]
            modes["spaced"]["speedup_vs_masked"] = ratio
            print(f"{name}: spaced (k={args.masks_per_row}) vs masked, fresh batches: {ratio:.2f}x faster")
    if "before" in out:
        for name in out:
            for mode in out[name]:
                # per token: each variant draws its own batches, whose lengths differ
                speedup = (
                    out["before"][mode]["fresh_ms_per_1k_tokens"] / out[name][mode]["fresh_ms_per_1k_tokens"]
                )
                out[name][mode]["fresh_speedup_vs_before"] = speedup
                if name != "before":
                    print(f"{name} vs before, {mode}, fresh batches, time per token: {speedup:.2f}x")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--arch", default="UME_mini", help="lobster architecture: UME_mini ... UME_large")
    parser.add_argument("--n", type=int, default=256, help="completions per round (unmasked rows)")
    parser.add_argument("--masked-n", type=int, default=12, help="completions for the masked rows")
    parser.add_argument(
        "--rounds",
        "--repeats",
        dest="rounds",
        type=int,
        default=3,
        help="round-robin rounds of table 1; ratios are per round, the median is reported (0: skip table 1)",
    )
    parser.add_argument("--unique-fraction", type=float, default=0.4, help="distinct share of the dedup rows")
    parser.add_argument(
        "--variants",
        default="before,ladder,after",
        help=f"comma-separated table-2 variants among {sorted(VARIANTS)} ('' to skip table 2)",
    )
    parser.add_argument(
        "--variant-n", type=int, default=None, help="table 2 unmasked completions (default --n)"
    )
    parser.add_argument(
        "--variant-masked-n", type=int, default=None, help="table 2 masked completions (default --masked-n)"
    )
    parser.add_argument("--variant-rounds", type=int, default=3)
    parser.add_argument(
        "--modes",
        default="unmasked,masked",
        help="table 2 modes among unmasked, masked, spaced (comma-separated)",
    )
    parser.add_argument("--masks-per-row", type=int, default=3, help="k of the spaced mode")
    parser.add_argument(
        "--profile-dir", default=None, help="write a torch.profiler table per variant and mode"
    )
    parser.add_argument("--token-budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/reward_throughput_<device>.json)"
    )
    args = parser.parse_args(argv)
    args.variant_n = args.variant_n or args.n
    args.variant_masked_n = args.variant_masked_n or args.masked_n
    args.modes = [m for m in args.modes.split(",") if m]
    if bad := [m for m in args.modes if m not in ("unmasked", "masked", "spaced")]:
        parser.error(f"unknown modes {bad}; choose from unmasked, masked, spaced")
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    logging.basicConfig(level=logging.WARNING)
    dtype = torch.bfloat16 if args.dtype == "bf16" else None

    ume = build_ume(args.device, args.arch, args.seed)
    print(f"{args.arch}, device {args.device}, dtype {args.dtype}, torch {torch.__version__}")
    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "model": f"{args.arch} (untrained, seeded), max_length 512",
        "length_ranges": {m: s.length_range for m, s in MODALITY_TABLE.items()},
        "n": args.n,
        "masked_n": args.masked_n,
        "rounds": args.rounds,
        "unique_fraction": args.unique_fraction,
        "torch": torch.__version__,
        "targets": TARGETS,
    }
    if args.rounds:
        report.update(fresh_rounds(args, ume, dtype))
    if names:
        report["variants"] = variant_rounds(args, ume, dtype, names)
    out = Path(args.out or Path(__file__).parent / "results" / f"reward_throughput_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
