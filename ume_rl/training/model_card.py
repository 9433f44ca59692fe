"""The model card of a finished run: ``output_dir/README.md`` says what was trained, against what, and how well.

TRL's trainer writes a generic card at each checkpoint ("a fine-tuned version of [None]"); at the end of a run
:func:`write_model_card` replaces it with one that names the base policy, the reward models per modality, the
recipe (its file, rewards and weights, the GRPO settings that define the run) and the held-out result table:

>>> write_model_card(run, table)  # doctest: +SKIP
PosixPath('runs/grpo-demo/README.md')

:func:`model_card` returns the same text without writing it.
"""

from __future__ import annotations

import math
from pathlib import Path

from ume_rl.profiles import dataset_dir

CARD_NAME = "README.md"
# GRPO settings a reader needs to reproduce the run (TRL's GRPOConfig names)
GRPO_SETTINGS = (
    "max_steps",
    "learning_rate",
    "per_device_train_batch_size",
    "num_generations",
    "max_completion_length",
    "temperature",
    "beta",
    "loss_type",
    "multi_objective_aggregation",
    "seed",
)


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(table) -> str:
    """A pandas ``DataFrame`` as a Markdown table (index first), floats to 3 decimals, NaN empty.

    >>> import pandas as pd
    >>> print(markdown_table(pd.DataFrame({"n": [30], "reward": [1.23456]}, index=pd.Index(["dna"], name="modality"))))
    | modality | n | reward |
    |---|---|---|
    | dna | 30 | 1.235 |
    """
    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(
        index=True, name=None
    ):  # keeps each column's type (iterrows makes ints floats)
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def model_card(run, table=None) -> str:
    """The card's Markdown for ``run`` (a :class:`~ume_rl.training.run.TrainRun`) and its held-out
    evaluation ``table`` (``None``: the card says there is none)."""
    script, grpo = run.script, run.grpo
    models = script.reward_model_names()
    weights = grpo.reward_weights or [1.0] * len(script.reward_funcs)
    rewards = ", ".join(
        f"`{name}` × {weight:g}" for name, weight in zip(script.reward_funcs, weights, strict=True)
    )
    settings = "\n".join(
        f"- `{name}`: {getattr(grpo, name)!r}" for name in GRPO_SETTINGS if hasattr(grpo, name)
    )
    reward_settings = "\n".join(
        f"- `{name}`: " + ", ".join(f"`{k}`={v!r}" for k, v in values.items())
        for name, values in script.reward_settings().items()
        if values and name in script.reward_funcs
    )
    result = (
        "Held-out prompts (validation + test splits), completions sampled as in training, scored by the run's UME "
        f"reward (`evaluation.csv`):\n\n{markdown_table(table)}"
        if table is not None
        else "No held-out evaluation was run (`eval_generations` 0, or no `ume` reward)."
    )
    return f"""---
library_name: transformers
tags: [ume_rl, grpo, trl]
---

# {Path(grpo.output_dir).name}

A policy trained with GRPO (TRL's `GRPOTrainer`, via `ume_rl`) to write SMILES, protein and DNA sequences between
tags, rewarded by their pseudo-log-likelihood under a masked language model.

- **Base policy**: `{run.base_policy}`
- **Reward models**: {", ".join(f"{modality}: `{name}`" for modality, name in models.items())}
- **Recipe**: `{Path(script.recipe).name if script.recipe else "none (built in code)"}` with the settings below
- **Rewards and weights**: {rewards}
- **Reward settings**:
{reward_settings or "- defaults"}
- **Dataset**: `{script.dataset_dir or dataset_dir(script.references)}`

## GRPO settings

{settings}

## Result

{result}

Reproduce: `ume-rl train --config {script.recipe or "<recipe>"} --output_dir <dir>` with the settings above.
"""


def write_model_card(run, table=None) -> Path:
    """Write :func:`model_card` to ``output_dir/README.md`` (replacing TRL's generic card); returns its path."""
    path = Path(run.grpo.output_dir) / CARD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_card(run, table))
    return path
