"""MaskedLMReward: the TRL reward contract, invalid reasons, the penalty's scale, statistics, GRPOTrainer."""

from __future__ import annotations

import copy
import logging
import math
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ume_rl.lobster_compat import UMERewardFunction
from ume_rl.rewards.masked_lm import MaskedLMReward
from ume_rl.rewards.modalities import MODALITIES, TAG_TO_MODALITY
from ume_rl.rewards.tags import INVALID_REASONS, completion_text

VALID = ["<smiles>CCO</smiles>", "<protein>MKVLAAGGW</protein>", "<dna>ACGTACGTTTGA</dna>"]


@pytest.fixture(scope="module")
def reward(tiny_ume):
    return MaskedLMReward(tiny_ume, mode="unmasked")


@pytest.fixture(scope="module")
def masked_reward(tiny_ume):
    return MaskedLMReward(tiny_ume)  # default mode


def test_valid_reward_is_score_over_temperature(masked_reward, tiny_ume):
    from ume_rl.rewards.engine.ume_scoring import UmeScorer

    assert masked_reward.mode == "masked"
    rows = masked_reward.details(VALID)
    scores = UmeScorer(tiny_ume, mode="masked").score(["CCO", "MKVLAAGGW", "ACGTACGTTTGA"], MODALITIES)
    assert [r["score"] for r in rows] == pytest.approx(scores, abs=1e-6)
    assert [r["reward"] for r in rows] == pytest.approx([s / 0.1 for s in scores], abs=1e-5)
    assert [r["modality"] for r in rows] == list(MODALITIES)
    assert all(r["reason"] is None and not r["floored"] for r in rows)


def test_standard_and_conversational_formats_agree(reward):
    chat = [[{"role": "assistant", "content": text}] for text in VALID]
    assert reward(chat) == reward(VALID)
    assert (
        completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}])
        == "ab"
    )
    assert completion_text([{"role": "user", "content": "x"}]) == "x"
    assert completion_text(None) is None


@pytest.mark.parametrize(
    ("completion", "reason"),
    [
        ("I cannot answer that", "no_tag"),
        ("<protein> </protein>", "empty"),
        ("<protein>MKVLJ</protein>", "bad_alphabet"),
        ("<dna>ACGU</dna>", "bad_alphabet"),
        ("<smiles>C1CC(</smiles>", "unparsable_smiles"),
        ("<dna>" + "A" * 511 + "</dna>", "too_long"),  # 513 tokens with CLS and EOS; tiny UME max_length 512
        ("<dna>" + "A" * 10**6 + "</dna>", "too_long"),  # rejected before tokenizing
        ("<smiles>CCO</smiles>", "wrong_modality"),  # the row asks for a protein
        ("<smiles>[Og]</smiles>", "unknown_token"),  # RDKit parses it; UME tokenizes it to <unk>
        ("<smiles>c1ccccc1[Fe@@H3]</smiles>", "unknown_token"),
    ],
)
def test_every_invalid_kind_gets_the_penalty(reward, completion, reason):
    modality = "amino_acid" if reason == "wrong_modality" else None
    row = reward.details([completion, VALID[1]], modality=modality)[0]
    assert row["reason"] == reason
    assert row["reward"] == reward.penalty
    assert row["score"] is None and row["sequence"] is None
    assert reward.details([completion], modality=modality)[0]["reason"] == reason  # alone too


def test_longest_fitting_sequence_is_scored(reward):
    row = reward.details(["<dna>" + "A" * 510 + "</dna>"])[0]
    assert row["reason"] is None and math.isfinite(row["score"])


def test_modality_column_as_trl_passes_it(reward):
    texts = ["<dna>ACGT</dna>", "<dna>ACGT</dna>", "<amino_acid>MKV</amino_acid>"]
    rows = reward.details(texts, modality=["amino_acid", "nucleotide", "amino_acid"])
    assert [r["reason"] for r in rows] == ["wrong_modality", None, None]
    assert reward(texts, modality="nucleotide")[2] == reward.penalty
    with pytest.raises(ValueError, match="3 completions but 2"):
        reward(texts, modality=["nucleotide", "nucleotide"])


def test_invalid_never_outscores_valid_with_defaults(masked_reward, tiny_ume):
    from ume_rl.data.generate import generate_synthetic_dataset

    ds = generate_synthetic_dataset(n_per_modality=3, seed=3, progress=False)["full"]
    rewards = masked_reward(ds["completion"], modality=ds["modality"])
    assert masked_reward.penalty < min(rewards)
    # The penalty sits below the uniform-model floor, on the score's own scale.
    uniform = -math.log(tiny_ume.model.config.vocab_size) / masked_reward.temperature
    assert masked_reward.penalty < uniform
    assert masked_reward.penalty == pytest.approx((-math.log(1280) - 2.0) / 0.1)


def test_invalid_never_outscores_valid_for_an_adversarial_ume(tiny_ume):
    """A UME that is confidently wrong everywhere: raw scores far below any fixed penalty."""
    ume = copy.deepcopy(tiny_ume)
    with torch.no_grad():
        ume.model.decoder[1].bias[ume.model.mask_token_id] = 1e4  # every position predicts <mask>
    reward = MaskedLMReward(ume, mode="unmasked")
    logged = {}
    reward([*VALID, "no tag"], log_metric=logged.__setitem__)
    # the logged per-modality mean is of the rewards actually given (floored), not score / temperature
    assert logged["ume_reward/SMILES/mean_reward"] == pytest.approx(reward.score_floor / 0.1)
    assert logged["ume_reward/SMILES/mean_score"] < -1000
    reward.reset_statistics()
    rows = reward.details([*VALID, "no tag"])
    assert all(r["score"] < -1000 for r in rows[:3])  # the raw score is not bounded below ...
    assert all(r["floored"] for r in rows[:3])
    assert min(r["reward"] for r in rows[:3]) > rows[3]["reward"] == reward.penalty  # ... the reward is
    assert reward.get_statistics()["floored"] == 3
    with pytest.raises(ValueError, match="penalty"):
        MaskedLMReward(ume, score_floor=-math.inf)
    unfloored = MaskedLMReward(ume, mode="unmasked", score_floor=-math.inf, penalty=-1e9)
    assert unfloored(VALID[:1])[0] == pytest.approx(rows[0]["score"] / 0.1, rel=1e-6)


def test_internal_errors_are_raised_not_rewarded(tiny_ume):
    ume = copy.deepcopy(tiny_ume)
    with torch.no_grad():
        ume.model.decoder[1].bias.fill_(float("nan"))
    reward = MaskedLMReward(ume, mode="unmasked")
    with pytest.raises(RuntimeError, match="UME score nan"):
        reward(VALID)
    assert reward(["no tag"]) == [reward.penalty]  # nothing to score: nothing can fail


def test_statistics_and_log_metric(tiny_ume):
    reward = MaskedLMReward(tiny_ume, mode="unmasked")
    logged = []
    out = reward(
        prompts=[[{"role": "user", "content": "p"}]] * 5,
        completions=[*VALID, "nothing", "<dna>ACGU</dna>"],
        completion_ids=[[1]] * 5,
        modality=[*MODALITIES, "SMILES", "nucleotide"],
        trainer_state=None,
        log_extra=lambda *a, **k: None,
        log_metric=lambda name, value: logged.append((name, value)),
    )
    assert len(out) == 5
    stats = reward.get_statistics()
    assert (stats["completions"], stats["valid"], stats["invalid"]) == (5, 3, 2)
    assert stats["invalid_reasons"] == {r: int(r in ("no_tag", "bad_alphabet")) for r in INVALID_REASONS}
    assert stats["per_modality"]["SMILES"]["mean_reward"] == pytest.approx(out[0])
    assert stats["mean_reward"] == pytest.approx(sum(out) / 5)
    assert (stats["min_reward"], stats["max_reward"]) == (min(out), max(out))
    names = dict(logged)
    assert names["ume_reward/valid_fraction"] == pytest.approx(0.6)
    assert names["ume_reward/amino_acid/mean_score"] == pytest.approx(out[1] * 0.1)
    reward.reset_statistics()
    assert reward.get_statistics()["completions"] == 0


def test_trl_callable_contract_and_pickle(reward):
    assert reward.__name__ == "ume_reward"
    assert not isinstance(reward, torch.nn.Module)  # TRL would treat a Module as a sequence classifier
    clone = pickle.loads(pickle.dumps(reward))
    assert clone(VALID + ["x"]) == reward(VALID + ["x"])
    with pytest.raises(ValueError, match="temperature"):
        MaskedLMReward(reward.scorer.ume, temperature=0)


def test_penalty_at_or_above_the_lowest_valid_reward_warns(tiny_ume, caplog):
    with caplog.at_level(logging.WARNING, logger="ume_rl.rewards.masked_lm"):
        MaskedLMReward(tiny_ume, mode="unmasked", penalty=-500.0)  # below the floor reward -81.5: fine
        assert not caplog.records
        upstream = UMERewardFunction(tiny_ume, penalty_for_invalid=-5.0, mode="unmasked")  # upstream's value
    assert upstream.penalty == -5.0
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "outscore" in message and "penalty=None" in message and "-91.5" in message


_tag = st.sampled_from(sorted(TAG_TO_MODALITY) + ["DNA", "Protein", "rna"])
_piece = st.one_of(
    st.text(max_size=40),
    _tag.map(lambda t: f"<{t}>"),
    _tag.map(lambda t: f"</{t}>"),
    st.text(alphabet="ACGTMKVLWcC1O()=\u00e9\u4e2d ", max_size=60),
    st.integers(0, 3000).map(lambda n: "ACGT" * n),
)
_completion = st.one_of(
    st.lists(_piece, max_size=8).map("".join),
    st.lists(_piece, max_size=4).map(lambda p: [{"role": "assistant", "content": "".join(p)}]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(completions=st.lists(_completion, max_size=6), modality=st.sampled_from([None, *MODALITIES]))
def test_property_any_completion_gets_a_finite_reward(reward, completions, modality):
    out = reward(completions, modality=modality)
    assert len(out) == len(completions)
    assert all(isinstance(r, float) and math.isfinite(r) for r in out)
    assert all(r == reward.penalty or r > reward.penalty for r in out)


def test_grpo_trainer_step_with_tiny_qwen(tiny_ume, tiny_qwen_path, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from ume_rl.data.generate import generate_synthetic_dataset

    dataset = generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)["full"]
    reward = MaskedLMReward(tiny_ume, mode="unmasked")
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=1,
        logging_steps=1,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(model=str(tiny_qwen_path), reward_funcs=reward, args=args, train_dataset=dataset)
    trainer.train()
    logs = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    assert "rewards/ume_reward/mean" in logs
    assert logs["rewards/ume_reward/mean"] == pytest.approx(reward.get_statistics()["mean_reward"], abs=1e-4)
    assert "ume_reward/valid_fraction" in logs  # logged through TRL's log_metric
    assert reward.get_statistics()["completions"] == 4


# ------------------------------------------------------------------------------ a reward model per modality


@pytest.fixture(scope="module")
def mixed_models(tiny_ume, tiny_mlms):
    """ESM-2-like for proteins, ChemBERTa-like for SMILES, the tiny UME for DNA."""
    return {"protein": tiny_mlms["amino_acid"], "SMILES": tiny_mlms["SMILES"], "nucleotide": tiny_ume}


def test_mixed_models_score_each_modality_with_its_own(mixed_models, tiny_ume, tiny_mlms):
    from ume_rl.rewards.engine.hf_scoring import HFMaskedLMScorer
    from ume_rl.rewards.engine.ume_scoring import UmeScorer

    reward = MaskedLMReward(mixed_models)
    assert {m: type(s).__name__ for m, s in reward.scorers.items()} == {
        "amino_acid": "HFMaskedLMScorer",
        "SMILES": "HFMaskedLMScorer",
        "nucleotide": "UmeScorer",
    }
    rows = reward.details(VALID)
    want = [
        HFMaskedLMScorer(tiny_mlms["SMILES"]).score(["CCO"], ["SMILES"])[0],
        HFMaskedLMScorer(tiny_mlms["amino_acid"]).score(["MKVLAAGGW"], ["amino_acid"])[0],
        UmeScorer(tiny_ume).score(["ACGTACGTTTGA"], ["nucleotide"])[0],
    ]
    assert [r["score"] for r in rows] == pytest.approx(want, abs=1e-6)
    assert [r["reward"] for r in rows] == pytest.approx([s / 0.1 for s in want], abs=1e-5)
    with pytest.raises(ValueError, match="model per modality"):
        reward.scorer  # noqa: B018
    assert MaskedLMReward(tiny_ume, mode="unmasked").scorer is not None  # one UME: one scorer for all
    stats = reward.get_statistics()
    assert stats["models"]["nucleotide"] == "UME" and stats["models"]["amino_acid"].startswith("tiny-esm")


def test_mixed_models_floor_per_vocabulary_and_penalty_below_all(mixed_models, tiny_mlms):
    reward = MaskedLMReward(mixed_models)
    vocab = {
        "amino_acid": 33,
        "SMILES": tiny_mlms["SMILES"].model.config.vocab_size,
        "nucleotide": 1280,
    }
    assert reward.score_floors == pytest.approx({m: -math.log(v) - 1.0 for m, v in vocab.items()})
    assert reward.penalty == pytest.approx((min(reward.score_floors.values()) - 1.0) / 0.1)
    assert reward.penalty < min(f / 0.1 for f in reward.score_floors.values())
    invalid = [
        "no tag",
        "<protein>MKJ</protein>",
        "<smiles>[Og]</smiles>",
        "<protein>" + "A" * 1023 + "</protein>",
    ]
    rows = reward.details(VALID + invalid)
    assert [r["reason"] for r in rows[3:]] == ["no_tag", "bad_alphabet", "unknown_token", "too_long"]
    assert all(r["reward"] == reward.penalty for r in rows[3:])
    assert min(r["reward"] for r in rows[:3]) > reward.penalty


def test_an_adversarial_masked_lm_is_floored_at_its_own_floor(tiny_mlms, tiny_ume):
    import copy

    from ume_rl.rewards.engine.hf_scoring import MaskedLM

    esm = tiny_mlms["amino_acid"]
    model = copy.deepcopy(esm.model)
    with torch.no_grad():
        model.lm_head.bias[esm.tokenizer.mask_token_id] = 1e4  # predicts <mask> everywhere
    reward = MaskedLMReward(
        {"amino_acid": MaskedLM(model, esm.tokenizer, "amino_acid"), "SMILES": tiny_ume, "DNA": tiny_ume}
    )
    row = reward.details(["<protein>MKVL</protein>"])[0]
    assert row["score"] < -1000 and row["floored"]
    assert row["reward"] == pytest.approx(reward.score_floors["amino_acid"] / 0.1)
    assert row["reward"] > reward.penalty


def test_reward_model_mapping_is_checked(tiny_ume, tiny_mlms):
    from ume_rl.rewards.engine.ume_scoring import UmeScorer

    with pytest.raises(ValueError, match="no reward model for"):
        MaskedLMReward({"amino_acid": tiny_mlms["amino_acid"]})
    with pytest.raises(ValueError, match="scores amino_acid, given for SMILES"):
        MaskedLMReward({"SMILES": tiny_mlms["amino_acid"], "amino_acid": tiny_ume, "DNA": tiny_ume})
    with pytest.raises(ValueError, match="mode"):
        MaskedLMReward(
            {"SMILES": UmeScorer(tiny_ume, mode="unmasked"), "amino_acid": tiny_ume, "DNA": tiny_ume}
        )
    with pytest.raises(TypeError, match="MaskedLM"):
        MaskedLMReward({"SMILES": "DeepChem/ChemBERTa-77M-MLM", "amino_acid": tiny_ume, "DNA": tiny_ume})
    shared = MaskedLMReward({"SMILES": tiny_ume, "amino_acid": tiny_ume, "DNA": tiny_mlms["nucleotide"]})
    assert shared.scorers["SMILES"] is shared.scorers["amino_acid"]  # one UME, one scorer


def test_grpo_trainer_step_with_a_model_per_modality(mixed_models, warm_policy_path, tmp_path, single_thread):
    """The warm-started tiny policy writes tagged sequences: each modality's completions are scored by its own
    model inside GRPO, and the step moves the policy."""
    from trl import GRPOConfig, GRPOTrainer

    from ume_rl.data.generate import generate_synthetic_dataset

    dataset = generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False)["full"]
    reward = MaskedLMReward(mixed_models, mode="unmasked")
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=12,
        num_generations=4,
        max_completion_length=100,
        learning_rate=1e-3,
        max_steps=1,
        logging_steps=1,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(model=str(warm_policy_path), reward_funcs=reward, args=args, train_dataset=dataset)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    logs = {k: v for entry in trainer.state.log_history for k, v in entry.items()}
    stats = reward.get_statistics()
    assert logs["rewards/ume_reward/mean"] == pytest.approx(stats["mean_reward"], abs=1e-4)
    assert stats["completions"] == 12 and stats["valid"] > 0
    assert logs["rewards/ume_reward/std"] > 0
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


# ------------------------------------------------------------------ input contract (issue 12, finding 5)


def test_a_bare_string_or_none_is_a_type_error_not_one_completion_per_character(reward):
    before = reward.get_statistics()["completions"]
    with pytest.raises(TypeError, match=r"got one str of 19 characters: pass \[completion\]"):
        reward("<dna>ACGTACGT</dna>")
    with pytest.raises(TypeError, match="got None"):
        reward(None)
    with pytest.raises(TypeError, match="list of completions"):
        reward.details(iter(VALID))
    assert reward.get_statistics()["completions"] == before  # nothing was scored or counted
    assert len(reward(tuple(VALID))) == 3  # a tuple is a list of completions too


@pytest.mark.parametrize(
    ("modality", "error", "message"),
    [
        (3, TypeError, "modality must be None, one modality"),
        ("protien", ValueError, "Unknown modality 'protien'"),
        (["dna", "DNA"], ValueError, "3 completions but 2 modalities"),
        (["dna", "smiles", "rna"], ValueError, r"modality\[2\]: Unknown modality 'rna'"),
        (["dna", 5, None], TypeError, r"modality\[1\] must be a modality name"),
    ],
)
def test_every_modality_value_is_checked_up_front(reward, modality, error, message):
    # none of these completions has a tag: the modality is checked anyway, before anything is read
    with pytest.raises(error, match=message):
        reward(["no tag", "still none", ""], modality=modality)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"temperature": "0.1"}, TypeError, "temperature must be a real number, got str"),
        ({"temperature": True}, TypeError, "temperature must be a real number, got bool"),
        ({"temperature": math.inf}, ValueError, "temperature must be finite and > 0"),
        ({"temperature": math.nan}, ValueError, "temperature must be finite and > 0"),
        ({"temperature": -0.1}, ValueError, "temperature must be finite and > 0"),
        ({"penalty": math.nan}, ValueError, "penalty must be finite"),
        ({"penalty": -math.inf}, ValueError, "penalty must be finite"),
        ({"penalty": "-5"}, TypeError, "penalty must be a real number or None"),
        ({"score_floor": math.nan}, ValueError, "score_floor must be <= 0"),
        ({"score_floor": 2.0}, ValueError, "score_floor must be <= 0"),
        ({"margin": 0}, ValueError, "margin must be finite and > 0"),
        ({"margin": math.inf}, ValueError, "margin must be finite and > 0"),
    ],
)
def test_parameters_are_checked_at_construction(tiny_ume, kwargs, error, message):
    with pytest.raises(error, match=message):
        MaskedLMReward(tiny_ume, mode="unmasked", **kwargs)


@pytest.mark.parametrize("item", [None, 42, b"<dna>ACGT</dna>", {"role": "assistant"}, [{"content": 3}]])
def test_items_that_are_not_completions_are_a_type_error_naming_the_index(reward, item):
    # A caller's bug (None from a failed generation, bytes, a message without content) is not an invalid
    # answer to penalise: the batch is refused before anything is scored.
    before = reward.get_statistics()["completions"]
    with pytest.raises(TypeError, match=r"completions\[1\]"):
        reward.details([VALID[2], item])
    assert reward.get_statistics()["completions"] == before


def test_duplicates_and_cache_hits_in_statistics(tiny_ume):
    group = [VALID[0]] * 4 + [VALID[1]] * 3 + [VALID[2], "no tag"]  # a GRPO group that repeats itself
    plain = MaskedLMReward(tiny_ume, dedup=False)
    reward = MaskedLMReward(tiny_ume, cache_size=16)
    assert reward(group) == pytest.approx(plain(group), abs=1e-4)
    stats, plain_stats = reward.get_statistics(), plain.get_statistics()
    assert (stats["duplicates"], stats["cache_hits"], plain_stats["duplicates"]) == (5, 0, 0)
    assert stats["scored_rows"] < plain_stats["scored_rows"]  # masked: a row per residue, three sequences
    reward(VALID)
    stats = reward.get_statistics()
    assert stats["cache_hits"] == 3 and stats["forwards"] == reward.scorer.stats["forwards"]
    reward.reset_statistics()
    assert reward.get_statistics()["cache_hits"] == 0


def test_a_model_per_modality_dedups_and_caches_per_scorer(mixed_models):
    """Statistics sum over the reward's scorers; each scorer answers only its own sequences from its cache."""
    group = [VALID[0]] * 3 + [VALID[1]] * 2 + [VALID[2]] * 2
    plain = MaskedLMReward(mixed_models, dedup=False)
    reward = MaskedLMReward(mixed_models, cache_size=8)
    assert reward(group) == pytest.approx(plain(group), abs=1e-4)
    stats = reward.get_statistics()
    assert (stats["duplicates"], stats["cache_hits"]) == (4, 0)
    assert stats["scored_rows"] < plain.get_statistics()["scored_rows"]
    reward(VALID)
    assert reward.get_statistics()["cache_hits"] == 3
    assert all(len(s.memo) == 1 for s in reward.scorers.values())  # one sequence each, never shared
