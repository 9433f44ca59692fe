"""Synthetic prompt/reference dataset for GRPO against UME rewards.

Each row asks for one sequence of one modality inside the exact tag the reward reads, and carries
a valid reference answer (SMILES parsed by RDKit, 20 standard amino acids, ACGT DNA):

>>> ds = generate_synthetic_dataset(n_per_modality=10, seed=0, progress=False)
>>> {k: len(v) for k, v in ds.items()}
{'train': 24, 'validation': 3, 'test': 3, 'full': 30}
>>> ds["full"][0]["prompt"][0]["role"]
'user'

Columns: ``prompt`` (chat messages, so an Instruct model's chat template applies), ``prompt_text``
(the same request as a plain string), ``completion`` (the tagged reference), ``sequence``,
``modality`` (lobster ``Modality`` value), ``tag`` and ``length``.

References: ``references="random"`` builds them with the seeded generators below (fragment-built SMILES,
uniform random residues); ``references="real"`` (the ``demo`` profile) draws them from the **train** split of
:func:`ume_rl.data.corpus.load_real_corpus` within the same length ranges (ChEMBL-like molecules whole, protein
fragments and DNA sub-windows cut to fit), so a warm start teaches the policy real sequences.

Saving, checking and loading a dataset directory: :mod:`ume_rl.data.store`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from datasets import Dataset, DatasetDict
from rdkit import Chem, rdBase
from tqdm.auto import tqdm

from ume_rl.rewards.modalities import MODALITIES, MODALITY_TABLE
from ume_rl.rewards.tags import wrap

SPLIT_FRACTIONS = {"train": 0.90, "validation": 0.05, "test": 0.05}
REFERENCES: tuple[str, ...] = ("random", "real")
SMILES_SOURCES: tuple[str, ...] = ("moses", "corpus")

# Building blocks for random, RDKit-valid SMILES.
_ATOMS = ("C", "C", "C", "C", "N", "O", "S", "F", "Cl")
_RINGS = ("c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCOC1", "c1ccoc1", "C1CCNCC1")
_BONDS = ("", "", "", "=")


def _random_smiles_candidate(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(2, 9)):
        roll = rng.random()
        if roll < 0.15 and parts:
            parts.append(f"({rng.choice(_ATOMS)}{rng.choice(_ATOMS)})")
        elif roll < 0.3:
            parts.append(rng.choice(_RINGS))
        elif roll < 0.38 and parts:
            parts.append("(=O)")
        else:
            parts.append(rng.choice(_BONDS) + rng.choice(_ATOMS) if parts else rng.choice(_ATOMS))
    return "".join(parts)


def random_smiles(rng: random.Random, min_len: int = 10, max_len: int = 50, max_tries: int = 1000) -> str:
    """A canonical SMILES that RDKit parses, with ``min_len <= len <= max_len``."""
    for _ in range(max_tries):
        with rdBase.BlockLogs():  # rejected candidates are expected; keep RDKit quiet only here
            mol = Chem.MolFromSmiles(_random_smiles_candidate(rng))
        if mol is None:
            continue
        smiles = Chem.MolToSmiles(mol)
        if min_len <= len(smiles) <= max_len:
            return smiles
    raise RuntimeError(f"no valid SMILES of length {min_len}-{max_len} in {max_tries} tries")


def random_sequence(modality: str, rng: random.Random) -> str:
    """A random reference sequence of ``modality`` within its table ``length_range``."""
    spec = MODALITY_TABLE[modality]
    lo, hi = spec.length_range
    if spec.alphabet is None:
        return random_smiles(rng, lo, hi)
    return "".join(rng.choice(spec.alphabet) for _ in range(rng.randint(lo, hi)))


def make_row(sequence: str, modality: str, prompt_text: str) -> dict:
    """One dataset row; ``prompt`` is the conversational form of ``prompt_text``."""
    return {
        "prompt": [{"role": "user", "content": prompt_text}],
        "prompt_text": prompt_text,
        "completion": wrap(sequence, modality),
        "sequence": sequence,
        "modality": modality,
        "tag": MODALITY_TABLE[modality].tag,
        "length": len(sequence),
    }


def _split_counts(n: int) -> dict[str, int]:
    # Every split gets at least one row per modality (datasets cannot reload an empty split).
    n_val = max(1, round(n * SPLIT_FRACTIONS["validation"]))
    n_test = max(1, round(n * SPLIT_FRACTIONS["test"]))
    return {"train": n - n_val - n_test, "validation": n_val, "test": n_test}


def real_references(modality: str, n: int, seed: int, corpus=None) -> list[str]:
    """``n`` distinct sequences of ``modality`` from the real corpus's train split, within the table's
    ``length_range`` (see :meth:`ume_rl.data.corpus.RealCorpus.sample`)."""
    from ume_rl.data.corpus import load_real_corpus

    corpus = corpus if corpus is not None else load_real_corpus(progress=False)
    length_range = MODALITY_TABLE[modality].length_range
    unique: list[str] = []
    for attempt in range(5):
        drawn = corpus.sample(modality, 2 * n, "train", length_range, seed=f"{seed}:{attempt}")
        unique = list(dict.fromkeys([*unique, *drawn]))
        if len(unique) >= n:
            return unique[:n]
    raise ValueError(
        f"the corpus's train split has only {len(unique)} distinct {modality} references in {length_range}; "
        f"ask for fewer than {n}"
    )


def extra_references(
    modality: str,
    n: int,
    seed: int,
    exclude: Iterable[str] = (),
    corpus=None,
    smiles_source: str = "moses",
) -> list[str]:
    """``n`` distinct real references of ``modality`` for a warm start, none of them in ``exclude``.

    SMILES come from the MOSES training set (``smiles_source="moses"``, :func:`ume_rl.data.moses.moses_smiles`)
    or the corpus's train split (``"corpus"``); proteins and DNA from the corpus's train split, cut to the
    table's ``length_range`` (:func:`real_references`). Pass the held-out rows' sequences as ``exclude`` so a
    warm start never sees a held-out answer.

    Raises:
        ValueError: unknown ``smiles_source``, or fewer than ``n`` distinct references are available.
    """
    if smiles_source not in SMILES_SOURCES:
        raise ValueError(f"smiles_source must be one of {SMILES_SOURCES}, got {smiles_source!r}")
    excluded = set(exclude)
    if modality == "SMILES" and smiles_source == "moses":
        from ume_rl.data.moses import moses_smiles

        lo, hi = MODALITY_TABLE["SMILES"].length_range
        pool = [s for s in moses_smiles("train") if lo <= len(s) <= hi and s not in excluded]
        if len(pool) < n:
            raise ValueError(
                f"MOSES train has only {len(pool)} SMILES in {lo}-{hi} characters; ask for fewer than {n}"
            )
        return random.Random(f"{seed}:moses").sample(pool, n)
    drawn = real_references(modality, n + len(excluded), seed, corpus)
    kept = [s for s in drawn if s not in excluded][:n]
    if len(kept) < n:
        raise ValueError(
            f"only {len(kept)} {modality} references outside the excluded ones; ask for fewer than {n}"
        )
    return kept


def reference_rows(
    n_per_modality: int, seed: int, exclude: Iterable[str] = (), corpus=None, smiles_source: str = "moses"
) -> Dataset:
    """Rows (as :func:`make_row` builds them) of :func:`extra_references` for every modality, shuffled: extra
    warm-start data beside a dataset's train split, with prompts from the modality table."""
    rng = random.Random(seed)
    rows = [
        make_row(sequence, modality, rng.choice(MODALITY_TABLE[modality].prompts))
        for modality in MODALITIES
        for sequence in extra_references(modality, n_per_modality, seed, exclude, corpus, smiles_source)
    ]
    rng.shuffle(rows)
    return Dataset.from_list(rows)


def corpus_texts(
    sizes: Mapping[str, int],
    seed: int,
    exclude: Iterable[str] = (),
    corpus=None,
    smiles_source: str = "moses",
) -> list[str]:
    """Tagged real sequences (``<smiles>CCO</smiles>``), ``sizes[modality]`` of :func:`extra_references` per
    modality, shuffled: the text of a warm start's corpus stage (:func:`ume_rl.training.sft.warm_start`). Pass the
    held-out rows' sequences as ``exclude``."""
    exclude = tuple(exclude)
    texts = [
        wrap(sequence, modality)
        for modality, n in sizes.items()
        if n
        for sequence in extra_references(modality, n, seed, exclude, corpus, smiles_source)
    ]
    random.Random(f"{seed}:corpus").shuffle(texts)
    return texts


def generate_synthetic_dataset(
    n_per_modality: int = 100,
    seed: int = 42,
    progress: bool = True,
    references: str = "random",
    corpus=None,
) -> DatasetDict:
    """Generate the dataset: ``n_per_modality`` rows per modality, split 90/5/5 within each modality.

    Args:
        n_per_modality: rows per modality, at least 3 (100 gives splits 270/15/15 and ``full`` = 300).
        seed: the same seed gives an identical dataset.
        progress: show a tqdm progress bar.
        references: ``"random"`` (the seeded generators) or ``"real"`` (the real corpus's train split).
        corpus: with ``"real"``: a :class:`~ume_rl.data.corpus.RealCorpus` (default ``load_real_corpus()``).

    Returns:
        ``DatasetDict`` with splits ``train``, ``validation``, ``test`` and ``full`` (all rows).
    """
    if isinstance(n_per_modality, bool) or not isinstance(n_per_modality, int):
        raise TypeError(
            f"n_per_modality must be an integer (rows per modality), got {type(n_per_modality).__name__} "
            f"{n_per_modality!r}"
        )
    if n_per_modality < 3:
        raise ValueError(
            f"n_per_modality must be >= 3 (one row per modality in each split), got {n_per_modality}"
        )
    if references not in REFERENCES:
        raise ValueError(f"references must be one of {REFERENCES}, got {references!r}")
    rng = random.Random(seed)
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    bar = tqdm(total=n_per_modality * len(MODALITIES), desc="synthetic dataset", disable=not progress)
    for modality in MODALITIES:
        rows, seen = [], set()
        real = real_references(modality, n_per_modality, seed, corpus) if references == "real" else []
        while len(rows) < n_per_modality:  # unique references, so splits never share an answer
            sequence = real[len(rows)] if real else random_sequence(modality, rng)
            if sequence in seen:
                continue
            seen.add(sequence)
            rows.append(make_row(sequence, modality, rng.choice(MODALITY_TABLE[modality].prompts)))
            bar.update()
        start = 0
        for split, count in _split_counts(n_per_modality).items():
            splits[split].extend(rows[start : start + count])
            start += count
    bar.close()
    for rows in splits.values():
        rng.shuffle(rows)
    full = Dataset.from_list(splits["train"] + splits["validation"] + splits["test"])
    parts, start = {}, 0
    for name, rows in splits.items():
        parts[name] = full.select(range(start, start + len(rows)))
        start += len(rows)
    return DatasetDict({**parts, "full": full})


def tokenizer_corpus(seed: int = 0, n_per_modality: int = 100, references: str = "random") -> list[str]:
    """Text a tiny policy tokenizer is trained on: prompts, tagged answers, raw sequences (``references``:
    as in :func:`generate_synthetic_dataset`; ``"real"`` adds real sequences, ``"random"`` generated ones)."""
    rows = generate_synthetic_dataset(
        n_per_modality=n_per_modality, seed=seed, progress=False, references=references
    )["full"]
    rng = random.Random(seed)
    if references == "real":
        extra = [s for m in MODALITIES for s in real_references(m, 2 * n_per_modality, seed + 1)]
    else:
        extra = [random_sequence(m, rng) for m in MODALITIES for _ in range(n_per_modality)]
    return [
        *rows["prompt_text"],
        *rows["completion"],
        *extra,
        *(t for spec in MODALITY_TABLE.values() for t in spec.prompts),
    ]
