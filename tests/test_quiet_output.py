"""What a user reads: loading a UME prints no lobster warnings or attention-kernel notes, and other warnings
still show (the filters are by category, module and message, not global)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest

from ume_rl.models.ume import (
    LOBSTER_IMPORT_WARNINGS,
    LOBSTER_USE_WARNINGS,
    lobster_import_filters,
    quiet_lobster,
)

SCRIPT = textwrap.dedent(
    """
    import logging, sys, warnings
    logging.basicConfig(level=logging.WARNING)  # a notebook or the CLI shows WARNING records
    import lightning, torch
    from ume_rl.models.ume import build_tiny_ume, load_ume

    load_ume("tiny", device="cpu")
    ume = build_tiny_ume(layout="unpadded")  # the layout of real and demo checkpoints
    record = {"state_dict": ume.state_dict(), "hyper_parameters": dict(ume.hparams),
              "pytorch-lightning_version": lightning.__version__}
    torch.save(record, sys.argv[1])
    load_ume(sys.argv[1], device="cpu")
    warnings.warn("a warning of the user's own", FutureWarning)
    print("loaded", flush=True)
    """
)


@pytest.mark.slow
def test_loading_a_ume_prints_no_lobster_warnings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "tiny.ckpt")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded" in done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    # the user's own warning shows (two lines: the warning and its source line); nothing else does
    assert any("a warning of the user's own" in line for line in lines), done.stderr
    others = [
        line for line in lines if "a warning of the user's own" not in line and "warnings.warn(" not in line
    ]
    assert others == [], "\n".join(others[:20])


def test_filters_are_narrow():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lobster()
        with lobster_import_filters():
            warnings.warn_explicit(
                "`torch.jit.script` is deprecated", FutureWarning, "x.py", 1, module="torch.jit._script"
            )
            warnings.warn_explicit(
                "`torch.jit.script` is deprecated", FutureWarning, "x.py", 1, module="mine"
            )
            warnings.warn_explicit("something new", FutureWarning, "x.py", 2, module="torch.jit._script")
        warnings.warn_explicit(
            "flash_attn not available", UserWarning, "y.py", 1, module="lobster.model.modern_bert.m"
        )
        warnings.warn_explicit("flash_attn not available", UserWarning, "y.py", 1, module="other.package")
        # after the import, lobster's import-time filters are gone
        warnings.warn_explicit(
            "`torch.jit.script` is deprecated", FutureWarning, "x.py", 3, module="torch.jit._script"
        )
    shown = [(str(w.message), w.category.__name__) for w in caught]
    assert shown == [
        ("`torch.jit.script` is deprecated", "FutureWarning"),  # from another module
        ("something new", "FutureWarning"),  # another message
        ("flash_attn not available", "UserWarning"),  # another package
        ("`torch.jit.script` is deprecated", "FutureWarning"),  # outside the import
    ]
    assert all(len(entry) == 3 for entry in LOBSTER_IMPORT_WARNINGS + LOBSTER_USE_WARNINGS)
