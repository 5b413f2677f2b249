"""The package works outside its repository: installed into a folder of its own (not editable), imported from a
working directory that is no checkout, it trains a smoke LOSO into that directory's runs/ and reads its data from
$HTNET_DATA_DIR; nothing resolves against the package's location."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("source")  # a copy: setuptools builds in the source tree (build/, egg-info)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "htnet_lib", source / "htnet_lib", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-compile", "--target", str(target), str(source)],
                       capture_output=True, text=True, cwd=source, env={**os.environ, "PIP_NO_INPUT": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (target / "htnet_lib" / "models" / "registry.py").is_file()
    weights = target / "htnet_lib" / "weights"  # the shipped weights travel with their card as package data
    assert (weights / "htnet-honest.safetensors").is_file() and (weights / "htnet-honest.json").is_file()
    return target


def test_an_installed_copy_runs_a_smoke_loso_from_anywhere(installed, tmp_path, data_dir):
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = textwrap.dedent("""
        import json, htnet_lib
        from htnet_lib import config, loso, _io
        p = config.params_from_dict({"dim": 16, "heads": 2, "block_repeats": [1, 1, 1], "epochs": 2,
                                     "folds": ["s01", "006"], "regions": "whole", "engine": "batched",
                                     "progress": False})
        run = loso.run_loso(p)
        print(json.dumps({"package": htnet_lib.__file__, "run": str(run.dir), "root": str(_io.project_root()),
                          "finished": run.finished, "revision": run.meta["git_revision"]}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("HTNET_ROOT", "PYTHONPATH")}
    env.update(PYTHONPATH=str(installed), HTNET_DATA_DIR=str(data_dir), HTNET_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(out["package"]).is_relative_to(installed)  # the installed copy, not this checkout
    assert Path(out["root"]) == work.resolve() and out["finished"]
    assert Path(out["run"]).parent == work.resolve() / "runs"  # runs_dir: runs, from the working directory
    assert out["revision"] == "unknown"  # an installed copy is no git checkout
    assert not (installed / "runs").exists()  # nothing written beside the package


def test_a_checkout_is_found_from_any_of_its_folders(tmp_path, monkeypatch):
    from htnet_lib import _io

    monkeypatch.delenv("HTNET_ROOT", raising=False)
    monkeypatch.chdir(ROOT / "notebooks")  # nbval's kernels run here
    assert _io.project_root() == ROOT
    monkeypatch.chdir(tmp_path)
    assert _io.project_root() == tmp_path.resolve()
    monkeypatch.setenv("HTNET_ROOT", str(ROOT))
    assert _io.project_root() == ROOT and _io.in_project("runs") == ROOT / "runs"
