"""Notebooks 02 and 03 in a real browser: JupyterLab driven by headless Chromium (Playwright).

nbmake executes cells but renders nothing and fires no widget event; this runs the notebooks as a user does
(Run All in JupyterLab), then types into notebook 03's scoring panel and checks what the panel shows.

Needs the system Chromium (Debian package ``chromium``; Playwright's own browser download is not used) and
the ``playwright`` package (dev extras). Without them the tests are skipped, except under ``CI=true``,
where they fail: CI must run them. ``UME_RL_CHROMIUM`` points at another Chromium binary.

    python -m pytest -m browser tests/browser -v

Screenshots go to ``<runs>/browser/`` (``$UME_RL_RUNS_DIR`` or ``runs/``). The notebooks themselves run on
the tiny profile, offline, with their runs directory in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ume_rl.profiles import runs_dir

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("02_generate_dataset.ipynb", "03_inspect_ume_rewards.ipynb")
SCREENSHOTS = runs_dir() / "browser"  # read at import: tests/conftest.py points runs/ elsewhere per test
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_ALL_TIMEOUT_S = 900  # notebook 03 takes 20 s on a quiet machine; CI's 2 cores are shared
WIDGET_TIMEOUT_S = 60  # one rescoring of the panel (masked, tiny UME): well under a second

# The visible notebook, its code-cell prompts ("[ ]:", "[*]:", "[3]:") and the kernel status in the status bar.
NB = ".jp-NotebookPanel:not(.lm-mod-hidden)"
PROMPTS = (
    f"[...document.querySelectorAll('{NB} .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim())"
)
KERNEL_IDLE = (
    "[...document.querySelectorAll('.jp-StatusBar-TextItem')]"
    ".some(e => /^(?!No Kernel).*\\| Idle$/.test(e.textContent.trim()))"
)
RUN_FINISHED = f"() => {{ const p = {PROMPTS}; return p.length > 0 && /\\d/.test(p[0]) && !p.some(x => x.includes('*')) && {KERNEL_IDLE}; }}"
PANEL = f"{NB} .jp-OutputArea-output:has(.widget-textarea textarea)"
SCORE = re.compile(r"\bscore\s+(-?\d+\.\d+)")


def find_chromium() -> str | None:
    for candidate in (os.environ.get("UME_RL_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def skip_or_fail(reason: str):
    """Skip locally; under CI=true the browser tests are required, so fail instead."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI=true: the browser tests are required; .ci/run installs chromium)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab server on a free loopback port with a token, serving copies of notebooks 02 and 03.

    Its Jupyter config, data and runtime folders are fresh (no user settings, no news pop-up, every cell
    rendered); kernels run the tiny profile offline and import this checkout's ``ume_rl``.
    """
    base = tmp_path_factory.mktemp("lab")
    notebooks = base / "notebooks"
    notebooks.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, notebooks / name)
    config = base / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    tracker = config / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    # Render every cell (JupyterLab 4 otherwise renders only those near the viewport).
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "UME_RL_PROFILE": "tiny",
        "UME_RL_RUNS_DIR": str(base / "runs"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "2",
    }
    port, token = free_port(), secrets.token_hex(16)
    log_path = base / "server.log"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield {"url": url, "token": token, "notebooks": notebooks, "log": log_path}
    finally:
        server.terminate()  # by PID: SIGTERM shuts its kernels down too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


@pytest.fixture(scope="session")
def chromium():
    """The Chromium binary; skips (fails under CI=true) before any server starts when it or playwright is missing."""
    path = find_chromium()
    if path is None:
        skip_or_fail("no Chromium found (apt-get install chromium, or set UME_RL_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[dev]')")
    return path


@pytest.fixture(scope="session")
def page(chromium, lab):
    """A page of headless system Chromium, in a fresh profile."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def shut_down_kernels(lab):
    """End the sessions of notebooks run before (their kernels hold models in memory)."""
    api = f"{lab['url']}/api/sessions"
    headers = {"Authorization": f"token {lab['token']}"}
    with urllib.request.urlopen(urllib.request.Request(api, headers=headers), timeout=30) as response:
        sessions = json.load(response)
    for session in sessions:
        request = urllib.request.Request(f"{api}/{session['id']}", headers=headers, method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()


def run_all(page, lab, name: str) -> dict:
    """Open ``name`` in its own workspace, Run All Cells from the Run menu, wait for the kernel to finish,
    save from the browser and return the saved notebook (outputs as the browser holds them)."""
    shut_down_kernels(lab)
    path = lab["notebooks"] / name
    page.goto(f"{lab['url']}/lab/workspaces/{name[:2]}/tree/{name}?token={lab['token']}")
    try:
        page.wait_for_function(f"() => {KERNEL_IDLE}", timeout=180_000)
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=500)
        unsaved = path.stat().st_mtime_ns
        page.click(".lm-MenuBar-itemLabel:text-is('File')")
        page.click(".lm-Menu-itemLabel:text-is('Save Notebook')")
        deadline = time.monotonic() + 60
        while path.stat().st_mtime_ns == unsaved and time.monotonic() < deadline:
            time.sleep(0.5)
        assert path.stat().st_mtime_ns != unsaved, f"{name}: Save Notebook did not write the file"
    finally:
        page.screenshot(path=str(SCREENSHOTS / f"{name.removesuffix('.ipynb')}.png"), full_page=True)
    return json.loads(path.read_text())


def check_ran_clean(notebook: dict, name: str):
    errors = [
        f"{output['ename']}: {output['evalue']}"
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if output["output_type"] == "error"
    ]
    assert not errors, f"{name}: error outputs {errors}"
    counts = [cell["execution_count"] for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(counts), f"{name}: cells left unexecuted after Run All: {counts}"


def saved_images(notebook: dict) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
    )


def test_notebook_02_runs_clean(page, lab):
    check_ran_clean(run_all(page, lab, NOTEBOOKS[0]), NOTEBOOKS[0])


@pytest.fixture(scope="session")
def notebook_03(page, lab):
    return run_all(page, lab, NOTEBOOKS[1])


def test_notebook_03_runs_clean_with_figures(page, notebook_03):
    check_ran_clean(notebook_03, NOTEBOOKS[1])
    images = page.locator(f"{NB} .jp-OutputArea-output img")
    assert images.count() > 0, "notebook 03 shows no figure"
    assert images.count() == saved_images(notebook_03), "every saved PNG output renders as an <img>"
    for i in range(images.count()):  # decoded, not a broken image
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), f"figure {i} is broken"


def panel_changes(page, panel, before: str, action: str) -> str:
    """Wait until the panel's text differs from ``before`` (the kernel rescored and redrew); return it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "([el, before]) => el.innerText !== before",
            arg=[panel.element_handle(), before],
            timeout=WIDGET_TIMEOUT_S * 1000,
            polling=250,
        )
        changed = True
    except PlaywrightTimeout:
        changed = False
    if not changed:
        pytest.fail(
            f"the scoring panel did not change within {WIDGET_TIMEOUT_S} s after {action}; it shows:\n{before}"
        )
    return panel.inner_text()


def shown_score(text: str) -> float:
    match = SCORE.search(text)
    assert match, f"the scoring panel shows no score; it shows:\n{text}"
    return float(match.group(1))


def test_scoring_panel_shows_a_live_score(page, notebook_03):
    panel = page.locator(PANEL)
    panel.wait_for(timeout=60_000)
    assert panel.count() == 1, "one scoring panel (a widget with a text box) in notebook 03"
    panel.scroll_into_view_if_needed()
    first = panel.inner_text()
    protein_score = shown_score(first)  # the result computed when the cell ran, shown inside the panel

    sequence = panel.locator("textarea")
    sequence.fill("ACGTTGCAACGGTACCGTTAGCATGCAACGT")  # valid as a protein too (A, C, G, T)
    sequence.press("Tab")  # leaving the box sends its value
    typed = panel_changes(page, panel, first, "typing a sequence")
    assert shown_score(typed) != protein_score, f"typing a new sequence did not change the score:\n{typed}"

    panel.locator(".widget-dropdown:has(label:text-is('modality')) select").select_option(label="DNA")
    dna = panel_changes(page, panel, typed, "switching modality")
    assert re.search(r"\bmodality\s+DNA\b", dna) and shown_score(dna) != shown_score(typed), dna
    assert re.search(r"\breason\s+valid\b", dna), dna
    panel.screenshot(path=str(SCREENSHOTS / "scoring_panel.png"))

    sequence.fill("ACGU")  # U is RNA, not DNA: invalid, the panel says why
    sequence.press("Tab")
    invalid = panel_changes(page, panel, dna, "typing an invalid sequence")
    assert re.search(r"\breason\s+bad_alphabet\b", invalid), invalid
    assert not SCORE.search(invalid), f"an invalid sequence shows a score:\n{invalid}"
    panel.screenshot(path=str(SCREENSHOTS / "scoring_panel_invalid.png"))
