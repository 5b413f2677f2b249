"""The Colab set-up run for real, offline: a notebook's first code cell (clone, then run htnet_lib/colab.py) in
IPython with a stand-in `google.colab` module, cloning a local copy of this checkout instead of GitHub.

What is real: the cell's own text (only its GitHub address and /content are replaced), IPython running its clone and
colab.py, colab.py's every pip call, the editable install, and `python -m htnet_lib fetch`, which finds the
release already in the clone (a symlink committed in the local origin) and checks every file's sha256. What stands in:
Colab's runtime (a `google.colab` package on sys.path), GitHub (a local clone of this checkout, with the changes to
its tracked files), and Colab's Python (a throwaway venv whose site-packages adds this venv's with a `.pth` file, so
pip finds every pin already satisfied; Colab's torch and torchvision are other versions than the pins, which the
throwaway venv's metadata says). Nothing is downloaded: $PIP_NO_INDEX, no pip configuration files, and no build
isolation ($PIP_NO_BUILD_ISOLATION=0: pip reads that variable as the value of `build_isolation`).

This venv is never modified: pip run from the throwaway venv refuses to uninstall a package outside it ("Not
uninstalling ..., outside environment"; colab.py's editable install meets that with the project's own entry). The
test checks pip's rule in the throwaway venv before running anything, and this venv's contents afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import nbformat
import pytest

from htnet_lib.colab import REPOSITORY

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO_ROOT / "notebooks" / "01_preprocess.ipynb"
GITHUB = f"https://github.com/{REPOSITORY}"
# This venv's site-packages, which the throwaway venv adds (site.addsitedir also runs their .pth files).
PARENT_SITES = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))

# (name, version, requirements) of Colab's torch pair as the throwaway venv shows it: versions the pins do not match
COLAB_TORCH = [("torch", "2.8.0+cu126", ""), ("torchvision", "0.23.0+cu126", "Requires-Dist: torch==2.8.0\n")]

# Run in the throwaway venv: the cell in IPython, as Colab's runtime would, then what the notebook would see.
DRIVER = """
import json, os, sys
standin, cell, out = sys.argv[1:]
sys.path.insert(0, standin)
import google.colab  # Colab's runtime has imported it before any cell runs
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance(colors="nocolor")
result = shell.run_cell(open(cell).read())
seen = {"error": repr(result.error_in_exec) if result.error_in_exec else None}
if result.success:
    import htnet_lib, torch
    seen.update(htnet_lib=htnet_lib.__file__, torch=torch.__file__, cwd=os.getcwd(),
                HTNET_DATA_DIR=os.environ.get("HTNET_DATA_DIR"))
json.dump(seen, open(out, "w"))
"""


def colab_cell(notebook: Path) -> str:
    return next(c.source for c in nbformat.read(notebook, as_version=4).cells
                if c.cell_type == "code" and '"google.colab" in sys.modules' in c.source)


def run_colab_cell(python: Path | str, tmp_path: Path, github: str, content: Path, env: dict | None = None):
    """Notebook 01's Colab cell, its GitHub address and /content replaced, run in IPython by `python` with a stand-in
    `google.colab` importable (Colab's runtime: google stays a namespace package, as protobuf's); the finished
    process and what the driver saw (`DRIVER`)."""
    standin = tmp_path / "standin"
    (standin / "google" / "colab").mkdir(parents=True)
    (standin / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s runtime module."""\n')
    source = colab_cell(NOTEBOOK)
    assert GITHUB in source and "/content/" in source
    cell = tmp_path / "cell.py"
    cell.write_text(source.replace(GITHUB, github).replace("/content/", f"{content}/"))
    out = tmp_path / "seen.json"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    done = subprocess.run([str(python), driver, standin, cell, out], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads(out.read_text())


def test_a_failing_colab_setup_stops_its_cell(tmp_path):
    """IPython's `!git clone` and `%run` print a failure and carry on, which would leave a Colab notebook running without
    the project; the cell's plain Python raises instead. A clone from an address that does not exist fails the cell;
    so does a set-up script that raises, in a clone already there (a second run of the cell, which then clones
    nothing)."""
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    _, seen = run_colab_cell(sys.executable, tmp_path / "missing", (tmp_path / "nowhere").as_uri(),
                             tmp_path / "missing" / "content", env)
    assert seen["error"] and seen["error"].startswith("CalledProcessError")
    content = tmp_path / "cloned" / "content"
    (content / "htnet-companion" / "htnet_lib").mkdir(parents=True)
    (content / "htnet-companion" / "htnet_lib" / "colab.py").write_text('raise RuntimeError("pip failed")\n')
    _, seen = run_colab_cell(sys.executable, tmp_path / "cloned", "https://unused.invalid", content, env)
    assert seen["error"] == "RuntimeError('pip failed')"


def site_snapshot() -> dict[str, int | None]:
    """This venv's site-packages: every entry (an install or uninstall adds or removes one), with the modification
    time of each file and each `.dist-info` folder (pip rewrites the metadata of whatever it reinstalls). A package
    folder counts by its presence only: an import may add its `__pycache__` (a venv installed without byte-compiling
    gets them at first import), which changes the folder's time and nothing installed."""
    return {f"{site}/{p.name}": p.lstat().st_mtime_ns if p.is_file() or p.name.endswith(".dist-info") else None
            for site in PARENT_SITES for p in Path(site).iterdir() if p.name != "__pycache__"}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.mark.slow
def test_colab_setup_cell_installs_the_clone_beside_colabs_torch_and_verifies_the_release(tmp_path, data_dir):
    """The first code cell of notebook 01, run in IPython with `google.colab` importable: the clone's htnet_lib is
    what imports afterwards, $HTNET_DATA_DIR is the clone's data/htnet-release and the working folder the clone
    (the release's sha256 checked there), torch is the one Colab had (not reinstalled), pip installed nothing but the
    project (every other pin satisfied), and this venv is unchanged, OpenCV and torch still importable."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the stand-in for GitHub is a clone of it")
    # GitHub: a clone of this checkout with its tracked files' changes, and the release committed as a symlink
    # (colab.py's fetch then finds it in place and only verifies it)
    origin = tmp_path / "origin"
    git("clone", "-q", str(REPO_ROOT), str(origin), cwd=tmp_path)
    changes = subprocess.run(["git", "diff", "--binary", "HEAD"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    if changes:
        subprocess.run(["git", "apply", "--index"], input=changes, cwd=origin, check=True, capture_output=True)
    (origin / "data").mkdir()
    (origin / "data" / "htnet-release").symlink_to(data_dir)
    git("add", "-f", "data/htnet-release", cwd=origin)
    git("commit", "-qm", "stand-in: this checkout and the release", cwd=origin)
    # Colab's Python: a venv on top of this one
    py = tmp_path / "venv" / "bin" / "python"
    venv.create(tmp_path / "venv", with_pip=False)
    own_site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    (own_site / "zz_parent_venv.pth").write_text(
        "".join(f"import site; site.addsitedir({s!r})\n" for s in PARENT_SITES))
    # Colab's own torch and torchvision are other versions than the project's pins: their metadata, found before this
    # venv's, says so (the modules stay this venv's). Were colab.py to ask pip for the pins, pip would try to
    # replace them, and fail offline.
    for name, version, requires in COLAB_TORCH:
        meta = own_site / f"{name}-{version}.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTNET_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{py.parent}{os.pathsep}{env['PATH']}", PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CACHE_DIR=str(tmp_path / "pip"),
               IPYTHONDIR=str(tmp_path / "ipython"), MPLCONFIGDIR=str(tmp_path / "mpl"))
    # pip's rule that keeps this venv safe, asked of the pip that colab.py will run
    local = subprocess.run([py, "-c", "import sys; from pip._internal.utils.misc import is_local; "
                                      "sys.exit(any(is_local(p) for p in sys.argv[1:]))", *PARENT_SITES], env=env,
                           capture_output=True, text=True)
    assert local.returncode == 0, \
        f"not running: pip in {py.parent.parent} may treat {PARENT_SITES} as its own (or cannot say) {local.stderr}"
    content = tmp_path / "content"
    before = site_snapshot()
    done, seen = run_colab_cell(py, tmp_path, origin.as_uri(), content, env)

    clone = content / "htnet-companion"
    assert seen["error"] is None, done.stdout[-3000:] + done.stderr[-3000:]
    assert seen["htnet_lib"] == str(clone / "htnet_lib" / "__init__.py")
    assert seen["cwd"] == str(clone)
    assert seen["HTNET_DATA_DIR"] == str(clone / "data" / "htnet-release")
    assert any(seen["torch"].startswith(s) for s in PARENT_SITES), f"torch came from {seen['torch']}"
    kept = {f"{name}-{version}.dist-info" for name, version, _ in COLAB_TORCH}
    installed = {p.name for p in own_site.iterdir()} - {"zz_parent_venv.pth", "__pycache__"} - kept
    assert {p.name for p in own_site.iterdir()} >= kept, "Colab's torch or torchvision was uninstalled"
    assert installed and all("htnet_companion" in n for n in installed), f"pip installed more: {sorted(installed)}"
    # a new kernel (a restart on Colab) imports the clone too: the editable install is the clone
    fresh = subprocess.run([py, "-c", "import htnet_lib; print(htnet_lib.__file__)"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert fresh.stdout.strip() == str(clone / "htnet_lib" / "__init__.py")

    assert site_snapshot() == before, "this venv's site-packages changed"
    here = subprocess.run([sys.executable, "-c", "import cv2, torch; print(torch.__version__)"], capture_output=True,
                          text=True, cwd=tmp_path)
    import torch

    assert here.returncode == 0 and here.stdout.strip() == torch.__version__, here.stderr
