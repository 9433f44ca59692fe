"""Interactive widgets for the notebooks (ipywidgets).

>>> panel = scoring_panel(load_ume("tiny"))  # doctest: +SKIP
>>> panel.result["reward"]  # doctest: +SKIP
"""

from __future__ import annotations


def scoring_panel(ume_model, sequence: str = "MKTAYIAKQRQISFVKSHFSRQ", modality: str = "amino_acid"):
    """An ipywidgets panel that scores one sequence live with ``UmeReward`` (text, modality, mode, temperature).

    The panel computes its first result on construction (``panel.result``: ``UmeReward.details`` of the
    tagged sequence plus ``penalty`` and ``complexity``), so it also shows a value where no kernel drives the
    widgets (nbconvert, nbmake). One ``UmeReward`` per (mode, temperature) visited is kept.
    """
    import ipywidgets as widgets

    from ume_rl.rewards.complexity import sequence_complexity
    from ume_rl.rewards.modalities import MODALITIES
    from ume_rl.rewards.tags import wrap
    from ume_rl.rewards.ume import UmeReward

    rewards: dict[tuple[str, float], UmeReward] = {}  # one per (mode, temperature) the controls visit

    def score(sequence: str, modality: str, mode: str, temperature: float) -> dict:
        reward = rewards.get((mode, temperature)) or UmeReward(ume_model, temperature=temperature, mode=mode)
        rewards[(mode, temperature)] = reward
        result = reward.details([wrap(sequence.strip(), modality)], modality=[modality])[0]
        valid = result["reason"] is None
        complexity = sequence_complexity(result["sequence"], modality) if valid else None
        return {**result, "penalty": reward.penalty, "complexity": complexity}

    return widgets.interactive(
        score,
        sequence=widgets.Textarea(value=sequence, description="sequence"),
        modality=widgets.Dropdown(options=list(MODALITIES), value=modality, description="modality"),
        mode=widgets.Dropdown(options=["masked", "unmasked"], value="masked", description="mode"),
        temperature=widgets.FloatLogSlider(
            value=0.1, base=10, min=-2, max=1, step=0.1, description="temperature"
        ),
    )
