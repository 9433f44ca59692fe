"""Project files: environment.yml matches pyproject, notebooks are thin, clean and parameterised."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = _pyproject()["project"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = python.split("=")[1]
    lower, upper = re.match(r">=(\S+),<(\S+)", project["requires-python"]).groups()
    assert (
        tuple(map(int, lower.split(".")))
        <= tuple(map(int, version.split(".")))
        < tuple(map(int, upper.split(".")))
    )
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-e .[dev]"], (
        "environment.yml installs the project itself so its pins come from pyproject.toml"
    )
    assert "dev" in project["optional-dependencies"]


# An exact pin or an upper bound ("x==1", "x>=1,<2", "x<2"); plain lower bounds need no reason.
PIN = r'"[\w-]+(==|<|>=[^"]*,\s*<)'


def test_every_pin_has_a_reason():
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    pinned = []
    for i, line in enumerate(lines):
        if re.search(PIN, line):
            pinned.append(line)
            above = i - 1
            while re.search(PIN, lines[above]):  # a pinned pair shares one reason
                above -= 1
            assert lines[above].strip().startswith("#"), f"pin without a reason: {line.strip()}"
    names = {re.match(r'\s*"([\w-]+)', line).group(1) for line in pinned}
    assert {"torch", "torchvision", "lbster", "transformers", "huggingface-hub", "datasets", "trl"} <= names


@pytest.mark.parametrize("name", ["torch", "transformers", "trl", "lbster", "datasets", "accelerate"])
def test_runtime_dependency_declared(name):
    deps = " ".join(_pyproject()["project"]["dependencies"])
    assert re.search(rf"\b{name}\b", deps)


def test_four_numbered_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_clean_and_parameterised(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), (
        "first code cell must be tagged parameters"
    )
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), (
        "commit without outputs"
    )
    source = "\n".join("".join(c["source"]) for c in code)
    assert not re.search(r"^\s*(def|class)\s", source, re.M), "logic belongs in ume_rl, not in the notebook"
    assert "import ume_rl" in source or "from ume_rl" in source
    assert "!pip" not in source


def test_every_public_name_resolves():
    import ume_rl

    for name in ume_rl.__all__:
        assert getattr(ume_rl, name) is not None, name
    with pytest.raises(AttributeError):
        ume_rl.not_a_thing  # noqa: B018


def test_recipes_ship_as_package_data():
    data = _pyproject()["tool"]["setuptools"]["package-data"]["ume_rl"]
    assert "recipes/*.yaml" in data
    assert {p.name for p in (ROOT / "ume_rl" / "recipes").glob("*.yaml")} == {
        "tiny.yaml",
        "full.yaml",
        "full-public.yaml",
    }
