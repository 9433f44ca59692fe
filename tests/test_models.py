"""Models: the tiny Qwen stand-in, UME loading, and loud failures for what cannot be loaded offline."""

import hashlib
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ume_rl.models.names import KINDS, ModelRef, resolve
from ume_rl.models.policy import build_tiny_qwen, download_qwen, find_qwen_in_cache
from ume_rl.models.ume import build_tiny_ume, load_ume

MESSAGES = [{"role": "user", "content": "Write a DNA sequence between <dna> and </dna>."}]


def _digest(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


def test_tiny_qwen_loads_and_generates(tiny_qwen_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_path)
    assert model.config.model_type == "qwen2"
    assert tokenizer.model_input_names == ["input_ids", "attention_mask"]
    inputs = tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=8, do_sample=True)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(out[0]), str)


def test_tiny_qwen_chat_template_is_chatml(tiny_qwen_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_path)
    text = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWrite a DNA sequence between <dna> and </dna>.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_tiny_qwen_tags_are_single_tokens_and_round_trip(tiny_qwen_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_path)
    for tag in ("<smiles>", "</smiles>", "<protein>", "</protein>", "<dna>", "</dna>"):
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1
    text = "<protein>MKVLAAGIV</protein> and CC(=O)O"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tiny_qwen_is_deterministic(tmp_path, tiny_qwen_path):
    again = build_tiny_qwen(tmp_path / "again", seed=0)
    assert _digest(again) == _digest(tiny_qwen_path)
    other = build_tiny_qwen(tmp_path / "other", seed=1)
    assert _digest(other)["model.safetensors"] != _digest(tiny_qwen_path)["model.safetensors"]


def test_offline_download_fails_fast_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="UME_RL_PROFILE=tiny"):
        download_qwen("Qwen/Qwen2-0.5B-Instruct", cache_dir=tmp_path)


def test_find_qwen_in_cache_returns_newest_snapshot(tmp_path):
    with pytest.raises(FileNotFoundError, match="HF_HUB_CACHE"):
        find_qwen_in_cache(tmp_path)
    old = tmp_path / "models--Qwen--Qwen2-0.5B-Instruct" / "snapshots" / "aaa"
    new = tmp_path / "models--Qwen--Qwen2-0.5B-Instruct" / "snapshots" / "bbb"
    for i, snap in enumerate((old, new)):
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        import os

        os.utime(snap, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "models--Qwen--Qwen2-0.5B-Instruct" / "snapshots" / "incomplete").mkdir()
    assert find_qwen_in_cache(tmp_path) == new
    assert find_qwen_in_cache(tmp_path, repo_id="Qwen/Qwen2-0.5B-Instruct") == new
    with pytest.raises(FileNotFoundError):
        find_qwen_in_cache(tmp_path, repo_id="Qwen/Qwen2-7B")


def test_tiny_ume_is_frozen_eval_padded_and_seeded(tiny_ume):
    assert tiny_ume.model.config.padding == "padded"
    assert not tiny_ume.training and not tiny_ume.model.training
    assert not any(p.requires_grad for p in tiny_ume.parameters())
    again = load_ume("tiny", device="cpu")
    other = load_ume("tiny", device="cpu", seed=1)
    first = next(iter(tiny_ume.state_dict().values()))
    assert torch.equal(first, next(iter(again.state_dict().values())))
    assert not torch.equal(first, next(iter(other.state_dict().values())))


def test_tiny_ume_layouts_share_weights(tiny_ume):
    unpadded = build_tiny_ume(layout="unpadded")
    assert unpadded.model.config.padding == "unpadded"
    a, b = tiny_ume.state_dict(), unpadded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_ume_uses_lobster_tokenizers(tiny_ume):
    ids = tiny_ume.get_tokenizer("nucleotide")(["ACGT"])["input_ids"][0]
    assert len(ids) == 6  # CLS + 4 residues + EOS


def test_unloadable_ume_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*--ume_model_path"):
        load_ume(tmp_path / "nope.ckpt", device="cpu")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        load_ume(tmp_path, device="cpu")
    with pytest.raises(RuntimeError, match="flash_attn"):
        load_ume("tiny", device="cpu", use_flash_attn=True)
    with pytest.raises(ValueError, match="unpadded"):
        build_tiny_ume(layout="padded", use_flash_attn=True)
    with pytest.raises(RuntimeError, match="UME_RL_PROFILE=tiny"):
        load_ume("ume-mini-base-12M", device="cpu")


# ------------------------------------------------------------------------------ real checkpoints, any masked LM


def _save_lightning_checkpoint(ume, path, like_flash_training: bool):
    """Write ``ume`` as Lightning does (``Trainer.save_checkpoint``: state_dict, hyper_parameters, versions)."""
    import lightning

    if (
        like_flash_training
    ):  # a checkpoint trained with flash-attn: no ckpt_path, use_flash_attn in its hparams
        ume.hparams["use_flash_attn"], ume.hparams["ckpt_path"] = True, None
    trainer = lightning.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(ume)
    trainer.save_checkpoint(path)
    return path


@pytest.mark.parametrize("like_flash_training", [True, False])
def test_unpadded_lightning_checkpoint_scores_like_the_padded_model(tmp_path, like_flash_training):
    """Real UME checkpoints are trained with flash-attn (unpadded layout); on CPU they load and score exactly."""
    from ume_rl.rewards.engine.ume_scoring import UmeScorer

    trained = build_tiny_ume(layout="unpadded")
    with torch.no_grad():  # weights no seed reproduces: the checkpoint must be read
        generator = torch.Generator().manual_seed(1)
        for param in trained.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    path = _save_lightning_checkpoint(trained, tmp_path / "ume.ckpt", like_flash_training)
    loaded = load_ume(path, device="cpu")
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    padded = build_tiny_ume(layout="padded")
    padded.model.load_state_dict(trained.model.state_dict())
    padded.eval()
    sequences = ["CCO", "MKVLAAGGW", "ACGTACGTTTGA", "c1ccccc1O", "MK"]
    modalities = ["SMILES", "amino_acid", "nucleotide", "SMILES", "amino_acid"]
    for mode in ("masked", "unmasked"):
        got = UmeScorer(loaded, mode=mode).score(sequences, modalities)
        assert got == pytest.approx(UmeScorer(padded, mode=mode).score(sequences, modalities), abs=1e-5)
    untrained = UmeScorer(build_tiny_ume(layout="padded")).score(sequences, modalities)
    assert max(abs(a - b) for a, b in zip(got, untrained, strict=True)) > 1e-3


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = _save_lightning_checkpoint(build_tiny_ume(layout="unpadded"), tmp_path / "ume.ckpt", True)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or corrupt.*copy or download it again"):
        load_ume(truncated, device="cpu")


def test_masked_lm_round_trips_through_a_local_directory(tmp_path, tiny_mlms):
    from ume_rl.models.masked_lms import build_tiny_masked_lm, load_reward_model
    from ume_rl.rewards.engine.hf_scoring import HFMaskedLMScorer, MaskedLM

    for modality in ("amino_acid", "SMILES", "nucleotide"):
        saved = build_tiny_masked_lm(modality, out_dir=tmp_path / modality)
        loaded = load_reward_model(tmp_path / modality, modality, device="cpu")
        assert isinstance(loaded, MaskedLM) and loaded.modality == modality
        assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())
        sequence = {"amino_acid": "MKVLAAG", "SMILES": "CC(=O)Oc1ccccc1", "nucleotide": "ACGTACGTTA"}[
            modality
        ]
        want = HFMaskedLMScorer(tiny_mlms[modality]).score([sequence], [modality])
        assert HFMaskedLMScorer(saved).score([sequence], [modality]) == pytest.approx(want, abs=1e-6)
        assert HFMaskedLMScorer(loaded).score([sequence], [modality]) == pytest.approx(want, abs=1e-6)
    assert (
        load_reward_model("tiny", "SMILES", device="cpu").model.config.padding == "padded"
    )  # UME names: load_ume
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no complete masked LM"):
        load_reward_model(tmp_path / "empty", "protein", device="cpu")


def test_uncached_hub_model_offline_names_the_fix(monkeypatch, tmp_path):
    from ume_rl.models.masked_lms import load_reward_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match="facebook/esm2_t6_8M_UR50D.*Fix: download it once.*notebook 01"):
        load_reward_model("facebook/esm2_t6_8M_UR50D", "protein", device="cpu")


def test_unknown_ume_name_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"Unknown UME 'does-not-exist'.*ume-mini-base-12M.*'tiny'") as err:
        load_ume("does-not-exist", device="cpu")
    assert "network" not in str(err.value) and "credentials" not in str(err.value)
    # names are matched case-insensitively: this one reaches the registry (offline here) under lobster's spelling
    with pytest.raises(RuntimeError, match="Could not load UME 'ume-mini-base-12M'"):
        load_ume("UME-Mini-Base-12M", device="cpu")
    assert load_ume("TINY", device="cpu").model.config.hidden_size == 64


def _truncated_torch_file(path):
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("not a checkpoint at all"), "is not a PyTorch checkpoint"),
        (_truncated_torch_file, "truncated or corrupt"),
        (
            lambda p: torch.save({"weights": torch.zeros(2)}, p),
            "could not be loaded by UME.load_from_checkpoint",
        ),
    ],
    ids=["empty", "garbage", "truncated", "not-lightning"],
)
def test_a_file_that_is_not_a_lightning_checkpoint_says_so(tmp_path, make, message):
    path = tmp_path / "x.ckpt"
    make(path)
    with pytest.raises((ValueError, RuntimeError), match=message) as err:
        load_ume(path, device="cpu")
    assert "'state_dict', 'hyper_parameters'" in str(err.value)  # what a checkpoint looks like
    assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------------ model names


def test_each_model_name_resolves_to_one_kind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-esm").mkdir()  # a relative name that exists here is that directory, not a hub id
    home = resolve("~/ume.pt")
    assert home == ModelRef("checkpoint", home.location) and "~" not in str(home.location)
    cases = {
        "Tiny": ModelRef("tiny", "tiny"),
        " demo ": ModelRef("demo", "demo"),
        "Demo-ESM": ModelRef("demo-esm", "demo-esm"),
        "runs/models/small_ume.ckpt": ModelRef("checkpoint", Path("runs/models/small_ume.ckpt")),
        "UME-Mini-Base-12M": ModelRef("registry", "UME-Mini-Base-12M"),
        "facebook/esm2_t6_8M_UR50D": ModelRef("hub", "facebook/esm2_t6_8M_UR50D"),
        "gpt2": ModelRef("hub", "gpt2"),
        "my-esm": ModelRef("directory", Path("my-esm")),
        "./not-yet": ModelRef("directory", Path("./not-yet")),
        "/data/models/esm": ModelRef("directory", Path("/data/models/esm")),
        "data/models/esm": ModelRef("directory", Path("data/models/esm")),  # two slashes: never a hub id
    }
    assert {name: resolve(name) for name in cases} == cases
    assert {ref.kind for ref in cases.values()} | {home.kind} == set(KINDS)
    assert [n for n, r in cases.items() if r.is_ume] == [
        "Tiny",
        " demo ",
        "runs/models/small_ume.ckpt",
        "UME-Mini-Base-12M",
    ]
    assert [n for n, r in cases.items() if r.is_local] == [
        "runs/models/small_ume.ckpt",
        "my-esm",
        "./not-yet",
        "/data/models/esm",
        "data/models/esm",
    ]
    with pytest.raises(ValueError, match="empty model name"):
        resolve("  ")


def test_loaders_read_names_with_the_resolver(tmp_path, monkeypatch):
    """The reward-model loader sends every UME kind to load_ume (demo included) and the rest to transformers."""
    from ume_rl.models.masked_lms import build_tiny_masked_lm, load_reward_model

    with pytest.raises(ValueError, match="'demo' UME is trained and cached under a runs directory"):
        load_reward_model("demo", "protein", device="cpu")
    with pytest.raises(FileNotFoundError, match="UME checkpoint .*missing.pth does not exist"):
        load_reward_model(tmp_path / "missing.pth", "DNA", device="cpu")
    build_tiny_masked_lm("amino_acid", out_dir=tmp_path / "esm")
    monkeypatch.chdir(tmp_path)
    assert load_reward_model("esm", "protein", device="cpu").name == "esm"  # relative directory, not a hub id


def test_download_models_fetches_only_hub_models(tmp_path):
    """UMEs and local directories are never downloaded: download_models reports them as they are named."""
    from ume_rl.models.masked_lms import build_tiny_masked_lm
    from ume_rl.training.run import download_models

    build_tiny_masked_lm("amino_acid", out_dir=tmp_path / "esm")
    found = download_models(
        "tiny", reward_models={"protein": str(tmp_path / "esm")}, output_dir=tmp_path / "o"
    )
    assert (Path(found.pop("policy")) / "config.json").is_file()  # the tiny policy, built under runs/models
    assert found == {"SMILES": "tiny", "amino_acid": str(tmp_path / "esm"), "nucleotide": "tiny"}
