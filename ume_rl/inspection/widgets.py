"""The live scoring panel of notebook 03 (ipywidgets): type a sequence, see what ``MaskedLMReward`` returns.

The panel is one widget box: four controls (sequence, modality, mode, temperature) and, below them, a
result area that shows the score, reward, reason for invalid input and complexity. It rescores on every
control change, so ``display(panel)`` is all a notebook needs; ``panel.result`` holds the dict on screen.

>>> from ume_rl.models.ume import load_ume
>>> panel = scoring_panel(load_ume("tiny"), sequence="ACGTTGCA", modality="nucleotide")
>>> panel.result["reason"] is None, panel.result["reward"] > panel.result["penalty"]
(True, True)
>>> panel.controls["sequence"].value = "ACGU"  # what typing does: the panel rescores and redraws
>>> panel.result["reason"], "bad_alphabet" in panel.output.value
('bad_alphabet', True)
"""

from __future__ import annotations

import html
import logging

import ipywidgets as widgets

from ume_rl.rewards.complexity import sequence_complexity
from ume_rl.rewards.engine.scoring import DEFAULT_MODE, MODES
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.modalities import MODALITY_TABLE, normalize_modality
from ume_rl.rewards.tags import wrap

logger = logging.getLogger(__name__)


class ScoringPanel(widgets.VBox):
    """A widget box that scores one sequence with ``MaskedLMReward`` whenever a control changes.

    Args:
        ume_model: a lobster ``UME`` (e.g. ``profile.load_ume()``).
        sequence: the sequence shown first, without tags.
        modality: its modality (anything :func:`~ume_rl.rewards.modalities.normalize_modality` accepts).
        temperature: the reward temperature shown first.

    Attributes:
        controls: ``{"sequence", "modality", "mode", "temperature"}`` to their widgets; setting a widget's
            ``value`` (from Python or the browser) rescores.
        output: the ``HTML`` widget inside the box that shows the result.
        result: ``MaskedLMReward.details`` of the tagged sequence plus ``penalty`` and ``complexity`` (``None``
            when invalid). Invalid input is a result with its ``reason``, not an error. If scoring itself
            fails after a control change, the error is shown in the panel and logged, and ``result`` holds
            ``error`` with no score; on construction it is raised.

    The text box and the slider send their value when you leave the box or release the slider, so a
    sequence is scored once, not at every keystroke (masked scoring runs one UME pass per residue). One
    ``MaskedLMReward`` per (mode, temperature) visited is kept.
    """

    def __init__(self, ume_model, sequence: str, modality: str, temperature: float = 0.1):
        self._ume = ume_model
        self._rewards: dict[tuple[str, float], MaskedLMReward] = {}
        style = {"description_width": "7em"}  # room for "temperature"
        self.controls = {
            "sequence": widgets.Textarea(
                value=sequence,
                description="sequence",
                style=style,
                placeholder="a sequence without tags",
                continuous_update=False,
                layout=widgets.Layout(width="90%"),
            ),
            "modality": widgets.Dropdown(
                options=[(spec.label, spec.name) for spec in MODALITY_TABLE.values()],
                value=normalize_modality(modality),
                description="modality",
                style=style,
            ),
            "mode": widgets.Dropdown(options=MODES, value=DEFAULT_MODE, description="mode", style=style),
            "temperature": widgets.FloatLogSlider(
                value=temperature,
                base=10,
                min=-2,
                max=1,
                step=0.1,
                description="temperature",
                style=style,
                continuous_update=False,
            ),
        }
        self.output = widgets.HTML()
        self.output.add_class("ume-rl-scoring-result")
        super().__init__(children=[*self.controls.values(), self.output])
        self.add_class("ume-rl-scoring-panel")
        self.result = self._score()  # errors on construction reach the notebook cell
        self.output.value = render_result(self.result)
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    def _score(self) -> dict:
        values = {name: control.value for name, control in self.controls.items()}
        key = (values["mode"], float(values["temperature"]))
        if key not in self._rewards:
            self._rewards[key] = MaskedLMReward(self._ume, temperature=key[1], mode=key[0])
        reward = self._rewards[key]
        modality = values["modality"]
        result = reward.details([wrap(values["sequence"].strip(), modality)], modality=[modality])[0]
        valid = result["reason"] is None
        complexity = sequence_complexity(result["sequence"], modality) if valid else None
        return {**result, "penalty": reward.penalty, "complexity": complexity}

    def _on_change(self, change) -> None:
        try:
            self.result = self._score()
        except Exception as error:  # shown, never a stale or made-up score; a widget callback cannot raise
            logger.exception("scoring panel: scoring failed")
            modality = self.controls["modality"].value
            self.result = {
                "modality": modality,
                "sequence": None,
                "reason": None,
                "score": None,
                "reward": None,
                "error": f"{type(error).__name__}: {error}",
            }
        self.output.value = render_result(self.result)


def render_result(result: dict) -> str:
    """The panel's result area: one HTML table row per field of ``result`` that a reader needs.

    >>> row = {"modality": "nucleotide", "sequence": None, "reason": "bad_alphabet", "score": None,
    ...        "reward": -91.5, "floored": False, "penalty": -91.5, "complexity": None}
    >>> "bad_alphabet" in render_result(row), "score" in render_result(row)
    (True, True)
    """

    def number(value) -> str:
        return "—" if value is None else f"{value:.4f}"

    if "error" in result:
        rows = [("error", f'<span style="color:#c00">{html.escape(result["error"])}</span>')]
    else:
        reason = result["reason"]
        rows = [
            ("score", number(result["score"])),
            ("reward", number(result["reward"]) + (" (floored)" if result.get("floored") else "")),
            (
                "reason",
                "valid" if reason is None else f'<span style="color:#c00">{html.escape(reason)}</span>',
            ),
            ("complexity", number(result["complexity"])),
            ("penalty", number(result["penalty"])),
        ]
        if result["sequence"] is not None:
            rows.append(("length", str(len(result["sequence"]))))
    modality = result["modality"]
    label = MODALITY_TABLE[modality].label if modality in MODALITY_TABLE else str(modality)
    rows.insert(0, ("modality", html.escape(label)))
    cells = "".join(
        f'<tr><th style="text-align:left;padding-right:1em">{name}</th><td>{value}</td></tr>'
        for name, value in rows
    )
    return f"<table>{cells}</table>"


def scoring_panel(
    ume_model, sequence: str = "MKTAYIAKQRQISFVKSHFSRQ", modality: str = "amino_acid"
) -> ScoringPanel:
    """The live scoring panel (a :class:`ScoringPanel`): ``display(panel)`` shows controls and result.

    >>> panel = scoring_panel(load_ume("tiny"))  # doctest: +SKIP
    >>> display(panel)  # doctest: +SKIP
    >>> panel.result["reward"]  # doctest: +SKIP
    """
    return ScoringPanel(ume_model, sequence=sequence, modality=modality)
