"""The notebooks' conventions, checked on the clean sources in notebooks/ (running them is nbval's job), and the
Binder configuration they are opened with.

Every `notebooks/NN_*.ipynb`: valid nbformat; no outputs and no execution counts; a title cell with its own Colab badge;
a Colab setup cell that does nothing unless `"google.colab" in sys.modules`; exactly one cell tagged `parameters`
whose code sets `params_dir = "params/smoke"` (papermill passes the other levels); no function or class definitions.
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from htnet_lib.colab import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPO = REPOSITORY  # the one place the badges' repository is named


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def parse(source: str) -> ast.Module:
    """The cell as Python, IPython line magics and shell escapes (`%run ...`, `!git ...`) read as `pass`."""
    lines = [ln[:len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("%", "!")) else ln
             for ln in source.splitlines()]
    return ast.parse("\n".join(lines))


def is_colab_guard(node: ast.AST) -> bool:
    """`"google.colab" in sys.modules`"""
    return (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and node.left.value == "google.colab"
            and len(node.ops) == 1 and isinstance(node.ops[0], ast.In) and ast.unparse(node.comparators[0]) == "sys.modules")


def colab_cell_index(nb) -> int | None:
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and any(isinstance(n, ast.If) and is_colab_guard(n.test) for n in parse(c.source).body):
            return i
    return None


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_valid_nbformat(notebook):
    path, nb = notebook
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel must be python3"
    assert "papermill" not in nb.metadata, f"{path.name}: this is an executed copy, not a clean source"


def test_no_outputs_or_execution_counts(notebook):
    path, nb = notebook
    for i, c in enumerate(code_cells(nb)):
        assert c.outputs == [], f"{path.name}: code cell {i} has outputs (strip them before committing)"
        assert c.execution_count is None, f"{path.name}: code cell {i} has an execution count"


def test_title_cell_with_colab_badge(notebook):
    path, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), f"{path.name}: cell 1 is the title"
    url = f"https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{path.name}"
    assert url in first.source, f"{path.name}: the title cell needs a Colab badge linking to {url}"


def test_colab_setup_cell_is_a_guarded_no_op(notebook):
    path, nb = notebook
    i = colab_cell_index(nb)
    assert i == 1, f"{path.name}: cell 2 must be the Colab setup cell guarded by '\"google.colab\" in sys.modules'"
    body = parse(nb.cells[i].source).body
    for node in body:  # only imports and the guarded block, with no else: nothing runs outside Colab
        assert isinstance(node, (ast.Import, ast.ImportFrom)) or (isinstance(node, ast.If) and is_colab_guard(node.test)), \
            f"{path.name}: the Colab cell runs `{ast.unparse(node)[:60]}` outside its guard"
        if isinstance(node, ast.If):
            assert not node.orelse, f"{path.name}: the Colab cell's guard has an else branch"
    src = nb.cells[i].source
    assert f"https://github.com/{REPO}" in src, f"{path.name}: the Colab cell clones {REPO}"
    if "htnet_lib/colab.py" in src:  # the shared set-up script, run with %run after the clone
        src = (ROOT / "htnet_lib" / "colab.py").read_text()
    assert "facenet-pytorch==2.5.3" in src and "--no-deps" in src, f"{path.name}: facenet-pytorch 2.5.3 with --no-deps"
    assert re.search(r"htnet_lib[\"', ]+fetch", src), f"{path.name}: the Colab set-up must fetch the data"
    assert "HTNET_DATA_DIR" in src and "os.chdir" in src


def test_one_parameters_cell_with_smoke_default(notebook):
    path, nb = notebook
    tagged = [(i, c) for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected exactly one"
    i, cell = tagged[0]
    assert cell.cell_type == "code"
    assert i == 2, f"{path.name}: the parameters cell is cell 3 (after the title and the Colab cell)"
    values = {t.id: n.value.value for n in parse(cell.source).body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    assert values.get("params_dir") == "params/smoke", f"{path.name}: the parameters cell must set params_dir = \"params/smoke\""
    assert (ROOT / "params" / "smoke").is_dir()


def test_provenance_shown_first(notebook):
    path, nb = notebook
    src = nb.cells[3].source
    assert "params_dir" in src and "nb.provenance(" in src, \
        f"{path.name}: cell 4 loads the params from params_dir and shows nb.provenance(...)"


def test_no_definitions_in_code_cells(notebook):
    path, nb = notebook
    for i, c in enumerate(code_cells(nb)):
        assert not re.search(r"^\s*(async\s+)?(def|class)\s", c.source, flags=re.M), \
            f"{path.name}: code cell {i} defines a function or class: move it to htnet_lib"
        found = [n for n in ast.walk(parse(c.source)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not found, f"{path.name}: code cell {i} defines {found[0].name}: move it to htnet_lib"


# -------------------------------------------------------------------------------------------------------- Binder


def test_binder_reads_root_config():
    # with a binder/ or .binder/ folder, Binder ignores environment.yml and postBuild at the root
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()


def test_environment_yml_cpu_torch_and_project():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    assert any(re.fullmatch(r"-e \.(\[dev\])?", line) for line in pip), "the project itself, editable"
    reqs = {}
    for line in pip:
        if line.startswith("-"):
            continue
        r = Requirement(line)  # raises on a malformed line
        reqs[r.name] = str(r.specifier)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = {Requirement(d).name: str(Requirement(d).specifier)
               for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name in ("torch", "torchvision"):
        assert reqs[name] == project[name], f"environment.yml pins {name}{reqs[name]}, pyproject.toml {project[name]}"


def test_postbuild_fetches_without_failing_the_build():
    post = ROOT / "postBuild"
    assert post.is_file() and os.access(post, os.X_OK), "postBuild must be executable"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and "python -m htnet_lib fetch" in text
    assert "set -e" not in text, "a failed download must not fail the Binder build"
