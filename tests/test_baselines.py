"""Count baselines (moved from inspection.quality) and the character-level audit scorer."""

import math
import random

import pytest

from ume_rl.rewards.baselines import ContextAudit, ContextBaseline, char_ids


def _reference_score(train, ids, alpha):
    """The baseline written out by hand: count, then back off ±2 -> ±1 -> unigram (add-one)."""
    from collections import Counter

    def contexts(s, i):
        out = lambda j: s[j] if 0 <= j < len(s) else None  # noqa: E731
        return (s[i - 1], s[i + 1]), (out(i - 2), s[i - 1], s[i + 1], out(i + 2))

    unigram, near, far = Counter(), Counter(), Counter()
    for s in train:
        for i in range(1, len(s) - 1):
            n, f = contexts(s, i)
            unigram[s[i]] += 1
            near[n, s[i]] += 1
            far[f, s[i]] += 1
    near_total = Counter({k: sum(v for (c, _), v in near.items() if c == k) for k, _ in near})
    far_total = Counter({k: sum(v for (c, _), v in far.items() if c == k) for k, _ in far})
    logs = []
    for i in range(1, len(ids) - 1):
        n, f = contexts(ids, i)
        p = (unigram[ids[i]] + 1) / (sum(unigram.values()) + len(unigram) + 1)
        p = (near[n, ids[i]] + alpha * p) / (near_total[n] + alpha) if near_total[n] else p
        p = (far[f, ids[i]] + alpha * p) / (far_total[f] + alpha) if far_total[f] else p
        logs.append(math.log(p))
    return sum(logs) / len(logs)


def test_context_baseline_matches_its_definition():
    rng = random.Random(0)
    train = [[0, *rng.choices([5, 6, 7, 8], k=rng.randint(1, 12)), 2] for _ in range(40)]
    base = ContextBaseline(alpha=2.0).fit(train, alphas=())
    for ids in ([0, 5, 6, 7, 2], [0, 8, 2], [0, 6, 6, 5, 7, 8, 5, 2], train[3]):
        assert base.score(ids) == pytest.approx(_reference_score(train, ids, 2.0), abs=1e-12)


def test_context_baseline_learns_local_order():
    train = [[0, *([5, 6, 7] * 10), 2] for _ in range(30)]
    base = ContextBaseline().fit(train)
    assert base.score([0, 5, 6, 7, 5, 6, 7, 2]) > base.score([0, 7, 6, 5, 7, 6, 5, 2])
    assert base.score([0, 5, 6, 7, 2], order=0) == base.score(
        [0, 7, 6, 5, 2], order=0
    )  # unigram: order-blind


def test_char_ids_wrap_characters_and_refuse_empty():
    assert char_ids("AC") == [1, ord("A") + 3, ord("C") + 3, 2]
    with pytest.raises(ValueError, match="empty"):
        char_ids("")


def test_context_audit_prefers_real_like_sequences_to_a_homopolymer():
    rng = random.Random(0)
    real = ["".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(60)) for _ in range(50)]
    audit = ContextAudit({"amino_acid": real, "SMILES": []})
    assert audit.modalities == ("amino_acid",)
    held_out = "".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(60))
    real_score, homopolymer = audit.scores([held_out, "W" * 60], "protein")
    assert real_score > homopolymer
    assert audit.scores([], "amino_acid") == []
    with pytest.raises(KeyError, match="SMILES"):
        audit.scores(["CCO"], "SMILES")
