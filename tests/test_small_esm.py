"""Small ESM-style models (rotary positions, one per modality): tokenizers, training, caching, the demo-esm name."""

import json

import pytest
import torch

from ume_rl.models import small_esm
from ume_rl.models.integrity import MANIFEST_NAME
from ume_rl.models.names import resolve
from ume_rl.rewards.modalities import MODALITIES

FAST = small_esm.SmallEsmConfig(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    steps=120,
    token_shares=(4.0, 1.0, 1.0),  # protein and DNA need ~20 steps to learn their residue frequencies
    batch_tokens=512,
    pack_pool=256,  # 120 steps of 512 tokens: smaller pools than the default's suffice
    warmup_steps=3,
    lr=5e-3,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, real_corpus):
    folder = tmp_path_factory.mktemp("small_esm")
    return small_esm.train_small_esm(folder, real_corpus, FAST)


def test_tokenizers_split_residues_and_smiles_atoms():
    smiles = small_esm.build_tokenizer("SMILES", ["CCl", "c1ccccc1Br", "C[NH3+]", "C%10CC%10"])

    def tokens(text):
        return smiles.convert_ids_to_tokens(smiles(text)["input_ids"])

    # a seen bracket atom is one token, an unseen one its characters
    assert tokens("ClCC[NH3+]") == ["<cls>", "Cl", "C", "C", "[NH3+]", "<eos>"]
    assert tokens("C[NH+]") == ["<cls>", "C", "[", "N", "H", "+", "]", "<eos>"]
    assert tokens("C%10") == ["<cls>", "C", "%10", "<eos>"]
    assert smiles("CZC")["input_ids"][2] == smiles.unk_token_id  # a character no training molecule has
    assert tokens("C[Zn+2]")[2] == "<unk>"  # a bracket atom with an unseen character: one <unk>, not a guess
    protein = small_esm.build_tokenizer("amino_acid", ["MKVL", "ACDW"])
    assert protein.convert_ids_to_tokens(protein("MKW")["input_ids"]) == ["<cls>", "M", "K", "W", "<eos>"]
    assert protein.mask_token_id is not None and protein.pad_token_id is not None
    with pytest.raises(ValueError, match="no nucleotide sequence"):
        small_esm.build_tokenizer("nucleotide", [])


def test_config_shares_the_steps_and_checks_itself():
    config = small_esm.SmallEsmConfig(steps=400, token_shares=(2.0, 1.0, 1.0))
    assert [config.steps_of(m) for m in MODALITIES] == [200, 100, 100]
    assert [small_esm.SmallEsmConfig().steps_of(m) for m in MODALITIES] == [3825, 588, 1177]
    assert config.name == "esm_rl_h128_l2_a4_i256-s400-seed0"
    with pytest.raises(ValueError, match="token_shares"):
        small_esm.SmallEsmConfig(token_shares=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="mask_percentage"):
        small_esm.SmallEsmConfig(mask_percentage=1.0)
    with pytest.raises(ValueError, match="shown_as_random"):
        small_esm.SmallEsmConfig(shown_as_mask=0.8, shown_as_random=(0.0, 0.3, 0.1))
    with pytest.raises(ValueError, match="shown_as_random"):
        small_esm.SmallEsmConfig(shown_as_random=(0.0, 0.1))
    with pytest.raises(ValueError, match="pack_pool"):
        small_esm.SmallEsmConfig(pack_pool=0)


def test_masking_shows_picked_tokens_as_mask_random_or_kept():
    tokenizer = small_esm.build_tokenizer("nucleotide", ["ACGT"])
    batch = [{"input_ids": tokenizer("ACGT" * 50)["input_ids"]} for _ in range(40)]
    original = torch.tensor([item["input_ids"] for item in batch])

    def shown(config, modality):
        torch.manual_seed(0)
        out = small_esm.build_masking(config, tokenizer, modality)(batch)
        picked = out["labels"] != -100
        assert torch.equal(out["labels"][picked], original[picked])  # the loss is on the true tokens
        inputs = out["input_ids"][picked]
        as_mask = inputs == tokenizer.mask_token_id
        kept = inputs == original[picked]
        return (
            picked.float().mean().item(),
            as_mask.float().mean().item(),
            (~as_mask & ~kept).float().mean().item(),
        )

    default = small_esm.SmallEsmConfig()
    rate, as_mask, changed = shown(default, "SMILES")  # SMILES: <mask> or kept, never a random token
    assert 0.2 < rate < 0.3 and 0.75 < as_mask < 0.85 and changed == 0.0
    _, as_mask, changed = shown(default, "nucleotide")  # DNA: BERT's 80 / 10 / 10
    assert 0.75 < as_mask < 0.85 and changed > 0.03
    _, as_mask, _ = shown(
        small_esm.SmallEsmConfig(shown_as_mask=1.0, shown_as_random=(0.0, 0.0, 0.0)), "nucleotide"
    )
    assert as_mask == 1.0


def test_training_writes_checked_models_that_learn(trained, real_corpus):
    from ume_rl.models.masked_lms import load_reward_model
    from ume_rl.rewards.masked_lm import make_scorer

    assert small_esm.esm_problem(trained, FAST, real_corpus) is None
    sidecar = json.loads((trained / small_esm.SIDECAR_NAME).read_text())
    for modality in MODALITIES:
        losses = sidecar["runs"][modality]["losses"]
        assert sidecar["runs"][modality]["steps"] == FAST.steps_of(modality)
        # every step a batch of non-pad tokens, within the budget (the loader may draw one batch ahead)
        steps = FAST.steps_of(modality)
        assert steps * 20 < sidecar["runs"][modality]["tokens"] <= (steps + 1) * FAST.batch_tokens
        assert losses[-1] < losses[0] - 0.3  # learnt the residue frequencies at least
        assert (trained / modality / MANIFEST_NAME).is_file()
    model = load_reward_model(trained / "amino_acid", "protein", device="cpu")
    assert type(model.model).__name__ == "EsmForMaskedLM"
    assert model.model.config._attn_implementation == "sdpa"  # trained eager on a CPU; scored with SDPA
    assert model.model.config.position_embedding_type == "rotary"
    scores = make_scorer(model, "amino_acid", mode="masked").score(
        ["MKVLAAGW", "MKVLAAGW"], ["amino_acid"] * 2
    )
    assert scores[0] == scores[1] and -10 < scores[0] < 0


def test_problems_name_what_is_wrong(trained, real_corpus, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    assert (
        small_esm.esm_problem(copy, FAST.__class__(**{**FAST.__dict__, "seed": 1}))
        == "trained with other settings"
    )
    weights = copy / "nucleotide" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert small_esm.esm_problem(copy, FAST).startswith("nucleotide: model.safetensors: sha256 differs")
    (copy / small_esm.SIDECAR_NAME).write_text("{")
    assert small_esm.esm_problem(copy, FAST).startswith("unreadable sidecar")
    assert small_esm.esm_problem(tmp_path / "nothing", FAST).startswith("no sidecar")


def test_demo_esm_name_trains_once_and_retrains_a_corrupt_model(tmp_path, monkeypatch, real_corpus):
    from ume_rl.models.masked_lms import load_reward_model

    monkeypatch.setattr(small_esm, "DEMO_CONFIG", FAST)
    ref = resolve("demo-esm")
    assert ref.kind == "demo-esm" and not ref.is_ume and not ref.is_local
    with pytest.raises(ValueError, match="runs_dir"):
        load_reward_model("demo-esm", "DNA", device="cpu")
    threads = torch.get_num_threads()
    model = load_reward_model("demo-esm", "DNA", device="cpu", runs_dir=tmp_path)
    assert model.modality == "nucleotide"
    folder = tmp_path / "models" / FAST.name
    sidecar = json.loads((folder / small_esm.SIDECAR_NAME).read_text())
    assert sidecar["torch_threads"] == small_esm.DEMO_THREADS
    assert sidecar["background"] == small_esm.background_supported(small_esm.DEMO_THREADS)
    assert torch.get_num_threads() == threads  # restored after training
    stamp = (folder / small_esm.SIDECAR_NAME).stat().st_mtime_ns
    assert small_esm.demo_esm_models(tmp_path) == folder
    assert (folder / small_esm.SIDECAR_NAME).stat().st_mtime_ns == stamp  # reused, not retrained
    (folder / "SMILES" / "model.safetensors").write_bytes(b"truncated")
    assert small_esm.demo_esm_models(tmp_path) == folder
    assert small_esm.esm_problem(folder, FAST, real_corpus) is None  # trained again, whole


needs_background = pytest.mark.skipif(
    not small_esm.background_supported(), reason="background training: Linux (fork), CPU only, 2+ cores"
)


@needs_background
def test_background_training_gives_the_models_trained_alone(trained, real_corpus, tmp_path):
    """The forked process trains protein and DNA on one thread, as alone: the same weights to the bit; SMILES
    trains here on one thread, then two: the same training up to rounding."""
    import numpy as np
    from safetensors.torch import load_file

    threads = torch.get_num_threads()
    folder = small_esm.train_small_esm(tmp_path, real_corpus, FAST, num_threads=2, background=True)
    assert torch.get_num_threads() == threads
    assert small_esm.esm_problem(folder, FAST, real_corpus) is None
    sidecar = json.loads((folder / small_esm.SIDECAR_NAME).read_text())
    alone = json.loads((trained / small_esm.SIDECAR_NAME).read_text())
    assert sidecar["background"] is True and not alone["background"]
    assert list(sidecar["runs"]) == list(MODALITIES) and sidecar["seconds"] > 0
    for modality in ("amino_acid", "nucleotide"):
        ours = load_file(folder / modality / "model.safetensors")
        theirs = load_file(trained / modality / "model.safetensors")
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
        assert sidecar["runs"][modality]["losses"] == alone["runs"][modality]["losses"]
    smiles, smiles_alone = sidecar["runs"]["SMILES"], alone["runs"]["SMILES"]
    assert np.allclose(smiles["losses"], smiles_alone["losses"], rtol=0.02)
    step = smiles["all_threads_from_step"]  # when the other process ended (None: after this one)
    assert step is None or 0 < step < smiles["steps"]


@needs_background
def test_background_failures_raise_and_leave_no_process(real_corpus, tmp_path, monkeypatch):
    import multiprocessing
    import os
    import time

    real = small_esm.train_modality
    threads = torch.get_num_threads()

    def failing(where, how):
        def train(modality, *args, **kwargs):
            if (modality == "SMILES") == (where == "here"):
                how()
            elif where == "here":
                time.sleep(600)  # the other process, still training when this one fails
            return real(modality, *args, **kwargs)

        return train

    def bad_dna():
        raise ValueError("bad DNA")

    def stop():
        raise ValueError("stop here")

    cases = [
        (
            "beside",
            bad_dna,
            RuntimeError,
            r"amino_acid, nucleotide in the background process failed(.|\n)*bad DNA",
        ),
        ("beside", lambda: os._exit(3), RuntimeError, "ended without a result"),
        ("here", stop, ValueError, "stop here"),
    ]
    for i, (where, how, error, message) in enumerate(cases):
        monkeypatch.setattr(small_esm, "train_modality", failing(where, how))
        with pytest.raises(error, match=message):
            small_esm.train_small_esm(tmp_path / str(i), real_corpus, FAST, num_threads=2, background=True)
        assert not multiprocessing.active_children()  # a process still training was stopped, not left behind
        assert torch.get_num_threads() == threads
        assert not (tmp_path / str(i) / small_esm.SIDECAR_NAME).exists()
    with pytest.raises(ValueError, match="num_threads >= 2"):
        small_esm.train_small_esm(tmp_path, real_corpus, FAST, num_threads=1, background=True)
    assert not small_esm.background_supported(1) and not small_esm.background_supported(None)


def test_a_recipe_names_demo_esm_for_a_modality(tmp_path, monkeypatch):
    """``reward_models: {protein: demo-esm}``: validated, not downloaded, trained under the runs directory on first
    use and scored through the any-masked-LM path; the UME scores the other modalities."""
    from ume_rl.data.generate import generate_synthetic_dataset
    from ume_rl.data.store import save_dataset
    from ume_rl.rewards.engine.hf_scoring import MaskedLM
    from ume_rl.training.recipes import load_recipe
    from ume_rl.training.run import TrainRun, download_models

    monkeypatch.setattr(small_esm, "DEMO_CONFIG", FAST)
    monkeypatch.setenv("UME_RL_RUNS_DIR", str(tmp_path / "runs"))
    dataset = tmp_path / "data"
    save_dataset(generate_synthetic_dataset(n_per_modality=3, seed=0, progress=False), dataset)
    settings = {
        "output_dir": tmp_path / "out",
        "dataset_dir": str(dataset),
        "reward_models": {"protein": "demo-esm"},
    }
    found = download_models("tiny", **settings)
    assert found["amino_acid"] == "demo-esm" and not (tmp_path / "runs" / "models" / FAST.name).exists()
    run = TrainRun.prepare(*load_recipe("tiny", **settings))
    models = run.load_reward_models()
    assert isinstance(models["amino_acid"], MaskedLM) and not isinstance(models["SMILES"], MaskedLM)
    assert small_esm.esm_problem(tmp_path / "runs" / "models" / FAST.name, FAST) is None
    identity = run.fingerprint()["reward_models"]["amino_acid"]
    assert identity.startswith("amino_acid manifest sha256:")  # the trained model, not the name
    (reward,) = [r for r in run.build_rewards(models) if hasattr(r, "details")]
    protein = [i for i, m in enumerate(run.dataset["train"]["modality"]) if m == "amino_acid"]
    rows = reward.details(
        [run.dataset["train"]["completion"][i] for i in protein], modality=["amino_acid"] * len(protein)
    )
    assert all(r["reason"] is None and -10 < r["score"] < 0 for r in rows)


def test_quality_benchmark_reads_esm_runs():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "small_ume_quality.py"
    spec = importlib.util.spec_from_file_location("small_ume_quality", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.parse_run(["a", "steps=10"]) == ("a", "ume", {"steps": 10})
    assert bench.parse_run(["b", "arch=esm", "token_shares=(4.0,1.0,1.0)"]) == (
        "b",
        "esm",
        {"token_shares": (4.0, 1.0, 1.0)},
    )
    with pytest.raises(SystemExit, match="SmallEsmConfig field"):
        bench.parse_run(["c", "arch=esm", "position_shift=3"])  # a UME-only field
    with pytest.raises(SystemExit, match="arch must be one of"):
        bench.parse_run(["d", "arch=bert"])
    from ume_rl.inspection.quality import DEFAULT_N

    sizes = bench.parse_sizes(["SMILES=400", "dna=300"])  # any spelling normalize_modality takes
    assert sizes == {**DEFAULT_N, "SMILES": 400, "nucleotide": 300}
    assert bench.parse_sizes([]) == DEFAULT_N
    with pytest.raises(SystemExit, match="MODALITY=N"):
        bench.parse_sizes(["DNA=many"])
    with pytest.raises(SystemExit, match="MODALITY=N"):
        bench.parse_sizes(["RNA=10"])


def test_the_fast_cpu_step_computes_the_models_own_loss_and_gradients(real_corpus):
    from dataclasses import replace

    sequences = real_corpus.sequences("SMILES", "train")[:300]
    tokenizer = small_esm.build_tokenizer("SMILES", sequences)
    config = replace(FAST, pack_pool=64)
    batch = next(iter(small_esm.ModalityBatches(tokenizer, sequences, "SMILES", config, 0)))
    torch.manual_seed(0)
    inputs = small_esm.build_masking(config, tokenizer, "SMILES")([{"input_ids": ids} for ids in batch])
    assert (inputs["attention_mask"] == 0).any()  # padding in the batch, so the masks matter
    torch.manual_seed(0)
    model = small_esm.build_model(config, tokenizer)

    def loss_and_grads(module):
        model.zero_grad()
        loss = module(**inputs)["loss"]
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain_loss, plain_grads = loss_and_grads(model)
    model.set_attn_implementation("eager")
    fast_loss, fast_grads = loss_and_grads(small_esm.PickedTokensLoss(model))
    assert fast_loss == pytest.approx(plain_loss, rel=1e-5)
    assert all(
        torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(fast_grads, plain_grads, strict=True)
    )


def test_larger_pools_waste_fewer_padded_tokens(real_corpus):
    from dataclasses import replace
    from itertools import islice

    sequences = real_corpus.sequences("SMILES", "train")
    tokenizer = small_esm.build_tokenizer("SMILES", sequences)

    def real_share(pool):
        config = replace(small_esm.SmallEsmConfig(), pack_pool=pool)
        batches = list(islice(small_esm.ModalityBatches(tokenizer, sequences, "SMILES", config, 0), 100))
        assert all(len(b) * max(map(len, b)) <= config.batch_tokens for b in batches)
        return sum(len(x) for b in batches for x in b) / sum(len(b) * max(map(len, b)) for b in batches)

    small, default = real_share(256), real_share(small_esm.SmallEsmConfig().pack_pool)
    assert default > small + 0.03  # README: 0.89 -> 0.98 of the padded tokens are real for SMILES


def test_batches_keep_every_example_within_the_token_budget():
    import random

    from ume_rl.models.small_ume import pack_by_length, random_window

    rng = random.Random(0)
    pool = [[0] * rng.randint(3, 60) for _ in range(200)]
    batches = pack_by_length(pool, len, 256, rng)
    assert sorted(map(len, (x for b in batches for x in b))) == sorted(map(len, pool))  # nothing lost
    assert all(max(map(len, b)) * len(b) <= 256 for b in batches)
    windows = [random_window("ACGT" * 50, rng, 20, 100) for _ in range(200)]
    assert all(20 <= len(w) <= 100 and w in "ACGT" * 50 for w in windows)
    assert random_window("ACG", rng, 20, 100) == "ACG"  # shorter than min_crop: the whole sequence


def test_threads_benchmark_times_both_settings(real_corpus, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "small_esm_threads.py"
    spec = importlib.util.spec_from_file_location("small_esm_threads", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    ratio = bench.main(["--steps", "3", "--rounds", "1"])
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads
    assert "1 thread(s)" in out and "2 thread(s)" in out and f"{ratio:.2f}x" in out and ratio > 0


def test_speed_benchmark_times_the_three_settings(real_corpus, capsys, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "small_esm_speed.py"
    spec = importlib.util.spec_from_file_location("small_esm_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    configs = bench.settings(small_esm.SmallEsmConfig())
    assert not configs["plain"].fast_cpu_step and configs["plain"].pack_pool == 256
    assert configs["fast step"].fast_cpu_step and configs["default"] == small_esm.SmallEsmConfig()
    threads = torch.get_num_threads()
    out_json = tmp_path / "speed.json"
    argv = ["--modality", "DNA", "--steps", "2", "--rounds", "1", "--threads", "1", "--out", str(out_json)]
    ratios = bench.main(argv)
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads
    assert set(ratios) == {"plain", "fast step", "default"} and ratios["plain"] == 1.0
    assert all(r > 0 for r in ratios.values()) and "tokens/s" in out
    written = json.loads(out_json.read_text())
    assert written["modality"] == "nucleotide" and written["ratio_of_medians_to_plain"] == ratios


@needs_background
def test_first_use_benchmark_times_both_schedules(real_corpus, capsys, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "small_esm_first_use.py"
    spec = importlib.util.spec_from_file_location("small_esm_first_use", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    out_json = tmp_path / "first_use.json"
    ratio = bench.main(["--steps", "12", "--rounds", "1", "--out", str(out_json)])
    out = capsys.readouterr().out
    assert torch.get_num_threads() == threads
    assert "sequential" in out and "background" in out and f"{ratio:.2f}x" in out and ratio > 0
    written = json.loads(out_json.read_text())
    assert written["ratio_sequential_over_background"] == round(ratio, 3)
    assert written["config"]["steps"] == 12 and set(written["runs"]["background"][0]) == set(MODALITIES)
