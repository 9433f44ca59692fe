"""Does the reward carry signal? Held-out real sequences against decoys, the UME against count baselines.

>>> quality = reward_quality(ume, corpus)  # doctest: +SKIP
>>> quality.pll  # per modality: mean masked PLL per token, UME vs unigram vs context  # doctest: +SKIP
>>> quality.auroc  # per modality and decoy: AUROC of real vs decoy, UME vs baselines  # doctest: +SKIP
>>> quality.probes  # hacking probes (homopolymers, repeats) vs held-out real sequences  # doctest: +SKIP

Everything is measured on sequences no model was fitted on (the baselines are fitted on the corpus's train split,
as the UME should be): ``split="heldout"`` (default) draws them from held-out windows and molecules of the
training sources, ``split="out_of_source"`` from the sources held out whole (another organism, another
ChEMBL set: ``corpus.held_out_sources``). :func:`reward_quality_by_split` measures both and
:func:`side_by_side` puts their AUROC tables next to each other:

>>> qualities = reward_quality_by_split(ume, corpus)  # doctest: +SKIP
>>> side_by_side(qualities)  # per modality and decoy: UME / context / unigram, in source and out of source  # doctest: +SKIP
>>> out_of_source_targets(qualities["out_of_source"])  # the UME against the context model, out of source  # doctest: +SKIP

In detail:

- real sequences: ``corpus.sample(modality, n, split, length_range)`` with the reward's length ranges
  (SMILES whole molecules of 10-50 characters, protein fragments of 20-100, DNA sub-windows of 50-200);
- decoys of each real sequence: proteins and DNA ``shuffled`` (same composition: only context separates
  them); SMILES ``mutated_20pct`` (about 20% of the bare atoms swapped within their class, aliphatic C/N/O/S
  or aromatic c/n, kept only if RDKit parses it, canonical) and ``synthetic`` (``ume_rl.data.generate.random_smiles``,
  the synthetic generator, within ±3 characters of the real one); every modality ``mutated_10pct`` (10% of
  the positions substituted; SMILES: atoms swapped within class as above);
- scores: the UME's exact masked pseudo-log-likelihood per token (:class:`~ume_rl.rewards.engine.ume_scoring.UmeScorer`,
  ``mode="masked"``), a unigram model (train-split token frequencies) and a :class:`~ume_rl.rewards.baselines.ContextBaseline` (a
  token given its ±2 neighbours, backed off to ±1 and the unigram);
- AUROC: the probability that a real sequence scores above a decoy (ties count half); 0.5 is chance.
  The unigram's AUROC on shuffled decoys is 0.5 by construction.

Hacking probes (``ume_rl.inspection.probes.make_probes``: homopolymers, tandem repeats, 90% one residue) are
not decoys: a likelihood model is expected to like them. ``probes`` reports each one's score and the
fraction of held-out real sequences it outscores; the complexity reward is the counterweight.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ume_rl.rewards.baselines import context_baseline
from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE

logger = logging.getLogger(__name__)

DECOYS: dict[str, tuple[str, ...]] = {
    "SMILES": ("mutated_20pct", "synthetic", "mutated_10pct"),
    "amino_acid": ("shuffled", "mutated_10pct"),
    "nucleotide": ("shuffled", "mutated_10pct"),
}
DEFAULT_N = {"SMILES": 200, "amino_acid": 150, "nucleotide": 60}

# bracket atoms, two-letter elements outside brackets, ring-bond numbers %nn, then single characters
_SMILES_TOKEN = re.compile(r"\[[^\]]+\]|Br|Cl|%\d\d|.")
ATOM_CLASSES: tuple[frozenset[str], ...] = (frozenset("CNOS"), frozenset("cn"))


# ---------------------------------------------------------------------------------------------- decoys


def mutate_smiles(smiles: str, rate: float, rng: random.Random, tries: int = 20) -> str | None:
    """``smiles`` with ``max(1, round(rate * n))`` of its ``n`` bare atoms swapped within their class
    (aliphatic C/N/O/S, aromatic c/n), as canonical SMILES; ``None`` if no try parses in RDKit."""
    from rdkit import Chem, rdBase

    tokens = _SMILES_TOKEN.findall(smiles)
    sites = [i for i, t in enumerate(tokens) if any(t in c for c in ATOM_CLASSES)]
    if not sites:
        return None
    k = max(1, round(rate * len(sites)))
    for _ in range(tries):
        out = list(tokens)
        for i in rng.sample(sites, k):
            atom_class = next(c for c in ATOM_CLASSES if tokens[i] in c)
            out[i] = rng.choice(sorted(atom_class - {tokens[i]}))
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles("".join(out))
        if mol is not None and (canonical := Chem.MolToSmiles(mol)) != smiles:
            return canonical
    return None


def make_decoys(real: Sequence[str], modality: str, seed: int = 0) -> dict[str, list[str | None]]:
    """Decoys of each real sequence, aligned with ``real`` (``None`` where none could be made)."""
    from ume_rl.data.generate import random_smiles
    from ume_rl.inspection.probes import point_mutations, shuffle_sequence

    out: dict[str, list[str | None]] = {}
    for kind in DECOYS[modality]:
        rng = random.Random(f"{seed}:{modality}:{kind}")
        if kind == "shuffled":
            out[kind] = [shuffle_sequence(s, rng) for s in real]
        elif kind == "synthetic":
            synthetic: list[str | None] = []
            for s in real:
                try:
                    synthetic.append(random_smiles(rng, max(10, len(s) - 3), len(s) + 3, max_tries=3000))
                except RuntimeError:
                    synthetic.append(None)
            out[kind] = synthetic
        else:
            rate = 0.2 if kind == "mutated_20pct" else 0.1
            if modality == "SMILES":
                out[kind] = [mutate_smiles(s, rate, rng) for s in real]
            else:
                out[kind] = [point_mutations(s, modality, max(1, round(rate * len(s))), rng) for s in real]
    return out


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counted half (Mann-Whitney U / n_pos n_neg); NaNs dropped."""
    from scipy.stats import rankdata

    pos = np.asarray([x for x in positive if not math.isnan(x)], dtype=float)
    neg = np.asarray([x for x in negative if not math.isnan(x)], dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


# ----------------------------------------------------------------------------------------------- result


def paired_win_rate(real, decoys, column: str) -> float:
    """How often a real sequence scores above its own decoy (rows matched on ``index``; ties, within 1e-9, count
    half; pairs with a NaN score are left out; NaN when none is left)."""
    merged = real[["index", column]].merge(
        decoys[["index", column]], on="index", suffixes=("_real", "_decoy")
    )
    merged = merged.dropna()
    if merged.empty:
        return float("nan")
    margin = (merged[f"{column}_real"] - merged[f"{column}_decoy"]).to_numpy(float)
    ties = np.abs(margin) < 1e-9  # equal up to summation order (a shuffle under a unigram)
    return float(np.mean(np.where(ties, 0.5, margin > 0)))


@dataclass(frozen=True)
class RewardQuality:
    """What :func:`reward_quality` measured. Every attribute but ``seconds`` is a pandas DataFrame.

    - ``pll``: per modality, ``n`` held-out sequences and their mean per-token log-probability under the UME
      (masked PLL), the unigram and the context baseline; ``ume_minus_unigram`` > 0 means the UME beats it.
    - ``auroc``: per modality and decoy, ``n_pairs`` and the AUROC of real vs decoy for the UME, the context
      baseline and the unigram (every real sequence against every decoy: the margin must beat how much real
      sequences differ from one another), and ``<model> paired``: how often a real sequence scores above its own
      decoy (ties half; the margin's sign only).
    - ``probes``: per hacking probe, its UME score, the held-out real mean and the fraction of held-out real
      sequences it outscores.
    - ``scores``: every scored sequence (``modality``, ``set``, ``sequence``, ``ume``, ``context``,
      ``unigram``).
    """

    pll: object
    auroc: object
    probes: object
    scores: object
    seconds: float
    split: str = "heldout"
    """The corpus split the real sequences were drawn from."""

    def targets(
        self, smiles_mutated: float = 0.85, dna_shuffled: float = 0.75, protein_shuffled: float = 0.65
    ):
        """Quality targets (AUROC vs decoys), one row each, with the measured value and whether it is met."""
        import pandas as pd

        rows = []
        for row in self.pll.itertuples():
            rows.append((f"{row.modality}: PLL above unigram", row.ume_minus_unigram, 0.0))
        for row in self.auroc.itertuples():
            rows.append((f"{row.modality} vs {row.decoy}: AUROC above context", row.ume - row.context, 0.0))
        pick = self.auroc.set_index(["modality", "decoy"])["ume"]
        rows += [
            ("SMILES vs mutated_20pct: AUROC", pick["SMILES", "mutated_20pct"], smiles_mutated),
            ("DNA vs shuffled: AUROC", pick["nucleotide", "shuffled"], dna_shuffled),
            ("protein vs shuffled: AUROC", pick["amino_acid", "shuffled"], protein_shuffled),
        ]
        frame = pd.DataFrame(rows, columns=["target", "value", "threshold"])
        frame["met"] = frame["value"] > frame["threshold"]
        return frame

    def summary(self) -> str:
        """What the numbers say, one line per modality, computed from the tables: the UME against the unigram
        (held-out PLL), against the context baseline (AUROC per decoy), and each hacking probe that scores above
        the held-out mean, with the fraction of held-out sequences it outscores."""
        lines = []
        where = "held-out" if self.split == "heldout" else "out-of-source"
        for row in self.pll.itertuples():
            label = MODALITY_TABLE[row.modality].label
            verdict = "beats" if row.ume_minus_unigram > 0 else "does NOT beat"
            parts = [f"{label}: {where} PLL {row.ume:.3f}/token {verdict} the unigram's {row.unigram:.3f}"]
            for a in self.auroc[self.auroc["modality"] == row.modality].itertuples():
                relation = "above" if a.ume > a.context else "below"
                if round(a.ume, 3) == round(a.context, 3):
                    relation = "level with"
                parts.append(
                    f"AUROC vs {a.decoy} {a.ume:.3f} ({relation} the context baseline's {a.context:.3f})"
                )
            probes = self.probes[(self.probes["modality"] == row.modality) & (self.probes["ume"] > row.ume)]
            liked = [
                f"{p.sequence[:16]}{'…' if len(p.sequence) > 16 else ''} ({p.ume:.2f}; outscores {p.outscores_real:.0%})"
                for p in probes.sort_values("ume", ascending=False).itertuples()
            ]
            parts.append(f"hacking probes above the {where} mean: " + (", ".join(liked) if liked else "none"))
            lines.append("; ".join(parts) + ".")
        return "\n".join(lines)


def reward_quality(
    models,
    corpus,
    n: int | dict[str, int] | None = None,
    seed: int = 0,
    probes_per_kind: int = 3,
    progress: bool = True,
    split: str = "heldout",
) -> RewardQuality:
    """Measure whether a reward model's masked pseudo-log-likelihood separates held-out real sequences from decoys.

    Args:
        models: a lobster UME (e.g. ``load_ume(path)``) for every modality, or a mapping modality → reward model
            (anything :func:`~ume_rl.rewards.masked_lm.build_scorers` takes: a UME, a
            :class:`~ume_rl.rewards.engine.hf_scoring.MaskedLM` from ``load_reward_model``); scored in
            ``mode="masked"``. The columns keep the name ``ume`` whatever the model.
        corpus: a :class:`~ume_rl.data.corpus.RealCorpus`; baselines fit its train split, sequences come from
            ``split``.
        n: held-out sequences per modality (an int for all, or a dict); default :data:`DEFAULT_N` (200 SMILES,
            150 protein, 60 DNA: with decoys and probes ~1,450 sequences, 80 s for the demo UME on one busy
            CPU core). The exact masked PLL costs about length² per sequence: DNA is the dearest.
        seed: decides the held-out sample and every decoy.
        probes_per_kind: hacking probes per (modality, kind).
        progress: a tqdm bar over the modalities.
        split: ``"heldout"`` (windows and molecules of the training sources) or ``"out_of_source"`` (sources
            held out whole).

    Returns:
        A :class:`RewardQuality`.

    Raises:
        ValueError: ``split`` is ``"train"`` or unknown, or the corpus has no sequence of a modality in it.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from ume_rl.inspection.probes import make_probes
    from ume_rl.rewards.baselines import ume_tokenizer
    from ume_rl.rewards.masked_lm import build_scorers

    if split not in ("heldout", "out_of_source"):
        raise ValueError(f"split must be 'heldout' or 'out_of_source' (never the train split), got {split!r}")
    start = time.perf_counter()
    sizes = dict(DEFAULT_N) if n is None else ({m: n for m in MODALITIES} if isinstance(n, int) else dict(n))
    scorers = build_scorers(models, mode="masked")
    probe_rows = make_probes(MODALITIES, n_per_kind=probes_per_kind, seed=seed)
    scored, pll_rows, auroc_rows = [], [], []
    for modality in tqdm(MODALITIES, desc="reward quality", disable=not progress):
        tokenizer = ume_tokenizer(modality)  # the baselines count UME tokens, whatever the reward model
        baseline = context_baseline(corpus, modality, tokenizer)
        real = corpus.sample(modality, sizes[modality], split, MODALITY_TABLE[modality].length_range, seed)
        if modality == "SMILES":
            real = list(dict.fromkeys(real))  # whole molecules: a small pool repeats
        decoys = make_decoys(real, modality, seed)
        sets = {"real": real, **decoys}
        sets.update({f"probe:{r['kind']}": [] for r in probe_rows if r["modality"] == modality})
        for r in probe_rows:
            if r["modality"] == modality:
                sets[f"probe:{r['kind']}"].append(r["sequence"])
        flat = [(name, i, s) for name, seqs in sets.items() for i, s in enumerate(seqs) if s is not None]
        sequences = [s for _, _, s in flat]
        ume_scores = scorers[modality].score(sequences, [modality] * len(sequences))
        ids = tokenizer(sequences)["input_ids"]
        context, unigram = baseline.scores(ids), baseline.scores(ids, order=0)
        for (name, i, s), u, c, g in zip(flat, ume_scores, context, unigram, strict=True):
            scored.append(
                {
                    "modality": modality,
                    "set": name,
                    "index": i,
                    "sequence": s,
                    "length": len(s),
                    "ume": u,
                    "context": float(c),
                    "unigram": float(g),
                }
            )
        frame = pd.DataFrame([row for row in scored if row["modality"] == modality])
        real_rows = frame[frame["set"] == "real"]
        pll_rows.append(
            {
                "modality": modality,
                "n": len(real_rows),
                "ume": real_rows["ume"].mean(),
                "unigram": real_rows["unigram"].mean(),
                "context": real_rows["context"].mean(),
                "ume_minus_unigram": real_rows["ume"].mean() - real_rows["unigram"].mean(),
                "context_alpha": baseline.alpha,
            }
        )
        for decoy in DECOYS[modality]:
            pairs = frame[frame["set"] == decoy]["index"]
            paired_real = real_rows[real_rows["index"].isin(pairs)]
            decoy_rows = frame[frame["set"] == decoy]
            auroc_rows.append(
                {
                    "modality": modality,
                    "decoy": decoy,
                    "n_pairs": len(decoy_rows),
                    **{
                        model: auroc(paired_real[model], decoy_rows[model])
                        for model in ("ume", "context", "unigram")
                    },
                    **{
                        f"{model} paired": paired_win_rate(paired_real, decoy_rows, model)
                        for model in ("ume", "context", "unigram")
                    },
                }
            )
    scores = pd.DataFrame(scored)
    probe_table = []
    for (modality, name), group in scores[scores["set"].str.startswith("probe:")].groupby(
        ["modality", "set"]
    ):
        real = scores[(scores["modality"] == modality) & (scores["set"] == "real")]["ume"].to_numpy()
        for row in group.itertuples():
            probe_table.append(
                {
                    "modality": modality,
                    "probe": name.removeprefix("probe:"),
                    "sequence": row.sequence,
                    "ume": row.ume,
                    "real_mean": float(np.nanmean(real)),
                    "outscores_real": float(np.mean(real < row.ume)),
                    "context": row.context,
                }
            )
    seconds = time.perf_counter() - start
    logger.info("reward quality (%s): %d sequences scored in %.0f s", split, len(scores), seconds)
    return RewardQuality(
        pll=pd.DataFrame(pll_rows),
        auroc=pd.DataFrame(auroc_rows),
        probes=pd.DataFrame(probe_table),
        scores=scores,
        seconds=seconds,
        split=split,
    )


def reward_quality_by_split(
    models, corpus, splits: Sequence[str] = ("heldout", "out_of_source"), **kwargs
) -> dict[str, RewardQuality]:
    """:func:`reward_quality` on each of ``splits`` (same ``kwargs``, same seed), keyed by split."""
    return {split: reward_quality(models, corpus, split=split, **kwargs) for split in splits}


def side_by_side(qualities: dict[str, RewardQuality]):
    """The AUROC tables of several splits next to each other: one row per modality and decoy, columns
    ``<model> <split>`` for the UME, the context baseline and the unigram (a pandas DataFrame)."""
    frames = [
        q.auroc.set_index(["modality", "decoy"])[["ume", "context", "unigram"]].add_suffix(f" {split}")
        for split, q in qualities.items()
    ]
    import pandas as pd

    return pd.concat(frames, axis=1).reset_index()  # rows in the first table's order


def out_of_source_targets(quality: RewardQuality, protein_margin: float = 0.02):
    """The out-of-source targets: the UME's AUROC at least the context model's on SMILES (vs 20 % mutated) and
    DNA (vs shuffled), and within ``protein_margin`` below it on protein (vs shuffled); one row each with the
    UME, the context baseline, the margin and whether it is met (a pandas DataFrame)."""
    import pandas as pd

    auroc = quality.auroc.set_index(["modality", "decoy"])
    rows = []
    for modality, decoy, margin in (
        ("SMILES", "mutated_20pct", 0.0),
        ("nucleotide", "shuffled", 0.0),
        ("amino_acid", "shuffled", protein_margin),
    ):
        ume, context = auroc.loc[(modality, decoy), "ume"], auroc.loc[(modality, decoy), "context"]
        rows.append(
            {
                "split": quality.split,
                "modality": modality,
                "decoy": decoy,
                "ume": ume,
                "context": context,
                "allowed_below": margin,
                "met": bool(ume >= context - margin),
            }
        )
    return pd.DataFrame(rows)
