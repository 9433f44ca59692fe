"""HFMaskedLMScorer: the engine on tiny ESM-2-, ChemBERTa- and Nucleotide-Transformer-shaped models."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from ume_rl.rewards.engine.hf_scoring import HFMaskedLMScorer, MaskedLM, model_max_length

SEQS = {
    "amino_acid": ["MKVLAAGGW", "MK", "ACDEFGHIKLMNPQRSTVWY"],
    "SMILES": ["CCO", "c1ccccc1O", "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O"],
    "nucleotide": ["ACGTACGTTTGA", "ACGTACGTACGTA", "GATTACA" * 5],  # 2, 2 + 1 and 5 + 5 tokens after CLS
}


@torch.no_grad()
def naive(mlm: MaskedLM, sequences, masked: bool) -> list[tuple[float, int]]:
    """Reference: one sequence per forward through the model's own ``forward`` (logits everywhere); masked: one
    forward per position. Returns (sum of log-probs over non-special tokens, their number)."""
    special = set(mlm.tokenizer.all_special_ids)
    out = []
    for sequence in sequences:
        ids = mlm.tokenizer(sequence)["input_ids"]
        x = torch.tensor([ids])
        positions = [i for i, t in enumerate(ids) if t not in special]
        total = 0.0
        if masked:
            for p in positions:
                y = x.clone()
                y[0, p] = mlm.tokenizer.mask_token_id
                logits = mlm.model(input_ids=y, attention_mask=torch.ones_like(y)).logits
                total += torch.log_softmax(logits[0, p], -1)[ids[p]].item()
        else:
            logp = torch.log_softmax(mlm.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0], -1)
            total = sum(logp[p, ids[p]].item() for p in positions)
        out.append((total, len(positions)))
    return out


@pytest.mark.parametrize("normalize", ["residue", "token"])
@pytest.mark.parametrize("mode", ["masked", "unmasked"])
@pytest.mark.parametrize("modality", ["amino_acid", "SMILES", "nucleotide"])
def test_matches_naive_reference(tiny_mlms, modality, mode, normalize, single_thread):
    mlm = tiny_mlms[modality]
    seqs = SEQS[modality]
    scorer = HFMaskedLMScorer(mlm, mode=mode, token_budget=48, normalize=normalize)  # several batches
    got = scorer.score(seqs, [modality] * len(seqs))
    reference = naive(mlm, seqs, masked=mode == "masked")
    per = [len(s) for s in seqs] if normalize == "residue" else [n for _, n in reference]
    assert got == pytest.approx([total / d for (total, _), d in zip(reference, per, strict=True)], abs=1e-4)
    assert all(s < 0 for s in got)
    assert scorer.stats["forwards"] > 1


def test_special_tokens_and_lengths_follow_each_tokenizer(tiny_mlms):
    protein, smiles, dna = (HFMaskedLMScorer(tiny_mlms[m]) for m in ("amino_acid", "SMILES", "nucleotide"))
    assert protein.specials == smiles.specials == (1, 1)  # <cls> … <eos>, <s> … </s>
    assert dna.specials == (1, 0)  # the Nucleotide Transformer adds <cls> only
    assert (protein.max_length, smiles.max_length, dna.max_length) == (1024, 512, 1000)
    assert model_max_length(tiny_mlms["nucleotide"].model, tiny_mlms["nucleotide"].tokenizer) == 1000
    # 6-mers: per residue and per token differ; one-residue tokens (ESM-2): identical
    per_token = HFMaskedLMScorer(tiny_mlms["nucleotide"], normalize="token").score(["ACGTACG"], ["DNA"])[0]
    assert dna.score(["ACGTACG"], ["DNA"])[0] == pytest.approx(per_token * 2 / 7)  # 2 tokens, 7 nucleotides
    assert protein.score(["MKVL"], ["protein"]) == HFMaskedLMScorer(
        tiny_mlms["amino_acid"], normalize="token"
    ).score(["MKVL"], ["protein"])


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
@pytest.mark.parametrize("modality", ["amino_acid", "SMILES", "nucleotide"])
def test_batch_invariance_and_order(tiny_mlms, modality, mode, single_thread):
    scorer = HFMaskedLMScorer(tiny_mlms[modality], mode=mode)
    seqs = SEQS[modality] + [SEQS[modality][0] * 3]
    mods = [modality] * len(seqs)
    alone = scorer.score(seqs[:1], mods[:1])[0]
    crowded = scorer.score(seqs, mods)
    assert crowded[0] == pytest.approx(alone, abs=1e-5)
    assert scorer.score(seqs, mods) == crowded
    assert scorer.score(seqs[::-1], mods) == pytest.approx(crowded[::-1], abs=1e-5)
    one_per_forward = HFMaskedLMScorer(tiny_mlms[modality], mode=mode, token_budget=1).score(seqs, mods)
    assert one_per_forward == pytest.approx(crowded, abs=1e-5)


def test_esm_token_dropout_batches_never_mix_lengths(tiny_mlms):
    """transformers' ESM rescales embeddings by the masked fraction of the padded width: mixing lengths in a
    masked batch would change the scores, so masked batches of a token_dropout model hold one length."""
    scorer = HFMaskedLMScorer(tiny_mlms["amino_acid"], mode="masked")
    ids = scorer.encode(["MK", "MKVLAAGGW"], ["amino_acid"] * 2)
    for _, host, _, _ in scorer._batches(ids):
        assert host["min_len"] == host["max_seqlen"]
    assert not HFMaskedLMScorer(tiny_mlms["SMILES"], mode="masked")._same_length("padded")


def test_unknown_and_too_long_are_nan_never_truncated(tiny_mlms):
    protein = HFMaskedLMScorer(tiny_mlms["amino_acid"], mode="unmasked")
    scores = protein.score(["MKJ", "A" * 1022, "A" * 1023, "MKV"], ["amino_acid"] * 4)  # J is <unk> in ESM-2
    assert [math.isnan(s) for s in scores] == [True, False, True, False]
    assert protein.stats["unknown_token"] == 1 and protein.stats["too_long"] == 1
    assert [protein.invalid_reason(t) for t in protein.encode(["MKJ", "A" * 1023], ["protein"] * 2)] == [
        "unknown_token",
        "too_long",
    ]
    smiles = HFMaskedLMScorer(tiny_mlms["SMILES"], mode="unmasked", max_length=10)
    scores = smiles.score(["[Og]", "C" * 40, "CCO"], ["SMILES"] * 3)  # 'g' is no SMILES character of the BPE
    assert math.isnan(scores[0]) and math.isnan(scores[1]) and math.isfinite(scores[2])
    dna = HFMaskedLMScorer(tiny_mlms["nucleotide"], mode="unmasked")
    assert math.isnan(dna.score(["ACGTXACGTA"], ["DNA"])[0])


def test_inputs_are_checked(tiny_mlms):
    scorer = HFMaskedLMScorer(tiny_mlms["amino_acid"], mode="unmasked")
    with pytest.raises(ValueError, match="scores amino_acid only"):
        scorer.score(["CCO"], ["SMILES"])
    with pytest.raises(ValueError, match="no residue"):
        scorer.score(["MKV", ""], ["protein"] * 2)
    with pytest.raises(ValueError, match="normalize"):
        HFMaskedLMScorer(tiny_mlms["amino_acid"], normalize="char")
    with pytest.raises(ValueError, match="Unknown modality"):
        MaskedLM(tiny_mlms["amino_acid"].model, tiny_mlms["amino_acid"].tokenizer, "rna")
    assert MaskedLM(None, None, "Protein").modality == "amino_acid"
    assert scorer.score([], []) == []
    clone = pickle.loads(pickle.dumps(scorer))
    assert clone.score(["MKVL"], ["protein"]) == scorer.score(["MKVL"], ["protein"])


def test_encoder_only_is_the_base_model_over_the_packed_batches(tiny_mlms):
    scorer = HFMaskedLMScorer(tiny_mlms["amino_acid"], mode="unmasked", token_budget=32)
    ids = scorer.encode(SEQS["amino_acid"], ["amino_acid"] * 3)
    outputs = scorer.encoder_only(ids)()
    scorer.score_ids(ids)
    assert len(outputs) == scorer.stats["forwards"] > 1
    assert outputs[0].last_hidden_state.shape[-1] == tiny_mlms["amino_acid"].model.config.hidden_size


def test_bf16_autocast_is_close(tiny_mlms):
    fp32 = HFMaskedLMScorer(tiny_mlms["SMILES"], mode="unmasked").score(SEQS["SMILES"], ["SMILES"] * 3)
    bf16 = HFMaskedLMScorer(tiny_mlms["SMILES"], mode="unmasked", dtype="bf16").score(
        SEQS["SMILES"], ["SMILES"] * 3
    )
    assert bf16 == pytest.approx(fp32, abs=0.05)


@pytest.mark.parametrize("mode", ["masked", "unmasked"])
@pytest.mark.parametrize("modality", ["amino_acid", "SMILES", "nucleotide"])
def test_shape_ladder_is_exact_for_every_special_token_layout(tiny_mlms, modality, mode, single_thread):
    """pad_shapes widens and adds rows (never scored) for CLS … EOS and CLS-only tokenizers alike; masked ESM with
    token_dropout keeps its own widths (the ladder is off there)."""
    mlm = tiny_mlms[modality]
    seqs = SEQS[modality] + [SEQS[modality][0] * 2]
    plain = HFMaskedLMScorer(mlm, mode=mode, pad_shapes=False).score(seqs, [modality] * len(seqs))
    scorer = HFMaskedLMScorer(mlm, mode=mode, pad_shapes=True)
    assert scorer.score(seqs, [modality] * len(seqs)) == pytest.approx(plain, abs=1e-5)
    ladder_on = scorer._ladder(torch.device("cpu"), scorer._layout()) is not None
    token_dropout = bool(getattr(mlm.model.config, "token_dropout", False))
    assert ladder_on == (not (mode == "masked" and token_dropout))
    if ladder_on:
        assert scorer.stats["padded_tokens"] > scorer.stats["tokens"]
        assert scorer.warmup() > 0


def test_dedup_and_cache_are_per_scorer(tiny_mlms):
    """Two scorers over the same tokenizer never answer from each other's cache (the key names the model)."""
    mlm = tiny_mlms["amino_acid"]
    first = HFMaskedLMScorer(mlm, cache_size=4)
    token = HFMaskedLMScorer(mlm, cache_size=4, normalize="token")
    seqs = ["MKVL", "MKVL", "ACDE"]
    assert first.score(seqs, ["protein"] * 3)[0] == first.score(seqs, ["protein"] * 3)[1]
    assert (first.stats["duplicates"], first.stats["cache_hits"]) == (2, 2)
    assert token.score(["MKVL"], ["protein"]) and token.stats["cache_hits"] == 0
    assert first._memo_tag() != token._memo_tag()
    assert first._memo_tag() != HFMaskedLMScorer(tiny_mlms["SMILES"])._memo_tag()
