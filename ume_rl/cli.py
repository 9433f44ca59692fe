"""Command line: ``ume-rl train --config tiny`` (flags override the recipe's values).

``--config`` takes a recipe name (``tiny``, ``full``, ``full-public``: the recipes shipped in ``ume_rl/recipes/``) or the path
of your own YAML; any recipe field (:class:`~ume_rl.training.run.TrainScriptArguments` or ``GRPOConfig``)
can be overridden by a flag. The same command runs unchanged on several GPUs or nodes::

    ume-rl train --config tiny --max_steps 5
    accelerate launch --num_processes 8 -m ume_rl.cli train --config full
    accelerate launch --config_file deepspeed_zero3.yaml -m ume_rl.cli train --config full
    ume-rl train --config full --use_vllm true --vllm_mode colocate   # TRL's own vLLM generation

What a run does is :func:`ume_rl.training.run.run_train`.
"""

from __future__ import annotations

import logging
import sys

from ume_rl.training.run import apply_runtime, recipe_parser, recipe_path, run_train

USAGE = """usage: ume-rl train --config RECIPE [--FIELD VALUE ...]

GRPO training of a policy against the UME reward (or a masked LM per modality). RECIPE: tiny, full or
full-public (the recipes shipped with ume_rl), or the path of your own YAML;
any field of the recipe (script settings or GRPOConfig) can be overridden by a flag.
Run `ume-rl train --help` for every field."""


def parse_train_args(argv: list[str] | None = None):
    """Parse ``ume-rl train`` arguments: ``--config RECIPE`` (a profile name or a YAML path), then flags that
    override it. Returns ``(TrainScriptArguments, UmeGRPOConfig)``."""
    args: list[str] = []
    for arg in sys.argv[1:] if argv is None else argv:
        if arg.startswith("--config="):  # TrlParser reads only the two-word form
            args += ["--config", str(recipe_path(arg.split("=", 1)[1]))]
        elif args and args[-1] == "--config":
            args.append(str(recipe_path(arg)))
        else:
            args.append(arg)
    script, grpo = recipe_parser().parse_args_and_config(args=args)
    apply_runtime(script)
    return script, grpo


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ume-rl`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command != "train":
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_train(*parse_train_args(rest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
