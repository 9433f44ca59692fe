"""One GRPO step's time, split into generation / reward / policy update, through TRL's own GRPOTrainer.

Random weights at configurable sizes: the policy is a ``Qwen2ForCausalLM`` of a named shape (``tiny``,
``qwen2-0.5b``) or any ``Qwen2Config`` JSON (``--policy-config config.json``); the reward model is a lobster UME
architecture (``UME_tiny`` ... ``UME_large``, lobster's ``FLEXBERT_CONFIG_ARGS``):

    python benchmarks/grpo_step.py                     # CPU: tiny Qwen2, UME_tiny, 16 completions x 32 tokens
    python benchmarks/grpo_step.py --device cuda       # full-profile sizes: Qwen2-0.5B shape, UME_mini masked
                                                       # bf16, 128 completions (16 prompts x 8) x 128 new tokens

How it is timed (CUDA synchronised at each boundary): a ``TrainerCallback`` times each optimizer step
(``on_step_begin`` -> ``on_step_end``); ``trainer._generate`` (prompt tokenisation, ``generate``, decoding) is
wrapped with a timer; so is the reward callable. The policy update is the rest of the step (old/ref log-probs
when needed, loss, backward, optimizer, TRL's bookkeeping). One step generates once (``steps_per_generation``
1). The first ``--warmup-steps`` steps are not reported; the table shows medians of the others.

Random weights write no tags, so every completion would be invalid and the reward would score nothing. The
timed reward therefore scores, in place of each call's completions, as many fresh synthetic completions drawn
from the dataset's distribution (mixed modalities, the dataset's length ranges; ``--unique-fraction`` of them
distinct, as a GRPO group that repeats itself): what the reward costs on a policy that answers in format.
Generation runs with ``min_new_tokens = max_new_tokens`` so every completion has the full length.

``--generation`` runs one step series per generation option (:data:`GENERATION`), side by side:

- ``fp32``: the policy's weights in float32, as TRL loads a policy by default (on CUDA, ``bf16=True`` runs
  its forwards under bf16 autocast, which still reads fp32 weights and casts them every decode step);
- ``bf16``: the policy's weights in bfloat16 (what ``model_init_kwargs: {dtype: bfloat16}`` loads);
- ``bf16-static``: and a static KV cache (``cache_implementation: static``);
- ``bf16-static-compile``: and ``torch.compile`` of the decode step (transformers compiles a static-cache
  ``generate`` on CUDA only; TRL 1.16 turns it off with ``disable_compile=True``, so this benchmark turns it
  back on in the trainer's generation config: not reachable from a recipe);
- ``bf16-gen2x``: ``generation_batch_size`` twice the step's completions: one ``generate`` call for two
  optimizer steps (``steps_per_generation`` 2), per-step figures are per two-step block halved.

``--variants`` runs one step series per reward-engine variant (``before``: the engine as first landed,
``after``: this engine's defaults; see ``benchmarks/reward_throughput.py``), each with a fresh trainer.
Prints a markdown table and the reward's share of the step; writes JSON (default
``benchmarks/results/grpo_step_<device>.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from reward_throughput import VARIANTS, build_ume, make_completions  # noqa: E402

QWEN2_SHAPES = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    # Qwen/Qwen2-0.5B-Instruct's config.json
    "qwen2-0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    },
}
GENERATION = {  # name -> policy weight dtype, GRPOConfig.cache_implementation, compile, generation batches
    "fp32": {"dtype": torch.float32, "cache": None, "compile": False, "factor": 1},
    "bf16": {"dtype": torch.bfloat16, "cache": None, "compile": False, "factor": 1},
    "bf16-static": {"dtype": torch.bfloat16, "cache": "static", "compile": False, "factor": 1},
    "bf16-static-compile": {"dtype": torch.bfloat16, "cache": "static", "compile": True, "factor": 1},
    "bf16-gen2x": {"dtype": torch.bfloat16, "cache": None, "compile": False, "factor": 2},
}
DEFAULTS = {  # per device: policy shape, UME, completions, new tokens, reward dtype
    "cpu": {"policy": "tiny", "ume": "UME_tiny", "completions": 16, "max_new_tokens": 32, "dtype": "fp32"},
    "cuda": {
        "policy": "qwen2-0.5b",
        "ume": "UME_mini",
        "completions": 128,
        "max_new_tokens": 128,
        "dtype": "bf16",
    },
}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class TimedReward:
    """The reward, timed, scoring fresh synthetic completions in place of each call's (see the module doc)."""

    def __init__(self, reward, device: str, unique_fraction: float, seed: int):
        self.reward, self.device = reward, device
        self.unique_fraction, self.seed = unique_fraction, seed
        self.__name__ = reward.__name__
        self.seconds: list[float] = []

    def __call__(self, completions, **kwargs):
        texts, _ = make_completions(len(completions), self.seed + len(self.seconds), self.unique_fraction)
        _sync(self.device)
        start = time.perf_counter()
        out = self.reward(texts, log_metric=kwargs.get("log_metric"))
        _sync(self.device)
        self.seconds.append(time.perf_counter() - start)
        return out


def build_policy(shape: str, config_path: str | None, tokenizer, device: str):
    """A randomly initialised ``Qwen2ForCausalLM`` of ``shape`` (or the config at ``config_path``), on ``device``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if config_path:
        config = Qwen2Config.from_pretrained(config_path)
    else:
        config = Qwen2Config(**{"vocab_size": len(tokenizer), **QWEN2_SHAPES[shape]})
    config.eos_token_id, config.pad_token_id, config.bos_token_id = (
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        None,
    )
    if config.vocab_size < len(tokenizer):
        raise ValueError(f"policy vocab {config.vocab_size} < tokenizer vocab {len(tokenizer)}")
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)  # float32, as TRL loads a policy by default
    return model


def run_variant(args, variant: str, ume, tokenizer, dataset, workdir: Path, generation: str = "fp32") -> dict:
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from ume_rl.rewards.masked_lm import MaskedLMReward

    device = args.device
    gen = GENERATION[generation]
    factor = gen["factor"]
    reward = MaskedLMReward(ume, mode=args.mode, dtype=args.dtype, **VARIANTS[variant])
    timed_reward = TimedReward(reward, device, args.unique_fraction, seed=args.seed)
    steps: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            _sync(device)
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            _sync(device)
            steps.append(time.perf_counter() - self.start)

    config = GRPOConfig(
        output_dir=str(workdir / f"{variant}-{generation}"),
        per_device_train_batch_size=args.completions,
        num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens,
        generation_kwargs={"min_new_tokens": args.max_new_tokens},
        cache_implementation=gen["cache"],
        generation_batch_size=args.completions * factor,
        max_steps=args.steps + args.warmup_steps,
        learning_rate=1e-6,
        beta=0.0,
        gradient_checkpointing=device == "cuda",
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        logging_steps=10**6,
        disable_tqdm=True,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
    )
    policy = build_policy(args.policy, args.policy_config, tokenizer, device).to(gen["dtype"])
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[timed_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepTimer()],
    )
    generation: list[float] = []
    generate = trainer._generate

    def timed_generate(*a, **k):
        _sync(device)
        start = time.perf_counter()
        out = generate(*a, **k)
        _sync(device)
        generation.append(time.perf_counter() - start)
        return out

    trainer._generate = timed_generate
    if gen["compile"]:
        trainer.generation_config.disable_compile = False
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    if args.warmup_reward:
        reward.scorer.warmup()
    trainer.train()
    blocks = (args.steps + args.warmup_steps) // factor
    if not (len(steps) == blocks * factor and len(generation) == len(timed_reward.seconds) == blocks):
        raise RuntimeError(
            f"expected one generation and one reward call per {factor} step(s): {len(steps)} steps, "
            f"{len(generation)} generations, {len(timed_reward.seconds)} reward calls"
        )
    keep = slice(args.warmup_steps // factor, None)  # per block of `factor` steps, then per step
    block_steps = np.array(steps).reshape(blocks, factor).sum(axis=1)
    total, gen_s, rew = (np.array(x[keep]) / factor for x in (block_steps, generation, timed_reward.seconds))
    update = total - gen_s - rew
    row = {
        "generation_option": {k: str(v) for k, v in gen.items()},
        "steps_s": steps,
        "generation_s": generation,
        "reward_s": timed_reward.seconds,
        "total_median_s": float(np.median(total)),
        "generation_median_s": float(np.median(gen_s)),
        "reward_median_s": float(np.median(rew)),
        "update_median_s": float(np.median(update)),
        "reward_share": float(np.median(rew / total)),
        "reward_stats": {k: v for k, v in reward.get_statistics().items() if not isinstance(v, dict)},
    }
    del trainer, policy
    if device == "cuda":
        torch.cuda.empty_cache()
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--policy", default=None, choices=sorted(QWEN2_SHAPES), help="policy shape")
    parser.add_argument("--policy-config", default=None, help="a Qwen2 config.json (overrides --policy)")
    parser.add_argument("--ume", default=None, help="UME architecture: UME_tiny, UME_mini ... UME_large")
    parser.add_argument("--mode", default="masked", choices=["masked", "unmasked", "spaced"])
    parser.add_argument(
        "--generation", default="fp32", help=f"comma-separated generation options among {sorted(GENERATION)}"
    )
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16"], help="reward dtype")
    parser.add_argument("--completions", type=int, default=None, help="completions per step")
    parser.add_argument("--num-generations", type=int, default=8, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--steps", type=int, default=2, help="measured steps")
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument(
        "--variants", default="after", help=f"reward-engine variants among {sorted(VARIANTS)}"
    )
    parser.add_argument("--warmup-reward", action="store_true", help="call the scorer's warmup() first")
    parser.add_argument(
        "--unique-fraction", type=float, default=1.0, help="distinct share of scored completions"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/grpo_step_<device>.json)"
    )
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.device].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [v for v in args.variants.split(",") if v]
    if unknown := [v for v in names if v not in VARIANTS]:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    if args.completions % args.num_generations:
        parser.error("--completions must be a multiple of --num-generations")
    generations = [g for g in args.generation.split(",") if g]
    if unknown := [g for g in generations if g not in GENERATION]:
        parser.error(f"unknown generation options {unknown}; choose from {sorted(GENERATION)}")
    most = max(GENERATION[g]["factor"] for g in generations)
    if args.steps % most or args.warmup_steps % most:
        parser.error(
            f"--steps and --warmup-steps must be multiples of {most} (generation_batch_size options)"
        )
    logging.basicConfig(level=logging.WARNING)
    for name in ("transformers", "trl", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)

    from transformers import AutoTokenizer

    from ume_rl.data.generate import generate_synthetic_dataset
    from ume_rl.models.policy import build_tiny_qwen

    prompts_needed = args.completions // args.num_generations * (args.steps + args.warmup_steps)
    dataset = generate_synthetic_dataset(
        n_per_modality=max(3, prompts_needed), seed=args.seed, progress=False
    )
    ume = build_ume(args.device, args.ume, args.seed)
    results = {}
    report = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "args": vars(args),
        "results": results,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"grpo_step_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = AutoTokenizer.from_pretrained(build_tiny_qwen(Path(tmp) / "tokenizer", seed=args.seed))
        for variant in names:
            for generation in generations:
                key = variant if generations == ["fp32"] else f"{variant}+{generation}"
                results[key] = run_variant(
                    args, variant, ume, tokenizer, dataset["full"], Path(tmp), generation
                )
                r = results[key]
                print(f"  {key}: steps {', '.join(f'{s:.2f}' for s in r['steps_s'])} s", flush=True)
                out.write_text(
                    json.dumps(report, indent=2)
                )  # each row as it comes: a timeout keeps the others

    shape = args.policy_config or args.policy
    print(
        f"\nGRPO step, {args.device}: policy {shape} (random), {args.completions} completions "
        f"({args.completions // args.num_generations} prompts x {args.num_generations}) x {args.max_new_tokens} "
        f"new tokens; reward {args.ume} {args.mode} {args.dtype}; median of {args.steps} steps after "
        f"{args.warmup_steps} warm-up"
    )
    print(
        "| reward engine + generation | step s | generation s | reward s | policy update s | reward share |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for variant, r in results.items():
        print(
            f"| {variant} | {r['total_median_s']:.3f} | {r['generation_median_s']:.3f} | {r['reward_median_s']:.3f} "
            f"| {r['update_median_s']:.3f} | {r['reward_share']:.1%} |"
        )
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
