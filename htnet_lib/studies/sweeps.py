"""Ablation sweeps (§4.4: Table 4 block size, Table 5 depth, Fig. 5 hidden dimension, Fig. 6 heads, or any other key).

A sweep is a list of points of a study file (`studies.spec`); every point is an ordinary LOSO run per seed, so a
finished point is found in its run folder and a rerun is instant, and a point equal to another sweep's (the common
centre) is one run. All runs of a study are handed to the executor at once (`loso.run_many`), under one progress bar.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from .. import loso
from .._io import HTNetInputError
from ..models import ModelConfig, build, count_parameters
from .spec import Study, load_study


def block_geometry(cfg: ModelConfig) -> dict[str, Any]:
    """The columns that tell the network's configurations apart (`ModelConfig.describe`): for HTNet, block sides in
    input pixels per level (bottom first) and tokens per block (the same at every level)."""
    return cfg.describe()


@dataclass
class SweepResults:
    """The runs of a study's sweeps and one long table of their scores.

    `table`: one row per (sweep, point, seed, protocol, scope): sweep, label, seed, run (the run folder's name), each
    varied key's value, block_px, tokens_per_block, params (model parameters), train_s (training seconds of that
    run), protocol, scope, UF1, UAR.
    """

    study: Study
    runs: dict[tuple[str, str], list[loso.Run]]  # (sweep, label) -> one run per seed
    table: pd.DataFrame

    def predictions(self, sweep: str, label: str) -> list[pd.DataFrame]:
        """Each seed's predictions table of one point (for paired comparisons)."""
        return [r.predictions() for r in self.runs[(sweep, label)]]


def run_sweep(study: Study | str | os.PathLike, progress: bool = True, executor: Any = None,
              only: tuple[str, ...] = (), seeds: Sequence[int] = ()) -> SweepResults:
    """Train (or find) every point of the study's sweeps (`only` those named) for every seed (`seeds`: only these of
    the study's, a piece of a long study that can be run on its own; the results then hold those seeds only)."""
    study, wanted = _wanted(study, only, seeds)
    runs = loso.run_many([q for _, _, q in wanted], name="loso", progress=progress, executor=executor)
    by_point: dict[tuple[str, str], list[loso.Run]] = {}
    rows = []
    for (sweep, point, q), run in zip(wanted, runs):
        by_point.setdefault((sweep.name, point.label), []).append(run)
        with torch.device("meta"):
            n_params = count_parameters(build(q.model))
        flat = q.to_flat()  # a key of another network in the sweep (OFF-ApexNet's filters beside STSTNet) is empty
        info = {"sweep": sweep.name, "label": point.label, "seed": q.train.seed, "run": run.id,
                **{k: _cell(flat.get(k)) for k in sweep.varied}, **block_geometry(q.model),
                "params": n_params, "train_s": run.train_seconds}
        for r in run.metrics().itertuples():
            rows.append({**info, "protocol": r.protocol, "scope": r.scope, "UF1": r.UF1, "UAR": r.UAR})
    return SweepResults(study, by_point, pd.DataFrame(rows))


def _wanted(study: Study | str | os.PathLike, only: Sequence[str], seeds: Sequence[int]) -> tuple[Study, list]:
    """The study and its (sweep, point, seeded params) triples, `only` those sweeps and `seeds` (all when empty)."""
    study = study if isinstance(study, Study) else load_study(study)
    unknown = sorted(set(seeds) - set(study.seeds))
    if unknown:
        raise HTNetInputError(study.path, "seeds", f"seed(s) {unknown} are not among the study's {list(study.seeds)}")
    sweeps = [s for s in study.sweeps.values() if not only or s.name in only]
    return study, [(s, p, q) for s in sweeps for p in s.points for q in study.seeded(p.params)
                   if not seeds or q.train.seed in seeds]


def remaining(study: Study | str | os.PathLike, only: Sequence[str] = (), seeds: Sequence[int] = ()) -> pd.DataFrame:
    """What is left to train of a study, per point and seed, from its run folders; nothing is trained or written
    (`python -m htnet_lib sweep --status`), except that a damaged fold file is removed, with a warning, as a run would
    remove it, so that it counts as left. A long study runs in pieces (`--seeds`), and each run resumes from its
    last finished fold, so this is what the next piece has to do: columns sweep, label, seed, run, folds,
    folds_left, fold_epochs_left (folds left x the point's epochs), hours_left. A run two points share is listed
    under each.

    hours_left: fold_epochs_left at the run's recorded pace, the median over its finished chunks of seconds per
    fold-epoch (a median, so a chunk slowed by a paused or crowded machine does not set it); a run with no chunk yet
    takes the median pace of the point's other seeds, and is empty when none has one. It is the pace of whatever
    ran those chunks (a process alone, or beside others), not a promise."""
    _, wanted = _wanted(study, only, seeds)
    rows, paces = [], {}
    for sweep, point, q in wanted:
        job = loso.runs.prepare(q)
        pace = [c["seconds"] / (len(c["folds"]) * q.train.epochs) for c in (job.meta or {}).get("chunks", []) if c["folds"]]
        paces.setdefault((sweep.name, point.label), []).extend(pace)
        rows.append({"sweep": sweep.name, "label": point.label, "seed": q.train.seed, "run": job.run.id,
                     "folds": len(job.plans), "folds_left": len(job.todo),
                     "fold_epochs_left": len(job.todo) * q.train.epochs,
                     "pace": statistics.median(pace) if pace else None})
    left = pd.DataFrame(rows, columns=["sweep", "label", "seed", "run", "folds", "folds_left", "fold_epochs_left",
                                       "pace"])
    point_pace = left[["sweep", "label"]].apply(
        lambda r: statistics.median(paces[(r.sweep, r.label)]) if paces[(r.sweep, r.label)] else None, axis=1)
    pace = left["pace"].astype(float).fillna(point_pace.astype(float) if len(left) else left["pace"])
    left["hours_left"] = left["fold_epochs_left"] * pace / 3600
    return left.drop(columns="pace")


def _cell(v: Any) -> Any:
    """A params value as a table cell: tuples as '(2, 2, 8)'."""
    return "(" + ", ".join(map(str, v)) + ")" if isinstance(v, (list, tuple)) else v


def points_table(study: Study) -> pd.DataFrame:
    """Every point of a study's sweeps before training: sweep, label, the keys it sets, its geometry and size."""
    rows = []
    for sweep in study.sweeps.values():
        for p in sweep.points:
            with torch.device("meta"):
                n_params = count_parameters(build(p.params.model))
            rows.append({"sweep": sweep.name, "paper": sweep.paper or "(not the paper's)", "label": p.label,
                         "sets": ", ".join(f"{k}={_cell(v)}" for k, v in p.changes.items()) or "(the base)",
                         **block_geometry(p.params.model), "params": n_params, "epochs": p.params.train.epochs,
                         "folds": len(p.params.train.folds) or "all", "seeds": len(study.seeds)})
    return pd.DataFrame(rows)
