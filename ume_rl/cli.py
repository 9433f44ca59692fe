"""Command line: ``ume-rl train --config tiny`` (flags override the recipe's values).

``--config`` takes a recipe name (``tiny``, ``demo``, ``full``, ``full-public``: the recipes shipped in ``ume_rl/recipes/``) or the path
of your own YAML; any recipe field (:class:`~ume_rl.training.recipes.TrainScriptArguments` or ``GRPOConfig``)
can be overridden by a flag. The same command runs unchanged on several GPUs or nodes::

    ume-rl train --config tiny --max_steps 5
    accelerate launch --num_processes 8 -m ume_rl.cli train --config full
    accelerate launch --config_file deepspeed_zero3.yaml -m ume_rl.cli train --config full
    ume-rl train --config full --use_vllm true --vllm_mode colocate   # TRL's own vLLM generation

Without ``--config`` the active profile's recipe is used (and logged). Every value is checked before anything
is loaded or written: a bad one is a one-line error (exit code 2). A run never clobbers another: an output
directory that holds a run needs ``--resume_from_checkpoint last`` or ``--overwrite_output_dir``, a
directory another run is using is refused at once, and a resume with settings that change the experiment is
refused with what differs (exit code 2 too). A missing or damaged dataset, model or cache is found before the
output directory is written: one line with the path and the fix (exit code 2), and the same command can simply
be run again. Ctrl-C ends with one line saying how to continue (exit code 130).

What a run does is :func:`ume_rl.training.run.run_train`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ume_rl.profiles import PROFILES
from ume_rl.training.recipes import DESCRIPTION, USAGE, parse_config
from ume_rl.training.run import run_train
from ume_rl.training.rundir import RUN_MARKER, RunDirectoryError, RunStartError
from ume_rl.training.validation import ConfigError

HELP = f"""usage: {USAGE}

{DESCRIPTION}

Run `ume-rl train --help` for every field."""


def parse_train_args(argv: list[str] | None = None):
    """Parse ``ume-rl train`` arguments: ``--config RECIPE`` (a recipe name or a YAML path; default the active
    profile's recipe), then flags that override it. Returns ``(TrainScriptArguments, UmeGRPOConfig)``, checked.

    Raises:
        ConfigError: a bad value, as one line naming the field, its value, its source and the fix.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    recipe, rest = None, []
    i = 0
    while i < len(args):
        if args[i].startswith("--config="):
            recipe = args[i].split("=", 1)[1]
        elif args[i] == "--config":
            if i + 1 >= len(args):
                raise ConfigError(
                    f"--config needs a value: a recipe name ({', '.join(PROFILES)}) or a recipe YAML path"
                )
            recipe = args[i + 1]
            i += 1
        else:
            rest.append(args[i])
        i += 1
    return parse_config(recipe, rest)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ume-rl`` console script.

    Returns 0 on success; 2, with one line on stderr, when the run is refused before it starts (a bad value, an
    output directory that holds a run or that another run is using): nothing has been loaded or written.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command != "train":
        print(f"unknown command {command!r}\n\n{HELP}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        script, grpo = parse_train_args(rest)
    except (ConfigError, FileNotFoundError) as err:  # FileNotFoundError: an unknown recipe
        print(f"ume-rl train: error: {err}", file=sys.stderr)
        return 2
    try:
        run_train(script, grpo)
    except (RunDirectoryError, RunStartError) as err:  # found before the output directory was written
        print(f"ume-rl train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ume-rl train: {interrupted_hint(grpo.output_dir, rest)}", file=sys.stderr)
        return 130
    return 0


def interrupted_hint(output_dir, argv: list[str]) -> str:
    """The line Ctrl-C ends with: how to continue the run in ``output_dir`` (``argv``: the train flags)."""
    if not (Path(output_dir) / RUN_MARKER).is_file():
        return f"interrupted before the run started; nothing was written to {output_dir}: run the same command again"
    flags, skip = [], False
    for arg in argv:  # a resume must not clear the run: drop --overwrite_output_dir [value]
        if skip and arg.lower() in ("true", "false", "1", "0", "yes", "no"):
            skip = False
            continue
        skip = arg == "--overwrite_output_dir"
        if not (skip or arg.startswith("--overwrite_output_dir=")):
            flags.append(arg)
    resume = [] if "--resume_from_checkpoint" in flags else ["--resume_from_checkpoint", "last"]
    command = " ".join(["ume-rl", "train", *flags, *resume])
    return f"interrupted; {output_dir} keeps its checkpoints and warm start. Continue it with: {command}"


if __name__ == "__main__":
    sys.exit(main())
