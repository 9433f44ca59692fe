"""The package's layers: imports point one way, one import path per name, a small public API."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

import ume_rl

PACKAGE = Path(ume_rl.__file__).resolve().parent

# The layers are folders (plus three root modules). A module may import its own layer and the layers below it;
# training and inspection never import each other.
LAYERS = {
    "rewards": 0,  # tags, the modality table, the rewards; rewards/engine/ scores token ids with a masked LM
    "data": 1,  # the real corpus, the prompt/reference generator, dataset directories on disk
    "models": 2,  # the policy, the UME, public masked LMs, the small UME trained here
    "profiles": 3,
    "training": 4,
    "inspection": 4,
    "cli": 5,
    "lobster_compat": 5,
    "__init__": 5,
}


def _layer(module_path: str) -> str:
    """``ume_rl.rewards.masked_lm`` -> ``rewards``; ``ume_rl.cli`` -> ``cli``."""
    parts = module_path.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(relative.parts)
        yield name.removesuffix(".__init__") if name.endswith(".__init__") else name, path


def _ume_rl_imports(path: Path) -> set[str]:
    """Every ``ume_rl`` module imported anywhere in the file (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ume_rl"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ume_rl"))
    return found


@pytest.mark.parametrize("name,path", list(_modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down_the_layers(name, path):
    own = _layer(name) if name != "ume_rl" else "__init__"
    assert own in LAYERS, f"{name}: add its layer to LAYERS"
    for imported in _ume_rl_imports(path):
        other = _layer(imported)
        assert other in LAYERS, f"{name} imports {imported}, which has no layer"
        assert LAYERS[other] <= LAYERS[own], f"{name} ({own}) imports {imported} ({other}), a layer above it"
        if own != other:
            assert {own, other} != {"training", "inspection"}, f"{name} imports {imported} across layers"


def test_each_name_has_one_import_path():
    """A name importable from two ume_rl modules is a re-export shim (the layers' ``__init__`` hold none)."""
    for name, path in _modules():
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                pytest.fail(f"{name} declares __all__ (a re-export list)")
    for sub in ("rewards", "rewards.engine", "data", "models", "training", "inspection"):
        module = importlib.import_module(f"ume_rl.{sub}")
        public = [
            n for n, v in vars(module).items() if not n.startswith("_") and not isinstance(v, ModuleType)
        ]
        assert public == [], f"ume_rl.{sub} re-exports {public}"


def test_public_api_resolves_and_excludes_internals():
    for name in ume_rl.__all__:
        assert getattr(ume_rl, name) is not None
    for internal in ("outside_zero3", "runs_dir", "TrainRun", "plan_batches", "padded_twin"):
        assert internal not in ume_rl.__all__
    with pytest.raises(AttributeError):
        ume_rl.not_a_name  # noqa: B018


def _defined_names(path: Path) -> set[str]:
    """Names a module defines at top level (functions, classes, assignments), not the ones it imports."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_names_are_imported_from_where_they_are_defined():
    """``from ume_rl.a import n`` must find ``n`` defined in ``a``: importing a name through a module that only
    imported it itself is a re-export by import (the public API in ``ume_rl/__init__.py`` is the one exception)."""
    modules = dict(_modules())
    sources = [path for _, path in modules.items()] + sorted(Path(__file__).parent.glob("test_*.py"))
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ume_rl.")):
                continue
            target = modules.get(node.module)
            assert target is not None, f"{path.name} imports {node.module}, which does not exist"
            defined = _defined_names(target)
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}" in modules
                assert alias.name in defined or submodule, (
                    f"{path.name} imports {alias.name} from {node.module}, which does not define it"
                )
