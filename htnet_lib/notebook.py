"""What every notebook does first: resolve its params folder, load a params file, show provenance.

Notebooks take one papermill parameter, `params_dir` (default `params/smoke`, so nbval runs the smoke values), and
read the YAML files there through `load`. Relative paths resolve from the project folder (`_io.project_root`: the
checkout the kernel runs in, whichever of its folders, or $HTNET_ROOT), never from the package's location.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from ._io import figures_dir as _figures_root, git_revision, in_project
from .config import Params, load_params
from .reproduce import params_dir as _params_dir


def figures_dir(params_dir: str | os.PathLike) -> Path:
    """Where a level's tables and figures go: figures/<level> (figures/quick is committed; smoke is not)."""
    return _figures_root() / Path(params_dir).name


def path(params_dir: str | os.PathLike, name: str) -> Path:
    """A file of the params folder (relative folders resolve from the project folder)."""
    return _params_dir(str(in_project(params_dir))) / name


def load(params_dir: str | os.PathLike, name: str = "loso.yaml", **overrides: Any) -> Params:
    """The params file `name` in `params_dir`, with `overrides` applied."""
    return load_params(path(params_dir, name), overrides or None)


def authors_predictions(samples: pd.DataFrame) -> pd.DataFrame | None:
    """The authors' stored predictions when the data folder has them (they are not part of the upstream release)."""
    from . import metrics
    from ._io import HTNetInputError

    try:
        return metrics.authors_predictions(samples, samples.attrs.get("data_dir"))
    except HTNetInputError as e:
        print(f"(no authors' predictions: {e})")
        return None


def provenance(params: Params | None = None) -> pd.Series:
    """Git revision, data folder and fingerprint, and the params fingerprint: printed at the top of each notebook."""
    from . import data

    root = data.resolve_data_dir(params.run.data_dir or None if params else None)
    info = {"git revision": git_revision(), "data": str(root), "data fingerprint": data.fingerprint(root)}
    if params is not None:
        info["params fingerprint"] = params.fingerprint()
    return pd.Series(info, name="provenance")


def runs_table(runs) -> pd.DataFrame:
    """One row per run: its folder's name, seed, engine, training seconds and hardware."""
    return pd.DataFrame({"run": [r.id for r in runs], "seed": [r.seed for r in runs],
                         "engine": [r.meta["numerics"]["engine"] for r in runs],
                         "train_s": [round(r.train_seconds, 1) for r in runs], "hardware": [r.hardware for r in runs]})
