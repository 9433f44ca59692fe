"""Figures for ume_rl: each function takes data and returns a matplotlib ``Figure``.

No global state, no ``plt.show()``: figures render headless under the Agg backend and are written
with :func:`save_figure`. Sections: reward inspection (notebook 03) and training curves (notebook 04).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------ reward inspection (03)


# ------------------------------------------------------------------------------- training curves (04)
