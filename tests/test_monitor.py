"""The live monitor: realism and audit values of a batch, the hacking verdict, and a real GRPO run logging them."""

from __future__ import annotations

import json
import random

import pytest

from ume_rl.rewards.baselines import ContextAudit
from ume_rl.training.monitor import RealismMonitor, audit_values, hacking_verdict
from ume_rl.training.realism import RealismSuite

AMINO = "ACDEFGHIKLMNPQRSTVWY"
PROMPT = "Generate a protein sequence. Put it inside <protein></protein> tags."


def _proteins(n, seed, length=60):
    rng = random.Random(seed)
    return ["".join(rng.choice(AMINO) for _ in range(length)) for _ in range(n)]


@pytest.fixture(scope="module")
def monitor():
    train = {"amino_acid": _proteins(60, 0, 80)}
    suite = RealismSuite(train, {"amino_acid": _proteins(30, 1)})
    return RealismMonitor(suite, [ContextAudit(train)], {PROMPT: "amino_acid"})


def _history(monitor, batches, rewards):
    """A log history as the monitor writes it: each step's completions read, realism and audit added."""
    history = []
    for step, (completions, reward) in enumerate(zip(batches, rewards, strict=True), start=1):
        entry = {"reward": reward, "step": step}
        entry.update(monitor.step_values([PROMPT] * len(completions), completions))
        history.append(entry)
    return history


def test_step_values_read_tags_and_count_invalid_completions(monitor):
    completions = [f"<protein>{s}</protein>" for s in _proteins(3, 2)] + ["no tag here"]
    values = monitor.step_values([PROMPT] * 4, completions)
    assert values["realism/protein/valid"] == 0.75
    assert values["realism/protein/unique"] == 1.0
    assert values["audit/context_audit/protein"] < 0 and "audit/context_audit" in values
    assert audit_values(monitor.audits, ["amino_acid"], [None]) == {}  # nothing valid: nothing audited


def test_a_homopolymer_policy_raising_the_reward_is_flagged(monitor):
    real = [[f"<protein>{s}</protein>" for s in _proteins(8, 10 + i)] for i in range(6)]
    drifting = real[:2] + [[f"<protein>{'L' * 60}</protein>"] * 8 for _ in range(4)]
    rising = [-30.0, -29.0, -25.0, -20.0, -15.0, -10.0]
    verdict = hacking_verdict(_history(monitor, drifting, rising), monitor.reference)
    assert verdict.hacking and "REWARD HACKING" in verdict.message
    worse = verdict.table.index[verdict.table["worse"]].tolist()
    assert "realism/protein/aa_kl" in worse and "realism/protein/int_div" in worse

    honest = hacking_verdict(_history(monitor, real, rising), monitor.reference)
    assert not honest.hacking and "No sign" in honest.message
    falling = hacking_verdict(_history(monitor, drifting, rising[::-1]), monitor.reference)
    assert not falling.hacking and "did not rise" in falling.message
    assert "Too few" in hacking_verdict([{"reward": 1.0}]).message


def test_a_grpo_run_logs_realism_and_audit_beside_the_reward(
    tmp_path, tiny_qwen_path, tiny_ume, protein_prompts, single_thread
):
    from ume_rl.rewards.masked_lm import MaskedLMReward
    from ume_rl.training.config import build_grpo_config
    from ume_rl.training.trainer import build_trainer

    train = {"amino_acid": _proteins(40, 0, 80)}
    prompts = dict(zip(protein_prompts["prompt_text"], protein_prompts["modality"], strict=True))
    monitor = RealismMonitor(
        RealismSuite(train, {"amino_acid": _proteins(20, 1)}), [ContextAudit(train)], prompts
    )
    args = build_grpo_config(tmp_path, batch_size=4, max_steps=2, max_completion_length=8, logging_steps=1)
    trainer = build_trainer(
        tiny_qwen_path,
        [MaskedLMReward(tiny_ume, mode="unmasked")],
        protein_prompts,
        args=args,
        callbacks=[monitor],
    )
    assert trainer.callback_handler.callbacks[0] is monitor  # before any reporter
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert 0.0 <= entry["realism/protein/valid"] <= 1.0
        assert "realism/protein/aa_kl" in entry  # None when no completion was valid
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert set(verdict) >= {"hacking", "reward_change", "message"}


def test_masked_lm_audit_scores_with_another_model(tiny_mlms, single_thread):
    from ume_rl.training.monitor import MaskedLMAudit

    audit = MaskedLMAudit({"protein": tiny_mlms["amino_acid"]})
    assert audit.modalities == ("amino_acid",) and audit.__name__ == "masked_lm_audit"
    scores = audit.scores(["MKTAYIAKQR", "ACDEFGHIK"], "amino_acid")
    assert len(scores) == 2 and all(s < 0 for s in scores)  # mean log-probabilities
    values = audit_values([audit], ["amino_acid", "amino_acid", "SMILES"], ["MKTAYIAKQR", None, "CCO"])
    assert set(values) == {"audit/masked_lm_audit/protein", "audit/masked_lm_audit"}
    assert values["audit/masked_lm_audit"] == pytest.approx(scores[0])


def test_recipe_audit_models_key(tmp_path):
    from ume_rl.training.recipes import load_recipe

    script, _ = load_recipe(
        "tiny", output_dir=str(tmp_path / "a"), audit_models='{"protein": "facebook/esm2"}'
    )
    assert script.audit_models == {"amino_acid": "facebook/esm2"} and script.monitor is True
    with pytest.raises(ValueError, match="audit_models must be a mapping"):
        load_recipe("tiny", output_dir=str(tmp_path / "b"), audit_models="[1, 2]")
