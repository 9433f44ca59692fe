"""Figures for ume_rl: each function takes data and returns a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, never through ``pyplot``: no global
state, no backend switch, headless anywhere, and Jupyter displays a returned ``Figure`` as usual.
Write them with :func:`save_figure`. Sections: reward inspection (notebook 03) and training curves (notebook 04).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------ reward inspection (03)


# ------------------------------------------------------------------------------- training curves (04)
