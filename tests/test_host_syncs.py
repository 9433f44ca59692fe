"""One device-to-host synchronisation per ``score()`` call, counted on CPU so that it cannot regress.

On a GPU every ``.item()``, ``.tolist()``, ``.cpu()``, ``.numpy()``, ``bool(tensor)``, ``int(tensor)``,
``float(tensor)``, ``nonzero`` or boolean-mask indexing waits for the device. On CPU those calls are free, so
they are counted by patching ``torch.Tensor``: anywhere (the scorer's own code, lobster's and
``transformers``' forwards), plus ``.to("cpu")`` from this package (a host copy on a GPU, a no-op here). The
GPU run of the same count is ``benchmarks/gpu_check.sh``'s last step (``torch.cuda.set_sync_debug_mode``).
"""

from __future__ import annotations

import collections
import contextlib
import traceback

import pytest
import torch

from ume_rl.rewards.engine.hf_scoring import HFMaskedLMScorer
from ume_rl.rewards.engine.ume_scoring import UmeScorer

ALWAYS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__", "nonzero")
SEQS = ["CCO", "MKVLAAGGW", "ACGTACGTTTGA", "c1ccccc1O", "MK", "GATTACA"] * 3
MODS = ["SMILES", "amino_acid", "nucleotide"] * 6
HF_SEQS = {
    "amino_acid": ["MKVLAAG", "MKV", "ACDEFGHIKLMN"],
    "SMILES": ["CCO", "c1ccccc1O", "CCN(C)C"],
    "nucleotide": ["ACGTACGTAAGT", "ACGTAC", "GATTACAGATTACA"],
}


@contextlib.contextmanager
def count_host_syncs():
    """Count calls that synchronise with the device; yields a Counter of (method, file:line)."""
    calls: collections.Counter = collections.Counter()
    originals = {name: getattr(torch.Tensor, name) for name in (*ALWAYS, "to", "__getitem__")}

    def where() -> str:
        frame = traceback.extract_stack(limit=3)[0]
        return f"{frame.filename}:{frame.lineno}"

    def counting(name, method):
        def wrapper(self, *args, **kwargs):
            if name == "to":
                target = args[0] if args else kwargs.get("device")
                host = isinstance(target, str | torch.device) and torch.device(target).type == "cpu"
                if host and "/ume_rl/" in where():
                    calls[(name, where())] += 1
            elif name == "__getitem__":
                index = args[0] if isinstance(args[0], tuple) else (args[0],)
                if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                    calls[(name, where())] += 1
            else:
                calls[(name, where())] += 1
            return method(self, *args, **kwargs)

        return wrapper

    for name, method in originals.items():
        setattr(torch.Tensor, name, counting(name, method))
    try:
        yield calls
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


def test_the_counter_sees_a_sync():
    with count_host_syncs() as calls:
        x = torch.arange(3.0)
        x.sum().item(), bool(x[0] == 0), x[x > 0], x.to("cpu")  # the last: not from the package
    assert sorted(name for name, _ in calls) == ["__bool__", "__getitem__", "item"]


@pytest.mark.parametrize("mode", ["unmasked", "masked", "spaced"])
@pytest.mark.parametrize("pad_shapes", [False, True])
def test_a_ume_score_call_synchronises_once(tiny_ume, mode, pad_shapes):
    scorer = UmeScorer(tiny_ume, mode=mode, token_budget=64, pad_shapes=pad_shapes, dedup=False)
    scorer.score(SEQS, MODS)  # first call: twins and such are built outside the count
    forwards = scorer.stats["forwards"]
    with count_host_syncs() as calls:
        scorer.score(SEQS, MODS)
    assert scorer.stats["forwards"] - forwards > 3  # many batches ...
    assert sum(calls.values()) == 2, dict(calls)  # ... one .to("cpu") and its .numpy(), together
    assert {name for name, _ in calls} == {"to", "numpy"}


@pytest.mark.parametrize("modality", ["amino_acid", "SMILES", "nucleotide"])
@pytest.mark.parametrize("mode", ["unmasked", "masked"])
def test_a_hugging_face_score_call_synchronises_once(tiny_mlms, modality, mode):
    scorer = HFMaskedLMScorer(tiny_mlms[modality], mode=mode, token_budget=32, dedup=False)
    seqs = HF_SEQS[modality]
    scorer.score(seqs, [modality] * 3)
    with count_host_syncs() as calls:
        scorer.score(seqs, [modality] * 3)
    assert sum(calls.values()) == 2, dict(
        calls
    )  # RoBERTa's 2-D mask check (torch.all) would add one per batch
