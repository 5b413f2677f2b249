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

NOTEBOOK_RUNS: dict[str, str] = {}  # the temporary runs folder of this session's notebooks, once made


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb" and "dir" not in NOTEBOOK_RUNS:
        NOTEBOOK_RUNS["dir"] = tempfile.mkdtemp(prefix="htnet-notebook-runs-")
        os.environ[SESSION_ENV] = json.dumps({**json.loads(os.environ.get(SESSION_ENV) or "{}"),
                                              "runs_dir": NOTEBOOK_RUNS["dir"]})


def pytest_sessionfinish(session):
    if "dir" in NOTEBOOK_RUNS:
        shutil.rmtree(NOTEBOOK_RUNS.pop("dir"), ignore_errors=True)
