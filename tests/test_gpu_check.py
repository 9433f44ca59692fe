"""``benchmarks/gpu_check.sh`` stays runnable: every Python step it runs is run here, on CPU, at tiny sizes.

The script's ``$PY ...`` command lines are read from the script itself (continuation lines joined), so a
renamed flag, a moved import or a deleted test file fails here rather than on a lent GPU. Each benchmark gets
the script's own arguments followed by tiny-size overrides (argparse keeps the last value); ``pytest`` steps are
checked for their test files, not run (they are this suite).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
TINY = {  # script -> overrides appended to its arguments from gpu_check.sh
    "gpu_check.py": {
        "sdpa": ["--device", "cpu", "--shapes", "2", "--max-batch", "9", "--max-length", "24"],
        "syncs": ["--device", "cpu", "--n", "6", "--token-budget", "64"],
        "vllm": ["--device", "cpu"],
    },
    "reward_throughput.py": [
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--arch",
        "UME_tiny",
        "--n",
        "6",
        "--masked-n",
        "3",
        "--variant-n",
        "6",
        "--variant-masked-n",
        "3",
        "--variant-rounds",
        "1",
    ],
    "grpo_step.py": [
        "--device",
        "cpu",
        "--policy",
        "tiny",
        "--ume",
        "UME_tiny",
        "--dtype",
        "fp32",
        "--completions",
        "4",
        "--num-generations",
        "2",
        "--max-new-tokens",
        "3",
    ],
}


def python_steps() -> list[list[str]]:
    """Each ``$PY`` command line of gpu_check.sh as an argument list (after ``$PY``), pipes and redirects cut."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    steps = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") or "$PY " not in line:
            continue
        command = line.split("$PY ", 1)[1]
        command = re.split(r"\s(?:\||2>&1|>)", command)[0]
        steps.append(shlex.split(command))
    return steps


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"gpu_check_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_the_script_runs_python_only_through_files_this_test_reaches():
    text = SCRIPT.read_text()
    assert "<<" not in text, (
        "a heredoc Python step cannot be run by tests/test_gpu_check.py: put it in gpu_check.py"
    )
    steps = python_steps()
    scripts = {Path(s[0]).name for s in steps if s[0] not in ("-m", "-c")}
    assert scripts == set(TINY), scripts
    assert {s[1] for s in steps if Path(s[0]).name == "gpu_check.py"} == set(TINY["gpu_check.py"])


def test_the_pytest_steps_name_existing_test_files_and_inline_code_compiles():
    for step in python_steps():
        if step[0] == "-c":
            compile(step[1], "gpu_check.sh", "exec")
        if step[0] == "-m":
            assert step[1] == "pytest"
            files = [a for a in step[2:] if a.endswith(".py")]
            assert files and all((ROOT / f).is_file() for f in files), step


@pytest.mark.parametrize("index", range(len(python_steps())))
def test_each_python_step_runs_on_cpu_at_tiny_sizes(index, tmp_path, monkeypatch, single_thread):
    step = python_steps()[index]
    if step[0] in ("-m", "-c"):
        pytest.skip("pytest and -c steps: checked above")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = [
        a.replace("$OUT", str(tmp_path)).replace("$PROFILES", str(tmp_path / "profiles")) for a in step[1:]
    ]
    script = Path(step[0]).name
    module = _module(ROOT / step[0])
    overrides = TINY[script][argv[0]] if script == "gpu_check.py" else TINY[script]
    assert "$" not in " ".join(argv), argv  # every shell variable in a Python step is one this test knows
    module.main([*argv, *overrides])
    outs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"]
    for out in outs:
        assert Path(out).is_file()
