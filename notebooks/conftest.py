"""The notebooks under nbval (`make test`) train their smoke runs into a temporary folder, never the checkout's runs/:
each notebook's kernel starts in nbval's file setup, after this hook, and inherits $HTNET_SET, the run settings every
params file takes (`config.session_overrides`)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest

from htnet_lib.config import SESSION_ENV

NOTEBOOK_RUNS: dict[str, str | None] = {}  # the temporary runs folder of this session's notebooks, once made


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.suffix != ".ipynb":
        return
    if "dir" not in NOTEBOOK_RUNS:
        NOTEBOOK_RUNS["dir"] = tempfile.mkdtemp(prefix="htnet-notebook-runs-")
    if "before" not in NOTEBOOK_RUNS:
        NOTEBOOK_RUNS["before"] = os.environ.get(SESSION_ENV)
        os.environ[SESSION_ENV] = json.dumps({**json.loads(NOTEBOOK_RUNS["before"] or "{}"),
                                              "runs_dir": NOTEBOOK_RUNS["dir"]})


def pytest_runtest_teardown(item):
    """The setting is the notebooks' only: a test that runs after one (`pytest notebooks tests`) sees $HTNET_SET as it
    was, and keeps its runs where it puts them."""
    if item.path.suffix == ".ipynb" and "before" in NOTEBOOK_RUNS:
        before = NOTEBOOK_RUNS.pop("before")
        if before is None:
            os.environ.pop(SESSION_ENV, None)
        else:
            os.environ[SESSION_ENV] = before


def pytest_sessionfinish(session):
    if "dir" in NOTEBOOK_RUNS:
        shutil.rmtree(NOTEBOOK_RUNS.pop("dir"), ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`-n 2 --dist loadgroup`) the notebooks run in order on one worker: a later notebook reads
    what an earlier one wrote."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.xdist_group("notebooks"))
