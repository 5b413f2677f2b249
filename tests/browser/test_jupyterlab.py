"""JupyterLab in a real browser: notebook 01 opened in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright), Run > Run All Cells clicked in the menu, then checked: every code cell ran, no output is an error, and at
least one PNG figure rendered. A screenshot is saved to executed/browser/<notebook>.png.

Skipped unless HTNET_BROWSER_TEST=1; `make browser-test` sets it after tools/browser-setup.sh has installed chromium
and playwright. With it set, a missing chromium or playwright is a failure, not a skip.
JupyterLab serves a temporary copy of the notebook, so notebooks/ is never saved with outputs (checked at the end).

Why the error check reads JupyterLab's notebook model: in the DOM an error output and a stderr stream (tqdm, warnings)
are the same element, `.jp-OutputArea-output.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]`;
JupyterLab 4 renders the traceback with its stderr renderer and adds no error-specific class. Only the output model
keeps the type ("error", with ename/evalue/traceback), so the page is opened with `expose_app_in_browser` and the
test reads `window.jupyterapp`. Execution prompts and figures are read from the DOM, as the user sees them.

Environment: HTNET_BROWSER_NOTEBOOK (another notebook, e.g. a deliberately broken copy), HTNET_CHROMIUM (default
/usr/bin/chromium), HTNET_BROWSER_TIMEOUT (seconds before a hung run is given up, default 1200).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

if os.environ.get("HTNET_BROWSER_TEST") != "1":
    pytest.skip("browser test: set HTNET_BROWSER_TEST=1 (`make browser-test` installs chromium and playwright, "
                "then runs it)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = Path(os.environ.get("HTNET_BROWSER_NOTEBOOK") or ROOT / "notebooks" / "01_preprocess.ipynb").resolve()
CHROMIUM = os.environ.get("HTNET_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_S = float(os.environ.get("HTNET_BROWSER_TIMEOUT", "1200"))
SCREENSHOT = ROOT / "executed" / "browser" / f"{NOTEBOOK.stem}.png"
# Headless, and no background connections: this machine's network is closed.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# User settings for the temporary JupyterLab: no news or update requests, no autosave, every cell in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": '{"fetchNews": "false", "checkForUpdates": false}',
    "@jupyterlab/docmanager-extension/plugin": '{"autosave": false}',
    "@jupyterlab/notebook-extension/tracker": '{"windowingMode": "none"}',
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Lab:
    url: str  # the notebook's page, token included
    name: str  # the notebook's path under root_dir
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path, n: int = 30) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return "\n".join(lines[-n:])


def _stop(proc: subprocess.Popen, runtime_dir: Path) -> None:
    """Stop the server (SIGTERM shuts its kernels down), then kill any kernel of ours that outlived it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Our kernels are the processes whose command line names a connection file in our runtime dir.
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(runtime_dir).encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="session")
def browser_tools() -> None:
    """With HTNET_BROWSER_TEST=1, a missing chromium or playwright is a failure, not a skip."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"HTNET_BROWSER_TEST=1 but {CHROMIUM} is missing: run tools/browser-setup.sh (make browser-test)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail(f"HTNET_BROWSER_TEST=1 but playwright is not installed in {sys.prefix}: run tools/browser-setup.sh "
                    "(make browser-test)")


@pytest.fixture()
def lab(browser_tools, tmp_path: Path, data_dir: Path):
    """JupyterLab from this venv on a free localhost port, with a token, config and runtime dirs of its own, serving
    a copy of the notebook; stopped at the end, also on failure."""
    served = tmp_path / "root"
    served.mkdir()
    shutil.copy(NOTEBOOK, served / NOTEBOOK.name)
    jdir = tmp_path / "jupyter"
    settings = jdir / "lab-settings"
    for plugin, text in LAB_SETTINGS.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    runtime = jdir / "runtime"
    env = dict(os.environ,
               JUPYTER_CONFIG_DIR=str(jdir / "config"), JUPYTER_DATA_DIR=str(jdir / "data"),
               JUPYTER_RUNTIME_DIR=str(runtime), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(jdir / "workspaces"), IPYTHONDIR=str(jdir / "ipython"),
               HTNET_DATA_DIR=str(data_dir),
               # the kernel imports this checkout's htnet_lib, whichever checkout the venv was installed from
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={served}",
           f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=served, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{_log_tail(log)}")
            try:
                req = urllib.request.Request(f"{base}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {base} within 120 s:\n{_log_tail(log)}")
                time.sleep(0.5)
        yield Lab(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", NOTEBOOK.name, log)
    finally:
        _stop(proc, runtime)


# The notebook panel (by path) in the app exposed as window.jupyterapp.
PANEL_JS = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === name)"

KERNEL_STATUS_JS = f"""name => {{
  const panel = window.jupyterapp && {PANEL_JS};
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return kernel ? kernel.status : null;
}}"""

# Done: the kernel is idle or gone, no cell is queued or running ([*]) and at least one cell ran.
DONE_JS = f"""name => {{
  const panel = {PANEL_JS};
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const status = kernel ? kernel.status : 'dead';
  if (status === 'dead') return status;
  const prompts = Array.from(panel.node.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'), p => p.textContent);
  const busy = prompts.some(t => t.includes('*'));
  const ran = prompts.some(t => /\\[\\d+\\]/.test(t));
  return status === 'idle' && !busy && ran ? status : false;
}}"""

# Per code cell: its index among all cells, source, execution count (model), prompt (DOM) and error outputs (model).
CELLS_JS = f"""name => {{
  const panel = {PANEL_JS};
  const nodes = Array.from(panel.content.widgets, w => w.node);
  const cells = [];
  for (let i = 0; i < panel.content.model.cells.length; i++) {{
    const c = panel.content.model.cells.get(i);
    if (c.type !== 'code') continue;
    const errors = [];
    for (let j = 0; j < c.outputs.length; j++) {{
      const o = c.outputs.get(j);
      if (o.type === 'error') errors.push(o.toJSON());
    }}
    const prompt = nodes[i].querySelector('.jp-InputArea-prompt');
    cells.push({{index: i, source: c.sharedModel.getSource(), count: c.executionCount,
                 prompt: prompt ? prompt.textContent.trim() : null, errors}});
  }}
  return cells;
}}"""

IMAGES = '.jp-OutputArea-output[data-mime-type="image/png"] img'


def _describe_error(cell: dict) -> str:
    """The cell, each error's name and value, and its traceback (long ones: the cell's frames and the last lines)."""
    first = next((ln for ln in cell["source"].splitlines() if ln.strip() and not ln.startswith("#")), "")
    parts = [f"cell {cell['index']} ({first[:80]!r}):"]
    for e in cell["errors"]:
        chunks = [ANSI.sub("", t) for t in e.get("traceback") or []]  # IPython: one chunk per frame
        tb = "\n".join(chunks).splitlines()
        if len(tb) > 40:
            cell_frames = [c[c.index("Cell In["):] for c in chunks if "Cell In[" in c]
            tb = "\n".join(cell_frames).splitlines() + ["..."] + tb[-15:]
        parts.append(f"  {e.get('ename')}: {e.get('evalue')}")
        parts.extend("    " + ln for ln in tb)
    return "\n".join(parts)


def test_notebook_runs_in_jupyterlab(lab: Lab, capsys):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    source_hash = hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(lab.url)
            page.locator(".jp-NotebookPanel").wait_for(timeout=120_000)
            try:
                page.wait_for_function(f"name => ({KERNEL_STATUS_JS})(name) === 'idle'", arg=lab.name,
                                       timeout=120_000)
            except PlaywrightTimeout:
                page.screenshot(path=SCREENSHOT)
                dialog = page.locator(".jp-Dialog")
                extra = f"\ndialog: {dialog.first.inner_text()}" if dialog.count() else ""
                pytest.fail(f"the kernel did not become idle within 120 s (status "
                            f"{page.evaluate(KERNEL_STATUS_JS, lab.name)!r}){extra}; screenshot {SCREENSHOT}\n"
                            f"{_log_tail(lab.log)}")
            # Run > Run All Cells (the Run menu's command, which calls notebook:run-all-cells for a notebook)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
            try:
                status = page.wait_for_function(DONE_JS, arg=lab.name, timeout=TIMEOUT_S * 1000,
                                                polling=1000).json_value()
            except PlaywrightTimeout:
                status = f"still running after {TIMEOUT_S:.0f} s (HTNET_BROWSER_TIMEOUT)"
            cells = page.evaluate(CELLS_JS, lab.name)
            images = page.eval_on_selector_all(IMAGES, "els => els.map(e => e.complete && e.naturalWidth > 0)")
            # Screenshot the first error, else the first figure.
            failed = [c for c in cells if c["errors"]]
            target = (page.locator(".jp-Notebook .jp-Cell").nth(failed[0]["index"]) if failed
                      else page.locator(IMAGES).first if images else None)
            if target is not None:
                target.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(500)  # let the scroll paint
            page.screenshot(path=SCREENSHOT)
        finally:
            browser.close()
    with capsys.disabled():
        print(f"\n{NOTEBOOK.name} in JupyterLab: {sum(c['count'] is not None for c in cells)}/{len(cells)} code cells "
              f"ran, {len(failed)} with an error, {sum(images)} PNG figure(s) rendered; screenshot: {SCREENSHOT}")

    not_run = [c for c in cells if c["count"] is None or not re.fullmatch(r"\[\d+\]:", c["prompt"] or "")]
    problems = []
    if hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest() != source_hash:
        problems.append(f"{NOTEBOOK} was modified during the test")
    if failed:
        problems.append(f"{len(failed)} cell(s) of {NOTEBOOK.name} raised in JupyterLab:\n"
                        + "\n".join(_describe_error(c) for c in failed))
    if status != "idle":
        problems.append(f"the kernel is {status!r}, not idle, after Run All Cells\n{_log_tail(lab.log)}")
    if not_run:
        problems.append(f"{len(not_run)} of {len(cells)} code cells did not run: "
                        + ", ".join(f"cell {c['index']} (prompt {c['prompt']!r})" for c in not_run))
    if not any(images):
        problems.append(f"no image/png output rendered ({len(images)} <img> found, none loaded)")
    if problems:
        pytest.fail("\n\n".join(problems) + f"\n\nscreenshot: {SCREENSHOT}", pytrace=False)
