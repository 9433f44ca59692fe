"""The modality table holds every modality fact: outside it, modality names appear only where a table is read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ume_rl
from ume_rl.models.masked_lms import build_tiny_masked_lm
from ume_rl.rewards.engine.ume_scoring import DEFAULT_MAX_CHARS, UmeScorer
from ume_rl.rewards.modalities import MODALITY_TABLE, TAG_TOKENS

PACKAGE = Path(ume_rl.__file__).resolve().parent
MODALITY_STRINGS = frozenset({"smiles", "protein", "dna", "SMILES", "amino_acid", "nucleotide"})

# Modules that still spell a modality in code, each to become a reader of the table (issue 17, item 5). The list
# only shrinks: a module that no longer needs its entry fails the test until the entry goes.
PENDING = {
    "data/corpus.py": "per-modality source branches and column names",
    "data/generate.py": "the SMILES source choice for extra warm-start references (MOSES vs the corpus)",
    "data/moses.py": "MOSES's CSV column header 'SMILES' (a file format, not a modality fact)",
    "data/sources.py": "which source file feeds which modality (the source table's modality column)",
    "inspection/probes.py": "SMILES-specific probe branches",
    "inspection/quality.py": "per-modality probe kinds and sample sizes",
    "inspection/widgets.py": "the panel's default modality",
    "rewards/novelty.py": "the SMILES scaffold branch of the novelty buckets",
    "models/small_ume.py": "SMILES-specific span sampling in the small UME's training batches",
    "rewards/tags.py": "the RDKit branch and bare-sequence detection order",
    "training/realism.py": "per-modality realism metrics (GC content, known SMILES)",
}


def _code_strings(path: Path) -> list[int]:
    """Line numbers of string constants equal to a modality name, docstrings excluded."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in MODALITY_STRINGS and id(node) not in docstrings
    )


def test_modality_names_appear_only_in_the_table():
    found = {
        path.relative_to(PACKAGE).as_posix(): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() != "rewards/modalities.py" and (lines := _code_strings(path))
    }
    new = {module: lines for module, lines in found.items() if module not in PENDING}
    assert not new, f"modality facts outside ume_rl/rewards/modalities.py (read them from the table): {new}"
    done = sorted(set(PENDING) - set(found))
    assert not done, f"these modules read the table now: remove them from PENDING: {done}"


def test_the_scan_sees_a_modality_branch(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Docstring naming "SMILES" is fine."""\n\ndef f(m):\n    return m == "nucleotide"\n')
    assert _code_strings(module) == [4]


def test_tag_tokens_come_from_the_table_and_are_whole_policy_tokens(tiny_qwen_path):
    from transformers import AutoTokenizer

    assert tuple(f"<{s}{spec.tag}>" for spec in MODALITY_TABLE.values() for s in ("", "/")) == TAG_TOKENS
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_path)
    for token in TAG_TOKENS:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("modality", list(MODALITY_TABLE))
def test_each_modality_has_an_offline_stand_in_of_its_public_masked_lm(modality):
    lm = build_tiny_masked_lm(modality)
    family = MODALITY_TABLE[modality].public_masked_lm
    expected = {"chemberta": "roberta", "esm2": "esm", "nucleotide_transformer": "esm"}[family]
    assert lm.modality == modality and lm.model.config.model_type == expected
    if family != "chemberta":  # ESM-2 rotary positions, Nucleotide Transformer learned ones
        rotary = lm.model.config.position_embedding_type == "rotary"
        assert rotary == (family == "esm2")


def test_default_max_chars_is_what_fits_the_ume(tiny_ume):
    scorer = UmeScorer(tiny_ume)
    assert scorer.max_length * scorer.longest_residue_token == DEFAULT_MAX_CHARS
