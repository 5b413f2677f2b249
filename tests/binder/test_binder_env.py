"""Binder's environment, rebuilt: a fresh venv installed from environment.yml's pip list (the file is the one source:
its lines become a requirements file), then the repository's postBuild, then notebook 01 with smoke params through
`python -m htnet_lib reproduce`, in a clone of this checkout's HEAD (committed code, as Binder builds it).

Checked: every code cell of the executed notebook ran and none has an error output, the kernel was this venv's
Python, and the provenance record has the notebook's time and kernel peak memory, which the test prints.

Differences from mybinder.org, where a machine cannot do as Binder does: Python is a venv of the interpreter running
the test, not conda-forge's; the PyTorch CPU index (environment.yml's --extra-index-url) may be unreachable: pip asks
it with a 10 s timeout and no retries, so an unreachable index fails fast and torch and torchvision come from the
other configured indexes (then a CUDA build, larger on disk than Binder's CPU wheel); the release is not downloaded
but linked into data/htnet-release, where postBuild's `python -m htnet_lib fetch` finds it and checks every file's
sha256. Landmarks go to a cache of the test's own ($HTNET_CACHE_DIR), so postBuild computes them as on Binder.

Skipped unless HTNET_BINDER_TEST=1 (`make binder-test`): it downloads and installs several GB, in minutes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import venv
from pathlib import Path

import nbformat
import pytest
import yaml

from htnet_lib.reproduce import PEAK_MEMORY, PROVENANCE

if os.environ.get("HTNET_BINDER_TEST") != "1":
    pytest.skip("Binder environment test: set HTNET_BINDER_TEST=1 (`make binder-test`)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PIP_OPTIONS = ["--timeout", "10", "--retries", "0", "--disable-pip-version-check", "--progress-bar", "off"]


def pip_lines(path: Path) -> list[str]:
    """environment.yml's `pip:` list, as written."""
    deps = yaml.safe_load(path.read_text())["dependencies"]
    return next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture()
def tmp_venv(tmp_path):
    """Where the venv and pip's downloads go: several GB, removed at the end."""
    yield tmp_path / "venv", tmp_path / "pip-cache"
    for d in ("venv", "pip-cache"):
        shutil.rmtree(tmp_path / d, ignore_errors=True)


def test_a_venv_from_environment_yml_runs_notebook_01_with_smoke_params(tmp_path, tmp_venv, data_dir, capsys):
    clone = tmp_path / "htnet-companion"
    run(["git", "clone", "-q", ROOT, clone])
    (clone / "data").mkdir()
    (clone / "data" / "htnet-release").symlink_to(data_dir)
    requirements = tmp_path / "binder-requirements.txt"
    requirements.write_text("\n".join(pip_lines(clone / "environment.yml")) + "\n")

    t0 = time.perf_counter()
    venv_dir, pip_cache = tmp_venv
    venv.create(venv_dir, with_pip=True)
    bin_dir = venv_dir / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTNET_", "PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(bin_dir.parent),
               HTNET_CACHE_DIR=str(tmp_path / "cache"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter"),
               IPYTHONDIR=str(tmp_path / "ipython"), MPLCONFIGDIR=str(tmp_path / "mpl"),
               PIP_CACHE_DIR=str(pip_cache))
    py = bin_dir / "python"
    # `-e .[dev]` in the file is relative to the working folder: the clone, as on Binder
    run([py, "-m", "pip", "install", "-q", *PIP_OPTIONS, "-r", requirements], cwd=clone, env=env, timeout=3600)
    installed = time.perf_counter() - t0
    run([py, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], env=env)
    spec = json.loads(run([py, "-m", "jupyter", "kernelspec", "list", "--json"], env=env).stdout)
    assert spec["kernelspecs"]["python3"]["spec"]["argv"][0] == str(py), spec["kernelspecs"]["python3"]
    post = run(["bash", clone / "postBuild"], cwd=clone, env=env, timeout=1800)
    assert "postBuild:" not in post.stdout, post.stdout[-3000:]  # its messages say what failed
    built = time.perf_counter() - t0

    run([py, "-m", "htnet_lib", "reproduce", "--params", "smoke", "--only", "01"], cwd=clone,
        env=dict(env, HTNET_ROOT=str(clone)), timeout=1800)
    executed = nbformat.read(clone / "executed" / "smoke" / "01_preprocess.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "a code cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{errors[0].ename}: {errors[0].evalue}"
    entry = json.loads((clone / "figures" / "smoke" / PROVENANCE).read_text())["01_preprocess.ipynb"]
    assert entry[PEAK_MEMORY] is not None or not Path("/proc").is_dir()
    with capsys.disabled():
        print(f"\nBinder venv: installed in {installed:.0f} s, postBuild done at {built:.0f} s; notebook 01 (smoke) "
              f"{entry['seconds']:.0f} s, kernel peak {entry[PEAK_MEMORY]} MiB; Python "
              f"{entry['versions']['python']}, torch {entry['versions']['torch']}")
