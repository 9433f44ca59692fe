"""Generation options: vLLM is checked before any work, the full recipes' generation lines load, and
``benchmarks/grpo_step.py`` refuses unknown or inconsistent generation options."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from ume_rl.cli import main
from ume_rl.profiles import RECIPES_DIR
from ume_rl.training.recipes import load_recipe
from ume_rl.training.validation import VLLM_FIX, vllm_problem

ROOT = Path(__file__).resolve().parents[1]
_find_spec = importlib.util.find_spec


def test_use_vllm_without_vllm_is_one_line_with_the_install_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else _find_spec(name, *a)
    )
    out = tmp_path / "out"
    assert main(["train", "--config", "tiny", "--output_dir", str(out), "--use_vllm", "true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ume-rl train: error: use_vllm=True"), err
    assert "vLLM is not installed" in err[0] and "pip install 'trl[vllm]'" in err[0]
    assert not out.exists()


def test_vllm_problem_names_a_broken_install(monkeypatch):
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else _find_spec(name)
    )

    def broken(name, *a, **k):
        raise RuntimeError("CUDA driver too old\nmore lines")

    monkeypatch.setattr("importlib.import_module", broken)
    assert vllm_problem() == "vllm does not import: RuntimeError: CUDA driver too old"
    assert "trl[vllm]" in VLLM_FIX


@pytest.mark.parametrize("name", ["full", "full-public"])
def test_the_full_recipes_keep_fp32_generation_and_no_vllm(name):
    _, grpo = load_recipe(RECIPES_DIR / f"{name}.yaml")
    assert grpo.cache_implementation is None and grpo.use_vllm is False
    values = (RECIPES_DIR / f"{name}.yaml").read_text()
    assert "\ncache_implementation: null" in values and "\nuse_vllm: false" in values  # stated, not defaulted
    assert "\nmodel_init_kwargs" not in values  # bf16 weights would round away AdamW updates at lr 1e-6


def _grpo_step():
    spec = importlib.util.spec_from_file_location("grpo_step_options", ROOT / "benchmarks" / "grpo_step.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--generation", "fp16"], "unknown generation options ['fp16']"),
        (["--generation", "bf16-gen2x", "--steps", "3"], "must be multiples of 2"),
    ],
)
def test_grpo_step_refuses_bad_generation_options(capsys, argv, message):
    with pytest.raises(SystemExit):
        _grpo_step().main(argv)
    assert message in capsys.readouterr().err
