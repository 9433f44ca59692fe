"""Molecule metrics for generated SMILES, as MOSES and GuacaMol define them (RDKit, ChemNet).

Each function takes plain SMILES strings and can be used alone:

>>> canonical_smiles("OCC")
'CCO'
>>> internal_diversity(["CCO", "OCC"])  # one molecule twice: no diversity
0.0
>>> round(novelty(["CCO", "c1ccccc1"], known={"CCO"}), 2)  # benzene is new, ethanol is known
0.5

- :func:`internal_diversity`: 1 − mean pairwise Tanimoto similarity of Morgan fingerprints (radius 2, 2048
  bits) over distinct pairs;
- :func:`novelty` and :func:`scaffold_novelty`: fraction of distinct molecules (Bemis-Murcko scaffolds) not in
  a known set (the corpus's train split);
- :func:`qed_values` (RDKit QED) and :func:`sa_values` (Ertl & Schuffenhauer's synthetic accessibility, from
  RDKit's Contrib ``SA_Score``), compared with a reference by :func:`wasserstein` distance;
- :func:`chemnet_stats` and :func:`frechet_distance`: the Fréchet ChemNet Distance (FCD, Preuer et al.) from
  the ``fcd`` package's bundled ChemNet weights (LGPL-3.0, offline). FCD needs a few hundred molecules per set
  to mean anything: compute it on evaluation generations, not on one logging step's handful.

Unparseable SMILES are skipped by every function here (validity is the reward's and the caller's job).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from rdkit import Chem, DataStructs, RDConfig, rdBase
from rdkit.Chem import QED, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold
from scipy.stats import wasserstein_distance

MORGAN_RADIUS = 2
MORGAN_BITS = 2048


def molecules(smiles: Iterable[str]) -> list:
    """RDKit molecules of the parseable SMILES (RDKit's parse errors silenced)."""
    out = []
    with rdBase.BlockLogs():
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if s else None
            if mol is not None:
                out.append(mol)
    return out


def canonical_smiles(smiles: str) -> str | None:
    """RDKit's canonical SMILES, or ``None`` when RDKit cannot parse it."""
    mols = molecules([smiles])
    return Chem.MolToSmiles(mols[0]) if mols else None


def canonical_set(smiles: Iterable[str]) -> set[str]:
    """The distinct canonical SMILES of the parseable ones."""
    return {Chem.MolToSmiles(mol) for mol in molecules(smiles)}


def scaffold(smiles: str) -> str | None:
    """Canonical Bemis-Murcko scaffold (``""`` for an acyclic molecule), ``None`` when unparseable."""
    mols = molecules([smiles])
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mols[0]) if mols else None


def novelty(smiles: Iterable[str], known: set[str]) -> float:
    """Fraction of the distinct canonical molecules in ``smiles`` not in ``known`` (canonical SMILES);
    NaN when none parses."""
    distinct = canonical_set(smiles)
    return len(distinct - known) / len(distinct) if distinct else math.nan


def scaffold_novelty(smiles: Iterable[str], known_scaffolds: set[str]) -> float:
    """Fraction of the distinct scaffolds of ``smiles`` not in ``known_scaffolds``; NaN when none parses."""
    distinct = {s for s in map(scaffold, smiles) if s is not None}
    return len(distinct - known_scaffolds) / len(distinct) if distinct else math.nan


def internal_diversity(smiles: Sequence[str]) -> float:
    """1 − mean Tanimoto similarity over all pairs of parseable molecules (Morgan r=2); NaN below two."""
    mols = molecules(smiles)
    if len(mols) < 2:
        return math.nan
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)
    fps = [generator.GetFingerprint(mol) for mol in mols]
    total = sum(sum(DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1 :])) for i in range(len(fps) - 1))
    pairs = len(fps) * (len(fps) - 1) / 2
    return 1.0 - total / pairs


def qed_values(smiles: Iterable[str]) -> list[float]:
    """RDKit QED (drug-likeness in [0, 1]) of each parseable molecule."""
    return [QED.qed(mol) for mol in molecules(smiles)]


@lru_cache(maxsize=1)
def _sascorer():
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the SA score needs RDKit's Contrib directory (pip rdkit)"
        )
    spec = importlib.util.spec_from_file_location("sascorer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sa_values(smiles: Iterable[str]) -> list[float]:
    """Synthetic accessibility (1 easy … 10 hard) of each parseable molecule."""
    scorer = _sascorer()
    return [scorer.calculateScore(mol) for mol in molecules(smiles)]


def wasserstein(values: Sequence[float], reference: Sequence[float]) -> float:
    """Earth mover's (W1) distance between two samples of a property; NaN when either is empty."""
    return float(wasserstein_distance(values, reference)) if len(values) and len(reference) else math.nan


def mean(values: Sequence[float]) -> float:
    """Mean, NaN when empty."""
    return float(np.mean(values)) if len(values) else math.nan


@lru_cache(maxsize=1)
def _chemnet():
    import fcd

    return fcd.load_ref_model()


def chemnet_stats(smiles: Iterable[str], device: str = "cpu") -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and covariance of the ChemNet activations of the parseable molecules (canonical SMILES);
    ``None`` below two molecules (no covariance)."""
    import fcd

    canonical = [Chem.MolToSmiles(mol) for mol in molecules(smiles)]
    if len(canonical) < 2:
        return None
    activations = fcd.get_predictions(_chemnet(), canonical, device=device)
    return activations.mean(axis=0), np.cov(activations.T)


def frechet_distance(stats, reference_stats) -> float:
    """FCD between two :func:`chemnet_stats` results (0: the same distribution); NaN when either is ``None``."""
    import fcd

    if stats is None or reference_stats is None:
        return math.nan
    (mu1, sigma1), (mu2, sigma2) = stats, reference_stats
    return float(fcd.calculate_frechet_distance(mu1=mu1, sigma1=sigma1, mu2=mu2, sigma2=sigma2))
