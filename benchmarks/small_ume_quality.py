"""What a training budget buys the demo's reward model: train it with some settings, measure it on held-out data.

Each ``--run NAME key=value ...`` trains :func:`ume_rl.models.small_ume.train_small_ume` with those
:class:`~ume_rl.models.small_ume.SmallUmeConfig` fields changed (the rest are the ``demo`` defaults), or with
``arch=esm`` the small ESM-style models (:func:`ume_rl.models.small_esm.train_small_esm`, fields of
:class:`~ume_rl.models.small_esm.SmallEsmConfig`, the ``demo-esm`` defaults otherwise), then runs
:func:`ume_rl.inspection.quality.reward_quality` twice: on held-out windows and molecules of the training
sources (``heldout``) and on the sources held out whole (``out_of_source``: another organism, another ChEMBL
set). Per split and modality: the PLL against the unigram and context baselines (fitted on the same train
split), and the AUROC of real sequences against each decoy. Runs are sequential, each on one torch thread, so
their training seconds compare on one machine:

    python benchmarks/small_ume_quality.py                                      # the demo default only
    python benchmarks/small_ume_quality.py --run default \\
        --run steps2400_equal steps=2400 "token_shares=(1.0,1.0,1.0)" \\
        --run protein3x "token_shares=(1.5,3.0,1.0)" steps=3600
    python benchmarks/small_ume_quality.py --run esm arch=esm --run esm_2x arch=esm steps=6800
    python benchmarks/small_ume_quality.py --run esm arch=esm --n SMILES=400 DNA=300   # a larger sample

Prints one table per run and a summary (training seconds, in-source and out-of-source AUROC, the out-of-source
targets); writes JSON (default ``benchmarks/results/small_ume_quality.json``) with every table. Each run takes
its training time plus a few minutes of scoring. Checkpoints go to a temporary directory unless ``--keep DIR``;
a checkpoint already in ``DIR/NAME`` trained with the same settings (and corpus) is measured again, not retrained
(its training seconds are the sidecar's).
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import platform
import tempfile
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import torch

ARCHS = ("ume", "esm")


def parse_run(items: list[str]) -> tuple[str, str, dict]:
    """``["name", "arch=esm", "steps=3600", "token_shares=(2.0,1.0,1.0)"]`` -> ``("name", "esm", {"steps": 3600,
    ...})``; ``arch`` defaults to ``ume`` (fields of ``SmallUmeConfig``; ``esm``: of ``SmallEsmConfig``)."""
    from ume_rl.models.small_esm import SmallEsmConfig
    from ume_rl.models.small_ume import SmallUmeConfig

    name, *pairs = items
    arch = "ume"
    for pair in pairs:
        if pair.startswith("arch="):
            arch = pair.removeprefix("arch=")
    if arch not in ARCHS:
        raise SystemExit(f"--run {name}: arch must be one of {ARCHS}, got {arch!r}")
    config_class = SmallUmeConfig if arch == "ume" else SmallEsmConfig
    fields = set(config_class.__dataclass_fields__)
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if key == "arch":
            continue
        if not sep or key not in fields:
            raise SystemExit(
                f"--run {name}: {pair!r} is not FIELD=VALUE with a {config_class.__name__} field ({sorted(fields)})"
            )
        overrides[key] = ast.literal_eval(value)
    return name, arch, overrides


def parse_sizes(items: list[str]) -> dict[str, int]:
    """``["SMILES=400", "DNA=300"]`` -> every modality's sample size (``quality.DEFAULT_N`` where not given)."""
    from ume_rl.inspection.quality import DEFAULT_N
    from ume_rl.rewards.modalities import normalize_modality

    sizes = dict(DEFAULT_N)
    for item in items:
        name, _, value = item.partition("=")
        try:
            sizes[normalize_modality(name)] = int(value)
        except ValueError as err:
            raise SystemExit(f"--n {item!r}: expected MODALITY=N with N an integer ({err})") from err
    return sizes


def trained_models(root: Path, name: str, arch: str, overrides: dict, corpus):
    """Train (or find, trained with the same settings, in ``root/name``) one run's models; return (reward
    models for ``reward_quality``, config, training seconds)."""
    from ume_rl.models import small_esm, small_ume
    from ume_rl.models.masked_lms import load_reward_model
    from ume_rl.models.ume import load_ume
    from ume_rl.rewards.modalities import MODALITIES

    folder = root / name
    if arch == "esm":
        config = replace(small_esm.SmallEsmConfig(), **overrides)
        if small_esm.esm_problem(folder, config, corpus) is not None:
            small_esm.train_small_esm(folder, corpus, config)
        runs = json.loads((folder / small_esm.SIDECAR_NAME).read_text())["runs"]
        models = {m: load_reward_model(folder / m, m, device="cpu") for m in MODALITIES}
        return models, config, sum(run["seconds"] for run in runs.values())
    config = replace(small_ume.SmallUmeConfig(), **overrides)
    if small_ume.checkpoint_problem(folder, config, corpus) is not None:
        small_ume.train_small_ume(folder, corpus, config, progress=False)
    seconds = json.loads((folder / small_ume.SIDECAR_NAME).read_text())["seconds"]
    return load_ume(folder / small_ume.CHECKPOINT_NAME, device="cpu"), config, seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs="+", action="append", metavar=("NAME", "FIELD=VALUE"), default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the checkpoints under this directory")
    parser.add_argument(
        "--n",
        nargs="+",
        default=None,
        metavar="MODALITY=N",
        help="sequences per modality and split (e.g. SMILES=400 DNA=300; the rest keep quality.DEFAULT_N): a larger "
        "sample narrows each AUROC at the cost of scoring time",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "small_ume_quality.json"
    )
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    from ume_rl.data.corpus import load_real_corpus
    from ume_rl.inspection.quality import out_of_source_targets, reward_quality_by_split, side_by_side

    runs = [parse_run(items) for items in (args.run or [["default"]])]
    sizes = parse_sizes(args.n or [])
    corpus = load_real_corpus(progress=False)
    root = args.keep or Path(tempfile.mkdtemp(prefix="small_ume_quality_"))
    report = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        "threads": 1,
        "n": sizes,
        "runs": [],
    }
    for name, arch, overrides in runs:
        models, config, seconds = trained_models(root, name, arch, overrides, corpus)
        qualities = reward_quality_by_split(models, corpus, n=sizes, progress=False)
        print(f"\n## {name} ({arch}): {overrides or 'defaults'} - trained in {seconds:.0f} s")
        print(side_by_side(qualities).round(3).to_string(index=False))
        loso = out_of_source_targets(qualities["out_of_source"])
        print(loso.round(3).to_string(index=False))
        for quality in qualities.values():
            print(quality.summary())
        report["runs"].append(
            {
                "name": name,
                "arch": arch,
                "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
                "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
                "train_seconds": round(seconds, 1),
                **{
                    f"{split}": {
                        "pll": q.pll.to_dict("records"),
                        "auroc": q.auroc.to_dict("records"),
                        "targets": q.targets().to_dict("records"),
                    }
                    for split, q in qualities.items()
                },
                "out_of_source_targets": loso.to_dict("records"),
            }
        )
    print(
        "\n| run | train s | SMILES vs mutated_20pct in / out (context out) | DNA vs shuffled in / out (context out) "
        "| protein vs shuffled in / out (context out) | out-of-source targets met |"
    )
    print("|---|---|---|---|---|---|")
    for run in report["runs"]:
        cells = []
        for modality, decoy in (
            ("SMILES", "mutated_20pct"),
            ("nucleotide", "shuffled"),
            ("amino_acid", "shuffled"),
        ):
            pick = {
                split: next(
                    r for r in run[split]["auroc"] if (r["modality"], r["decoy"]) == (modality, decoy)
                )
                for split in ("heldout", "out_of_source")
            }
            cells.append(
                f"{pick['heldout']['ume']:.3f} / {pick['out_of_source']['ume']:.3f} "
                f"({pick['out_of_source']['context']:.3f})"
            )
        met = sum(t["met"] for t in run["out_of_source_targets"])
        print(f"| {run['name']} | {run['train_seconds']:.0f} | {' | '.join(cells)} | {met}/3 |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
