"""The executed notebooks' saved outputs hold no Python warnings and nothing else on stderr (progress bars
aside): what a user reads on the default path is the notebook's own output.

``scripts/test.sh`` executes copies of ``notebooks/`` with their outputs kept (nbmake ``--overwrite``) and then
runs this test with ``UME_RL_EXECUTED_NOTEBOOKS`` pointing at them; without it the test is skipped (the
committed notebooks carry no outputs).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

EXECUTED = os.environ.get("UME_RL_EXECUTED_NOTEBOOKS")
# a Python warning as the warnings module prints it: "<file>:<line>: <Category>Warning: <message>"
PYTHON_WARNING = re.compile(r":\d+: \w*Warning: ")
# a tqdm bar in text form ("name:  40%|####      | 4/10 [00:01<00:02, 3.1it/s]")
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\|\s*\d+/\d+ \[")
# a log record of this package, as a notebook's logging.basicConfig prints it ("INFO:ume_rl.training.run:saved ...")
OWN_LOG_RECORD = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL):ume_rl\.")


def problems(notebook: Path) -> list[str]:
    """``cell N: <first line>`` for each output of ``notebook`` that is a Python warning or stderr text other
    than a progress bar."""
    found = []
    cells = json.loads(notebook.read_text())["cells"]
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = "".join(output.get("text", ""))
                lines = [line for line in re.split(r"[\r\n]+", text) if line.strip()]
                if output.get("name") == "stderr":
                    bad = [
                        line
                        for line in lines
                        if not (PROGRESS_BAR.search(line) or OWN_LOG_RECORD.match(line))
                    ]
                else:
                    bad = [line for line in lines if PYTHON_WARNING.search(line)]
            elif output.get("output_type") == "error":
                bad = [f"{output.get('ename')}: {output.get('evalue')}"]
            else:
                text = "".join(output.get("data", {}).get("text/plain", ""))
                bad = [line for line in text.splitlines() if PYTHON_WARNING.search(line)]
            found += [f"{notebook.name} cell {index}: {line.strip()[:200]}" for line in bad[:1]]
    return found


def _notebooks() -> list[Path]:
    return sorted(Path(EXECUTED).glob("0*.ipynb")) if EXECUTED else []


@pytest.mark.skipif(not EXECUTED, reason="set UME_RL_EXECUTED_NOTEBOOKS to a folder of executed notebooks")
def test_executed_notebooks_exist():
    assert _notebooks(), f"no executed notebooks (0*.ipynb) in {EXECUTED}"
    assert all(json.loads(nb.read_text())["cells"] for nb in _notebooks())
    assert any(cell.get("outputs") for nb in _notebooks() for cell in json.loads(nb.read_text())["cells"]), (
        "the notebooks carry no outputs: execute them with nbmake --overwrite"
    )


@pytest.mark.skipif(not EXECUTED, reason="set UME_RL_EXECUTED_NOTEBOOKS to a folder of executed notebooks")
@pytest.mark.parametrize("name", [p.name for p in _notebooks()] or ["none"])
def test_no_warnings_in_saved_outputs(name):
    found = problems(Path(EXECUTED) / name)
    assert not found, "\n".join(found)


def test_problems_finds_warnings_and_stderr_but_not_progress_bars(tmp_path):
    def stream(name, text):
        return {"output_type": "stream", "name": name, "text": text}

    cells = [
        {"cell_type": "code", "outputs": [stream("stdout", "loaded 3 models\n")]},
        {
            "cell_type": "code",
            "outputs": [stream("stderr", "real corpus: 100%|##########| 4/4 [00:01<00:00, 3.1file/s]\n")],
        },
        {
            "cell_type": "code",
            "outputs": [stream("stderr", "/x/torch/jit/_script.py:1491: FutureWarning: deprecated\n")],
        },
        {"cell_type": "code", "outputs": [stream("stderr", "the dataset has no marker\n")]},
        {"cell_type": "code", "outputs": [stream("stderr", "INFO:ume_rl.training.run:saved the policy\n")]},
        {"cell_type": "code", "outputs": [stream("stdout", "/x/a.py:3: UserWarning: printed to stdout\n")]},
        {"cell_type": "markdown", "source": "FutureWarning: in prose is fine"},
    ]
    notebook = tmp_path / "01_x.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    assert [line.split(":")[0] for line in problems(notebook)] == [
        "01_x.ipynb cell 2",
        "01_x.ipynb cell 3",
        "01_x.ipynb cell 5",
    ]
